"""Stand-in for what azd's deploy hooks (infra/hooks/healer_hooks.py) call: ARM's function list of a Function App,
the app's host, and Microsoft Graph's service principals.

- `GET /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{app}/functions?api-version=...`
  (Web Apps - List Functions: `{"value": [{"id", "name": "<app>/<function>", "type", "properties"}]}`; 404
  `ResourceNotFound` for another app; 401 without a bearer token). The functions appear after `readyAfterPolls`
  list calls (the host indexing the deployed package).
- `GET /` on the host: 503 until the functions appear, then 200 (the Functions host's default page).
- Graph v1.0: `GET /v1.0/servicePrincipals(appId='{appId}')` (200 or 404 `Request_ResourceNotFound`),
  `POST /v1.0/servicePrincipals` `{"appId"}` (201); `graphForbidden` answers 403 `Authorization_RequestDenied`.

Control: `POST /_standin/configure` (`app`, `functions`, `readyAfterPolls`, `servicePrincipals`, `graphForbidden`),
`GET /_standin/requests`.
"""
from __future__ import annotations

import uuid

from standins.httpbase import JsonHandler, route, serve

SITE = r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Web/sites/(?P<app>[^/]+)"


class DeployHooksHandler(JsonHandler):
    """ARM function list, Functions host and Graph service principals, for the azd hooks."""
    state: dict = {"app": "func-healer", "functions": [], "readyAfterPolls": 0, "polls": 0,
                   "servicePrincipals": {}, "graphForbidden": False}
    requests: list[dict] = []

    def _record(self) -> None:
        with self.lock:
            type(self).requests.append({"method": self.command, "path": self.path_only, "query": self.query,
                                        "authorization": self.headers.get("Authorization", ""),
                                        "body": self.json_body() if self.command == "POST" else None})

    def _ready(self) -> bool:
        return self.state["polls"] > self.state["readyAfterPolls"]

    @route("GET", SITE + r"/functions")
    def list_functions(self, sub: str, rg: str, app: str) -> None:
        self._record()
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            return self.send_json(401, {"error": {"code": "AuthenticationFailed", "message": "no bearer token"}})
        if self.query.get("api-version") is None:
            return self.send_json(400, {"error": {"code": "MissingApiVersionParameter", "message": "api-version"}})
        with self.lock:
            self.state["polls"] += 1
            if app != self.state["app"]:
                return self.send_json(404, {"error": {"code": "ResourceNotFound", "message": f"site {app}"}})
            listed = self.state["functions"] if self._ready() else []
            site = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{app}"
            self.send_json(200, {"value": [
                {"id": f"{site}/functions/{name}", "name": f"{app}/{name}", "type": "Microsoft.Web/sites/functions",
                 "properties": {"name": name, "isDisabled": False}} for name in listed]})

    @route("GET", r"/")
    def host_root(self) -> None:
        self._record()
        with self.lock:
            ready = self._ready()
        if ready:
            self.send_raw(200, b"<html>Your Functions 4.0 app is up and running</html>", "text/html")
        else:
            self.send_raw(503, b"Function host is not running.", "text/plain")

    def _graph_denied(self) -> bool:
        if self.state["graphForbidden"]:
            self.send_json(403, {"error": {"code": "Authorization_RequestDenied",
                                           "message": "Insufficient privileges to complete the operation."}})
            return True
        return False

    @route("GET", r"/v1\.0/servicePrincipals\(appId='(?P<app_id>[^']+)'\)")
    def get_sp(self, app_id: str) -> None:
        self._record()
        with self.lock:
            if self._graph_denied():
                return
            sp = self.state["servicePrincipals"].get(app_id)
        if sp is None:
            return self.send_json(404, {"error": {"code": "Request_ResourceNotFound",
                                                  "message": f"Resource '{app_id}' does not exist."}})
        self.send_json(200, sp)

    @route("POST", r"/v1\.0/servicePrincipals")
    def create_sp(self) -> None:
        self._record()
        body = self.json_body() or {}
        with self.lock:
            if self._graph_denied():
                return
            app_id = body.get("appId")
            if not app_id:
                return self.send_json(400, {"error": {"code": "Request_BadRequest", "message": "appId required"}})
            if app_id in self.state["servicePrincipals"]:
                return self.send_json(409, {"error": {"code": "Request_MultipleObjectsWithSameKeyValue",
                                                      "message": "already exists"}})
            sp = {"id": str(uuid.uuid4()), "appId": app_id, "servicePrincipalType": "Application"}
            self.state["servicePrincipals"][app_id] = sp
        self.send_json(201, sp)

    @route("POST", r"/_standin/configure")
    def configure(self) -> None:
        with self.lock:
            self.state.update(self.json_body() or {})
            self.state["polls"] = 0
            type(self).requests.clear()
        self.send_json(200, {})

    @route("GET", r"/_standin/requests")
    def list_requests(self) -> None:
        with self.lock:
            self.send_json(200, {"requests": list(type(self).requests), "state": self.state})


if __name__ == "__main__":
    serve(DeployHooksHandler)
