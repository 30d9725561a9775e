"""Stand-in for an ACR login server: the token endpoints and a challenging proxy in front of a real registry.

Follows Azure/acr docs/AAD-OAuth.md (fixtures in /work/shared/eval_fixtures/acr_auth):
- `POST /oauth2/exchange` (form: grant_type=access_token, service, tenant, access_token=<Entra token>)
  -> 200 {"refresh_token": <JWT>} with the documented refresh-token claim set.
- `POST /oauth2/token` (form: grant_type=refresh_token, service, scope, refresh_token)
  -> 200 {"access_token": <JWT>} with `access: [{type, name, actions}]`; 401 for a bad refresh token.
- `/v2/...` without a valid bearer token for the needed scope -> 401 with
  `Www-Authenticate: Bearer realm="<realm>",service="<service>",scope="repository:<name>:pull"` and the
  UNAUTHORIZED error body; with one -> proxied to `--upstream` (a docker-registry instance).
Control API: `GET /_standin/stats`, `POST /_standin/revoke` (invalidates every token issued so far).

The Entra token is checked for shape only (JWT with aud https://containerregistry.azure.net and, when --tenant
is given, a matching tid); its signature is not verified. Tokens this server issues are HS256 with --secret.

Run: python -m standins.acr_token --port P --cert C --key K --upstream http://127.0.0.1:5001
       --service myreg.azurecr.io --realm https://myreg.azurecr.io/oauth2/token [--tenant T] [--access-ttl S]
"""
from __future__ import annotations

import argparse
import time
import uuid
from urllib.parse import parse_qs

import httpx
import jwt

from standins.httpbase import JsonHandler, route, serve

ACR_AUDIENCES = {"https://containerregistry.azure.net", "https://containerregistry.azure.net/"}
RELAYED_HEADERS = ("content-type", "docker-content-digest", "docker-distribution-api-version", "etag", "link",
                   "location")


class AcrTokenHandler(JsonHandler):
    """Stand-in ACR token server and challenging registry proxy."""

    upstream = ""
    service = ""
    realm = ""
    tenant: str | None = None
    secret = "standin-secret"
    epoch = 0
    access_ttl = 300
    refresh_ttl = 3600
    stats: dict = {}
    http: httpx.Client | None = None

    max_body = 64 * 1024

    # ------------------------------------------------------------------ helpers
    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body_bytes().decode("utf-8", "replace")).items()}

    def count(self, key: str, item: str | None = None) -> None:
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + 1
            if item is not None:
                self.stats.setdefault(f"{key}_items", []).append(item)

    def oauth_error(self, status: int, message: str) -> None:
        self.send_json(status, {"errors": [{"code": "UNAUTHORIZED" if status == 401 else "BAD_REQUEST",
                                            "message": message}]})

    def issue(self, claims: dict, ttl: int) -> str:
        now = int(time.time())
        base = {"jti": str(uuid.uuid4()), "nbf": now, "iat": now, "exp": now + ttl,
                "iss": "Azure Container Registry", "aud": self.service, "version": "1.0", "epoch": self.epoch}
        return jwt.encode({**base, **claims}, self.secret, algorithm="HS256")

    def verify(self, token: str, grant_type: str) -> dict | None:
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], audience=self.service)
        except jwt.PyJWTError:
            return None
        if claims.get("grant_type") != grant_type or claims.get("epoch") != self.epoch:
            return None
        return claims

    # ------------------------------------------------------------------ token endpoints
    @route("POST", r"/oauth2/exchange")
    def exchange(self) -> None:
        self.count("exchange")
        f = self.form()
        if f.get("grant_type") != "access_token":
            return self.oauth_error(400, "unsupported grant_type")
        if f.get("service") != self.service:
            return self.oauth_error(400, "unknown service")
        if self.tenant and f.get("tenant") not in (None, self.tenant):
            return self.oauth_error(401, "tenant mismatch")
        try:
            aad = jwt.decode(f.get("access_token") or "", options={"verify_signature": False})
        except jwt.PyJWTError:
            return self.oauth_error(401, "access_token is not a valid AAD token")
        if aad.get("aud") not in ACR_AUDIENCES or (self.tenant and aad.get("tid") != self.tenant):
            return self.oauth_error(401, "AAD token audience or tenant not accepted")
        if float(aad.get("exp", 0)) <= time.time():
            return self.oauth_error(401, "AAD token expired")
        token = self.issue({"sub": aad.get("oid") or aad.get("sub") or "unknown", "grant_type": "refresh_token",
                            "tenant": aad.get("tid") or f.get("tenant"),
                            "permissions": {"actions": ["*"], "notActions": []}, "roles": []}, self.refresh_ttl)
        self.send_json(200, {"refresh_token": token})

    @route("POST", r"/oauth2/token")
    def token(self) -> None:
        f = self.form()
        self.count("token", f.get("scope"))
        if f.get("grant_type") != "refresh_token":
            return self.oauth_error(400, "unsupported grant_type")
        if f.get("service") != self.service:
            return self.oauth_error(400, "unknown service")
        claims = self.verify(f.get("refresh_token") or "", "refresh_token")
        if claims is None:
            return self.oauth_error(401, "invalid refresh token")
        access = []
        for scope in (f.get("scope") or "").split():
            parts = scope.split(":")
            if len(parts) == 3:
                access.append({"type": parts[0], "name": parts[1], "actions": parts[2].split(",")})
        token = self.issue({"sub": claims.get("sub"), "access": access, "roles": [],
                            "grant_type": "access_token"}, self.access_ttl)
        self.send_json(200, {"access_token": token})

    # ------------------------------------------------------------------ challenging proxy
    def challenge(self, scope: str | None, detail: list) -> None:
        self.count("challenge")
        value = f'Bearer realm="{self.realm}",service="{self.service}"' + (f',scope="{scope}"' if scope else "")
        self.send_json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required",
                                         "detail": detail}]}, headers={"Www-Authenticate": value})

    def granted(self, rtype: str, name: str, action: str) -> bool:
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Bearer "):
            return False
        claims = self.verify(header[7:].strip(), "access_token")
        if claims is None:
            return False
        return any(a.get("type") == rtype and a.get("name") == name
                   and (action in a.get("actions", []) or "*" in a.get("actions", []))
                   for a in claims.get("access", []))

    @route("GET", r"/v2/")
    def base(self) -> None:
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Bearer ") or self.verify(header[7:].strip(), "access_token") is None:
            return self.challenge(None, [])
        self.proxy()

    @route("GET", r"/v2/(?P<name>.+?)/(?P<kind>manifests|blobs|tags)/(?P<rest>.*)")
    def v2_get(self, name: str, kind: str, rest: str) -> None:
        self.guarded(name)

    @route("HEAD", r"/v2/(?P<name>.+?)/(?P<kind>manifests|blobs|tags)/(?P<rest>.*)")
    def v2_head(self, name: str, kind: str, rest: str) -> None:
        self.guarded(name)

    def guarded(self, name: str) -> None:
        if not self.granted("repository", name, "pull"):
            return self.challenge(f"repository:{name}:pull",
                                  [{"Type": "repository", "Name": name, "Action": "pull"}])
        self.proxy()

    def proxy(self) -> None:
        self.count("proxied")
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept",)}
        try:
            resp = self.http.request(self.command, self.upstream + self.path, headers=headers)
        except httpx.HTTPError as exc:
            return self.send_json(502, {"errors": [{"code": "UPSTREAM", "message": type(exc).__name__}]})
        extra = {k: v for k, v in resp.headers.items() if k.lower() in RELAYED_HEADERS and k.lower() != "content-type"}
        data = resp.content
        self.send_response(resp.status_code)
        self.send_header("Content-Type", resp.headers.get("content-type", "application/octet-stream"))
        # HEAD answers carry the upstream's Content-Length (the size of what GET would return).
        self.send_header("Content-Length", resp.headers.get("content-length", str(len(data))))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # ------------------------------------------------------------------ control
    @route("GET", r"/_standin/stats")
    def get_stats(self) -> None:
        with self.lock:
            self.send_json(200, dict(self.stats))

    @route("POST", r"/_standin/revoke")
    def revoke(self) -> None:
        with self.lock:
            type(self).epoch += 1
        self.send_json(200, {"epoch": self.epoch})


def _args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--upstream", required=True, help="base URL of the registry to proxy")
    parser.add_argument("--service", required=True, help="service name, e.g. myreg.azurecr.io")
    parser.add_argument("--realm", required=True, help="realm URL advertised in challenges")
    parser.add_argument("--tenant")
    parser.add_argument("--secret", default="standin-secret")
    parser.add_argument("--access-ttl", type=int, default=300)
    parser.add_argument("--refresh-ttl", type=int, default=3600)


def _configure(args: argparse.Namespace) -> None:
    h = AcrTokenHandler
    h.upstream, h.service, h.realm = args.upstream.rstrip("/"), args.service, args.realm
    h.tenant, h.secret = args.tenant, args.secret
    h.access_ttl, h.refresh_ttl = args.access_ttl, args.refresh_ttl
    h.stats = {}
    h.http = httpx.Client(timeout=10.0)


if __name__ == "__main__":
    serve(AcrTokenHandler, configure=_configure, extra_args=_args)
