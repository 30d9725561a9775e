"""A registry front on loopback: a small reverse proxy in front of a real registry (docker-registry, or the ACR
token stand-in) that answers what an ACR replica answers when it is throttled or behind a network rule.

Rules (control API, replaced as a whole): each answers requests whose path matches `paths` (a regex, default
every `/v2/` and `/oauth2/` path) with `status` — 429 with `Retry-After` and ACR's TOOMANYREQUESTS error body, or
403 with ACR's firewall DENIED body — for `seconds` from when the rule was set, or for the first `count` matching
requests, or forever; anything else is proxied to `--upstream` unchanged (status, digest headers, body).

  POST /_front/rules   {"rules": [{"status": 429, "retryAfter": "2", "seconds": 3, "paths": "/manifests/"}]}
  GET  /_front/stats   {"requests": n, "byStatus": {"429": n, "200": n, ...}}

Run: python -m standins.registry_front --port P --upstream http://127.0.0.1:5001
"""
from __future__ import annotations

import argparse
import re
import time
from typing import Any

import httpx

from standins.httpbase import JsonHandler, route, serve

RELAYED = ("content-type", "docker-content-digest", "docker-distribution-api-version", "etag", "link",
           "location", "www-authenticate")
DEFAULT_PATHS = r"^/(v2|oauth2)/"
DENIED = ("client with IP '127.0.0.1' is not allowed access. Refer https://aka.ms/acr/firewall to grant access.")


class FrontHandler(JsonHandler):
    """Throttling / denying reverse proxy in front of a real registry."""

    upstream = ""
    rules: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    http: httpx.Client | None = None

    @route("POST", r"/_front/rules")
    def set_rules(self) -> None:
        body = self.json_body() or {}
        rules = []
        now = time.monotonic()
        for rule in body.get("rules", []):
            rules.append({"status": int(rule.get("status", 429)), "retryAfter": rule.get("retryAfter"),
                          "until": now + float(rule["seconds"]) if rule.get("seconds") is not None else None,
                          "left": int(rule["count"]) if rule.get("count") is not None else None,
                          "paths": re.compile(rule.get("paths") or DEFAULT_PATHS)})
        with self.lock:
            type(self).rules = rules
        self.send_json(200, {"rules": len(rules)})

    @route("GET", r"/_front/stats")
    def get_stats(self) -> None:
        with self.lock:
            self.send_json(200, dict(self.stats))

    def _count(self, status: int) -> None:
        with self.lock:
            self.stats["requests"] = self.stats.get("requests", 0) + 1
            by = self.stats.setdefault("byStatus", {})
            by[str(status)] = by.get(str(status), 0) + 1

    def _matching_rule(self) -> dict[str, Any] | None:
        path, now = self.path_only, time.monotonic()
        with self.lock:
            for rule in self.rules:
                if not rule["paths"].search(path):
                    continue
                if rule["until"] is not None and now >= rule["until"]:
                    continue
                if rule["left"] is not None:
                    if rule["left"] <= 0:
                        continue
                    rule["left"] -= 1
                return rule
        return None

    def _front(self) -> None:
        rule = self._matching_rule()
        if rule is not None:
            self._count(rule["status"])
            if rule["status"] == 429:
                headers = {"Retry-After": str(rule["retryAfter"])} if rule.get("retryAfter") is not None else {}
                return self.send_json(429, {"errors": [{"code": "TOOMANYREQUESTS", "message": "too many requests",
                                                        "detail": "throttled by the registry front"}]}, headers)
            if rule["status"] == 403:
                return self.send_json(403, {"errors": [{"code": "DENIED", "message": DENIED}]})
            return self.send_json(rule["status"], {"errors": [{"code": "UNKNOWN", "message": "front rule"}]})
        self._proxy()

    def _proxy(self) -> None:
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("accept", "authorization", "content-type")}
        try:
            resp = self.http.request(self.command, self.upstream + self.path, headers=headers,
                                     content=self.body_bytes() or None)
        except httpx.HTTPError as exc:
            self._count(502)
            return self.send_json(502, {"errors": [{"code": "UPSTREAM", "message": type(exc).__name__}]})
        self._count(resp.status_code)
        self.send_response(resp.status_code)
        for k, v in resp.headers.items():
            if k.lower() in RELAYED:
                self.send_header(k, v)
        # HEAD answers carry the upstream's Content-Length (the size of what GET would return).
        self.send_header("Content-Length", resp.headers.get("content-length", str(len(resp.content))))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.content)

    @route("GET", r"/(?!_front/).*")
    def get(self) -> None:
        self._front()

    @route("HEAD", r"/.*")
    def head(self) -> None:
        self._front()

    @route("POST", r"/(?!_front/).*")
    def post(self) -> None:
        self._front()


def _args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--upstream", required=True, help="base URL of the registry behind the front")
    parser.add_argument("--upstream-ca", help="CA bundle to trust for an HTTPS upstream")


def _configure(args: argparse.Namespace) -> None:
    h = FrontHandler
    h.upstream = args.upstream.rstrip("/")
    h.rules, h.stats = [], {}
    h.http = httpx.Client(timeout=10.0, verify=args.upstream_ca or True)


def start_front(upstream: str, workdir, name: str = "registry-front", upstream_ca: str | None = None):
    """Start a front on a free loopback port in front of `upstream`; returns (server, base URL)."""
    import sys
    from standins.harness import free_port, start_process
    port = free_port()
    extra = ["--upstream-ca", upstream_ca] if upstream_ca else []
    server = start_process(name, [sys.executable, "-m", "standins.registry_front", "--port", str(port),
                                  "--upstream", upstream, *extra], {"http": port}, workdir)
    return server, f"http://127.0.0.1:{port}"


def set_rules(front_url: str, *rules: dict[str, Any]) -> None:
    httpx.post(f"{front_url}/_front/rules", json={"rules": list(rules)}, timeout=5).raise_for_status()


def stats(front_url: str) -> dict[str, Any]:
    return httpx.get(f"{front_url}/_front/stats", timeout=5).json()


if __name__ == "__main__":
    serve(FrontHandler, configure=_configure, extra_args=_args)
