"""Stand-in for an App Service app's own front end: health URLs and per-instance answers (ARR affinity).

    python -m standins.site_app --port N

An App Service front end routes a request whose `ARRAffinity` cookie names an instance id to that instance (with
client affinity enabled); without the cookie it picks one. This stand-in does the same over instances set through
the control API, and each instance answers `GET /instance` with {"instance": <id>, "build": <its build>} — what
an app exposing `WEBSITE_INSTANCE_ID` and its build id does. Other paths answer what the control API says.

Control (no auth): PUT /_standin/app {"instances": {id: build}, "routes": {"/path": {"status", "body"}},
"ignore_affinity": false} ; GET /_standin/hits.
"""
from __future__ import annotations

import itertools

from standins.httpbase import JsonHandler, route, serve


class SiteAppHandler(JsonHandler):
    """An app's front end with instances."""
    state: dict = {"instances": {}, "routes": {}, "ignore_affinity": False}
    hits: list[dict] = []
    rr = itertools.count()

    def _instance(self) -> str | None:
        ids = sorted(self.state["instances"])
        if not ids:
            return None
        cookies = dict(part.strip().split("=", 1) for part in (self.headers.get("Cookie") or "").split(";")
                       if "=" in part)
        wanted = cookies.get("ARRAffinity")
        if self.state["ignore_affinity"]:  # e.g. client affinity disabled: every request lands on one instance
            return ids[0]
        if wanted in self.state["instances"]:
            return wanted
        return ids[next(self.rr) % len(ids)]

    @route("GET", r"/instance")
    def instance(self) -> None:
        with self.lock:
            iid = self._instance()
            type(self).hits.append({"path": "/instance", "instance": iid})
            if iid is None:
                return self.send_json(503, {"error": "no instances"})
            self.send_json(200, {"instance": iid, "build": self.state["instances"][iid]})

    @route("GET", r"/(?!_standin/)(?P<path>.*)")
    def anything(self, path: str) -> None:
        with self.lock:
            spec = self.state["routes"].get("/" + path, {"status": 404, "body": "not found"})
            type(self).hits.append({"path": "/" + path, "status": spec.get("status", 200)})
        self.send_raw(int(spec.get("status", 200)), str(spec.get("body", "")).encode(), "text/plain; charset=utf-8")

    @route("PUT", r"/_standin/app")
    def set_app(self) -> None:
        body = self.json_body() or {}
        with self.lock:
            for key in ("instances", "routes", "ignore_affinity"):
                if key in body:
                    type(self).state[key] = body[key]
        self.send_json(200, self.state)

    @route("GET", r"/_standin/hits")
    def list_hits(self) -> None:
        with self.lock:
            self.send_json(200, {"hits": list(type(self).hits)[-500:]})


if __name__ == "__main__":
    serve(SiteAppHandler)
