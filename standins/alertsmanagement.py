"""Stand-in for the Azure Monitor AlertsManagement alerts API (ARM, `Microsoft.AlertsManagement/alerts`), as
`azure.mgmt.alertsmanagement.AlertsManagementClient` (1.0.1, api-version 2019-05-05-preview) speaks it:

* `GET /subscriptions/{sub}/providers/Microsoft.AlertsManagement/alerts/{alertId}?api-version=` → 200 Alert
  `{"id", "type": "Microsoft.AlertsManagement/alerts", "name", "properties": {"essentials": {..., "monitorCondition":
  "Fired"|"Resolved", "alertState": "New"|"Acknowledged"|"Closed", ...}}}`, 404 `{"error": {"code":
  "ResourceNotFound", ...}}` for an unknown alert;
* `GET /subscriptions/{sub}/providers/Microsoft.AlertsManagement/alerts?api-version=[&monitorCondition=][&alertState=]
  [&alertRule=]` → `{"value": [Alert...], "nextLink"}` (paged by `--page-size`);
* `POST .../alerts/{alertId}/changestate?api-version=&newState=New|Acknowledged|Closed`, optional body
  `{"comments": "..."}` → 200 Alert with the new state; a bad state → 400 `InvalidArgument`;
* `api-version` required (400 `MissingApiVersionParameter` / `InvalidApiVersionParameter`); ARM bearer tokens from
  the identity stand-in (audience https://management.azure.com), else 401 (`standins.tokens.check_bearer`).

Test control API (no auth, test use only): `POST /_standin/alerts {"subscription", "alertId", "rule",
"monitorCondition", "alertState"?, "firedAt"?, "resolvedAt"?}` (create or replace), `POST /_standin/alerts/{alertId}
/resolve`, `GET /_standin/changes` (every changestate received, with its comment), `POST /_standin/faults
{"status", "count"}` (the next N API calls answer that status), `POST /_standin/reset`.

Run: `python -m standins.alertsmanagement --port N --cert C --key K --token-secret S`, or `start_alertsmanagement`.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from standins.httpbase import JsonHandler, route, serve
from standins.tokens import check_bearer

API_VERSIONS = ("2019-05-05-preview", "2019-03-01", "2023-07-12-preview", "2025-05-25-preview")
AUDIENCES = ("https://management.azure.com", "https://management.azure.com/", "https://management.core.windows.net/")
STATES = ("New", "Acknowledged", "Closed")
MAX_COMMENT = 4096
_SUB = r"(?P<sub>[0-9A-Fa-f-]{36})"
_ID = r"(?P<alert_id>[0-9A-Fa-f-]{36})"
BASE = rf"/subscriptions/{_SUB}/providers/Microsoft\.AlertsManagement/alerts"


class State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.alerts: dict[str, dict[str, Any]] = {}
        self.changes: list[dict[str, Any]] = []
        self.faults: list[int] = []
        self.secret = ""
        self.page_size = 50

    def reset(self) -> None:
        with self.lock:
            self.alerts.clear()
            self.changes.clear()
            self.faults.clear()


STATE = State()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _alert_body(a: dict[str, Any]) -> dict[str, Any]:
    path = f"/subscriptions/{a['subscription']}/providers/Microsoft.AlertsManagement/alerts/{a['alertId']}"
    essentials = {"severity": "Sev2", "signalType": "Log", "alertState": a["alertState"],
                  "monitorCondition": a["monitorCondition"], "targetResource": a.get("targetResource", ""),
                  "monitorService": "Log Alerts V2", "alertRule": a["rule"], "startDateTime": a["firedAt"],
                  "lastModifiedDateTime": a["modifiedAt"], "lastModifiedUserName": a.get("modifiedBy", "System"),
                  "description": ""}
    if a["monitorCondition"] == "Resolved":
        essentials["monitorConditionResolvedDateTime"] = a.get("resolvedAt") or a["modifiedAt"]
    return {"id": path, "type": "Microsoft.AlertsManagement/alerts", "name": a["rule"],
            "properties": {"essentials": essentials}}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class AlertsManagementStandin(JsonHandler):
    """Azure Monitor AlertsManagement alerts API stand-in."""

    def _preflight(self) -> dict | None:
        with STATE.lock:
            fault = STATE.faults.pop(0) if STATE.faults else None
        if fault:
            self.send_json(fault, _error("InternalServerError" if fault >= 500 else "InjectedFault", "stand-in fault"))
            return None
        claims = check_bearer(self, STATE.secret, AUDIENCES)
        if claims is None:
            return None
        version = self.query.get("api-version")
        if not version:
            self.send_json(400, _error("MissingApiVersionParameter", "The api-version query parameter is required."))
            return None
        if version not in API_VERSIONS:
            self.send_json(400, _error("InvalidApiVersionParameter", f"The api-version '{version[:40]}' is invalid. "
                                       f"The supported versions are '{','.join(API_VERSIONS)}'."))
            return None
        return claims

    def _find(self, sub: str, alert_id: str) -> dict[str, Any] | None:
        a = STATE.alerts.get(alert_id.lower())
        if a is None or a["subscription"].lower() != sub.lower():
            self.send_json(404, _error("ResourceNotFound", f"The alert '{alert_id}' could not be found."))
            return None
        return a

    @route("GET", BASE + rf"/{_ID}")
    def get_alert(self, sub: str, alert_id: str) -> None:
        if self._preflight() is None:
            return
        with STATE.lock:
            a = self._find(sub, alert_id)
            if a is not None:
                self.send_json(200, _alert_body(a))

    @route("GET", BASE)
    def list_alerts(self, sub: str) -> None:
        if self._preflight() is None:
            return
        q = self.query
        with STATE.lock:
            items = [a for a in STATE.alerts.values() if a["subscription"].lower() == sub.lower()
                     and q.get("monitorCondition", a["monitorCondition"]) == a["monitorCondition"]
                     and q.get("alertState", a["alertState"]) == a["alertState"]
                     and q.get("alertRule", a["rule"]) == a["rule"]]
        items.sort(key=lambda a: a["alertId"])
        start = int(q.get("skip", "0") or 0) if (q.get("skip") or "0").isdigit() else 0
        page = items[start:start + STATE.page_size]
        body: dict[str, Any] = {"value": [_alert_body(a) for a in page]}
        if start + len(page) < len(items):
            params = {k: v for k, v in q.items() if k != "skip"}
            params["skip"] = str(start + len(page))
            host = self.headers.get("Host", "127.0.0.1")
            body["nextLink"] = (f"https://{host}/subscriptions/{sub}/providers/Microsoft.AlertsManagement/alerts?"
                                + urlencode(params, quote_via=quote))
        self.send_json(200, body)

    @route("POST", BASE + rf"/{_ID}/changestate")
    def change_state(self, sub: str, alert_id: str) -> None:
        claims = self._preflight()
        if claims is None:
            return
        new_state = self.query.get("newState")
        if new_state not in STATES:
            self.send_json(400, _error("InvalidArgument", f"newState must be one of {', '.join(STATES)}"))
            return
        raw = self.body_bytes()
        comment = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self.send_json(400, _error("InvalidRequestContent", "The request content is not valid JSON."))
                return
            if not isinstance(body, dict) or not isinstance(body.get("comments", ""), str):
                self.send_json(400, _error("InvalidRequestContent", "The body must be {\"comments\": string}."))
                return
            comment = body.get("comments")
            if comment is not None and len(comment) > MAX_COMMENT:
                self.send_json(400, _error("InvalidRequestContent", "comments too long"))
                return
        with STATE.lock:
            a = self._find(sub, alert_id)
            if a is None:
                return
            a.update(alertState=new_state, modifiedAt=_now(), modifiedBy=str(claims.get("oid", "?")))
            STATE.changes.append({"alertId": a["alertId"], "newState": new_state, "comments": comment,
                                  "by": a["modifiedBy"], "at": a["modifiedAt"]})
            self.send_json(200, _alert_body(a))

    # ------------------------------------------------------------------ control API
    @route("POST", r"/_standin/alerts")
    def seed(self) -> None:
        body = self.json_body() or {}
        try:
            alert_id = str(body["alertId"]).lower()
            if not re.fullmatch(r"[0-9a-f-]{36}", alert_id):
                raise ValueError("alertId must be a GUID")
            a = {"alertId": alert_id, "subscription": str(body["subscription"]), "rule": str(body.get("rule", "r")),
                 "monitorCondition": body.get("monitorCondition", "Fired"),
                 "alertState": body.get("alertState", "New"), "firedAt": body.get("firedAt") or _now(),
                 "resolvedAt": body.get("resolvedAt"), "modifiedAt": _now(),
                 "targetResource": str(body.get("targetResource", ""))}
            if a["monitorCondition"] not in ("Fired", "Resolved") or a["alertState"] not in STATES:
                raise ValueError("bad monitorCondition or alertState")
        except (KeyError, ValueError, TypeError) as exc:
            self.send_json(400, {"error": str(exc)})
            return
        with STATE.lock:
            STATE.alerts[alert_id] = a
        self.send_json(200, _alert_body(a))

    @route("POST", r"/_standin/alerts/(?P<alert_id>[0-9A-Fa-f-]{36})/resolve")
    def resolve(self, alert_id: str) -> None:
        with STATE.lock:
            a = STATE.alerts.get(alert_id.lower())
            if a is None:
                self.send_json(404, {"error": "unknown alert"})
                return
            a.update(monitorCondition="Resolved", resolvedAt=_now(), modifiedAt=_now())
            self.send_json(200, _alert_body(a))

    @route("GET", r"/_standin/changes")
    def changes(self) -> None:
        with STATE.lock:
            self.send_json(200, {"changes": list(STATE.changes)})

    @route("POST", r"/_standin/faults")
    def faults(self) -> None:
        body = self.json_body() or {}
        with STATE.lock:
            STATE.faults.extend([int(body.get("status", 500))] * max(1, min(int(body.get("count", 1)), 1000)))
        self.send_json(200, {"pending": len(STATE.faults)})

    @route("POST", r"/_standin/reset")
    def reset(self) -> None:
        STATE.reset()
        self.send_json(200, {"reset": True})


def _configure(args: Any) -> None:
    STATE.secret = args.token_secret
    STATE.page_size = max(1, min(int(args.page_size), 1000))


def _extra(parser: Any) -> None:
    parser.add_argument("--token-secret", required=True, help="HS256 secret of the identity stand-in's tokens")
    parser.add_argument("--page-size", type=int, default=50)


# ---------------------------------------------------------------------------------------------- test helper

@dataclass
class AlertsManagementServer:
    server: Any            # standins.harness.Server
    endpoint: str          # https://127.0.0.1:<port> (HEALER_ALERTS_ENDPOINT)
    ca_path: Path

    def control(self, method: str, path: str, body: Any = None) -> Any:
        import httpx
        response = httpx.request(method, self.endpoint + path, json=body, verify=str(self.ca_path), timeout=10)
        response.raise_for_status()
        return response.json()

    def seed(self, subscription: str, alert_id: str, rule: str, condition: str = "Fired", **extra: Any) -> Any:
        return self.control("POST", "/_standin/alerts", {"subscription": subscription, "alertId": alert_id,
                                                          "rule": rule, "monitorCondition": condition, **extra})

    def resolve(self, alert_id: str) -> Any:
        return self.control("POST", f"/_standin/alerts/{alert_id}/resolve")

    def changes(self) -> list[dict[str, Any]]:
        return self.control("GET", "/_standin/changes")["changes"]

    def fault(self, status: int, count: int = 1) -> None:
        self.control("POST", "/_standin/faults", {"status": status, "count": count})

    def reset(self) -> None:
        self.control("POST", "/_standin/reset")

    def stop(self) -> None:
        self.server.stop()


def start_alertsmanagement(workdir: Path, ca: Any, token_secret: str, page_size: int = 50) -> AlertsManagementServer:
    from standins.harness import free_port, start_python_server
    port = free_port()
    args = ["--port", str(port), "--cert", str(ca.cert_path), "--key", str(ca.key_path), "--token-secret",
            token_secret, "--page-size", str(page_size)]
    server = start_python_server("alertsmanagement", "standins.alertsmanagement", args, port, workdir)
    return AlertsManagementServer(server, f"https://127.0.0.1:{port}", Path(ca.ca_path))


if __name__ == "__main__":
    serve(AlertsManagementStandin, configure=_configure, extra_args=_extra)
