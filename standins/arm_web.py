"""Stand-in for ARM Microsoft.Web (App Service sites and slots), enough for Healer's rollback healer.

    python -m standins.arm_web --port N --cert C --key K --token-secret S [--retry-after 1]

ARM surface (all need `api-version` and a bearer token for https://management.azure.com/, see standins.tokens):
  {site} = /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Web/sites/{name}, {s} = {site}[/slots/{slot}]
  GET  {s}                                   Site (state, slotSwapStatus, targetSwapSlot, defaultHostName, siteConfig)
  POST {s}/config/appsettings/list           StringDictionary
  PUT  {s}/config/appsettings                StringDictionary, replaces the whole dictionary
  GET|PUT {site}/config/slotConfigNames      SlotConfigNamesResource (sticky names)
  GET|PUT|PATCH {s}/config/web               SiteConfigResource
  POST {s}/config/connectionstrings/list     ConnectionStringDictionary ({name: {value, type}})
  GET  {s}/deployments                       DeploymentCollection, newest first; properties.status is Kudu's
                                             DeployStatus (0 pending, 1 building, 2 deploying, 3 failed, 4 success)
  GET  {s}/deployments/{id}                  Deployment
  GET  {s}/instances                         WebAppInstanceStatusCollection (the slot's instance ids as names)
  GET  {s}/deployments/{id}/log              Deployment whose properties.details is the deployment's log text
  POST {s}/slotsswap                         CsmSlotEntity -> 202 + Location (+ Retry-After) long-running operation
  GET  {s}/operationresults/{id}             202 while running, 200 when done, the error status when failed
Azure Monitor's ARM routes (Activity Log, metrics) are served here too: see standins/arm_monitor.py.
Control API under /_standin/ (no auth): see standins/README.md and `ArmWebControl` below.

Functional core: `parse_seed`, `swap_slots`, `render_*` are pure; the handler is the imperative shell.
"""
from __future__ import annotations

import collections
import copy
import datetime as dt
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from standins import tokens
from standins.arm_monitor import MonitorRoutes, record_config_write
from standins.httpbase import JsonHandler, route, serve

PRODUCTION = "production"
MAX_BODY = 1 << 20
MAX_NAME = 128
MAX_SETTINGS = 2000
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._()-]{0,127}$")
API_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
SITE = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
        r"/providers/Microsoft\.Web/sites/(?P<name>[^/]+)")
SLOT = r"(?:/slots/(?P<slot>[^/]+))?"
DEPLOYMENT_SUCCESS = 4  # Kudu DeployStatus.Success

Resp = tuple[int, Any, dict[str, str]]


class BadRequest(ValueError):
    """Invalid input; the message is safe to echo back."""


# ============================================================================================ pure core

def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def arm_error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def swap_conflict_message(site: str, slot: str, op_id: str | None = None, subscription: str = "",
                          webspace: str = "", created: dt.datetime | None = None) -> str:
    """The App Service wording for a change refused because a slot swap is running on the site."""
    created = created or dt.datetime.now(dt.timezone.utc)
    stamp = f"{created.month}/{created.day}/{created.year} {created.strftime('%I:%M:%S %p').lstrip('0')}"
    return ("Cannot modify this site because another operation is in progress. "
            f"Details: Id: {op_id or uuid.uuid4()}, OperationName: SwapSiteSlots, CreatedTime: {stamp}, "
            f"WebSystemName: websites, SubscriptionName: {subscription}, WebspaceName: {webspace}, "
            f"SiteName: {site}, SlotName: {slot}, ServerFarmName: , GeoOperationId: (null)")


def retry_after_headers(seconds: float) -> dict[str, str]:
    """Whole seconds go in Retry-After; fractions in retry-after-ms.

    azure-mgmt-web deserializes the initial 202's Retry-After as int, so a fractional Retry-After would break it;
    azure-core's pollers also honour retry-after-ms, which keeps tests fast without sleeping for a second.
    """
    if float(seconds).is_integer():
        return {"Retry-After": str(int(seconds))}
    return {"retry-after-ms": str(max(1, int(round(seconds * 1000))))}


@dataclass
class Slot:
    name: str
    app_settings: dict[str, str] = field(default_factory=dict)
    site_config: dict[str, Any] = field(default_factory=dict)  # camelCase SiteConfig fields, e.g. linuxFxVersion
    state: str = "Running"
    deployments: list[dict] = field(default_factory=list)  # newest first, keys as in DeploymentProperties + id
    connection_strings: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {value, type}
    instances: list[str] = field(default_factory=list)  # instance ids (WEBSITE_INSTANCE_ID); stay with the slot
    slot_swap_status: dict | None = None
    target_swap_slot: str | None = None


@dataclass
class App:
    resource_group: str
    name: str
    subscription_id: str | None = None  # None: any subscription id reaches this app
    location: str = "West Europe"
    kind: str = "app,linux"
    sticky: dict[str, list[str]] = field(default_factory=lambda: {
        "appSettingNames": [], "connectionStringNames": [], "azureStorageConfigNames": []})
    slots: dict[str, Slot] = field(default_factory=dict)  # keyed by lower-case slot name

    def slot(self, name: str | None) -> Slot | None:
        return self.slots.get((name or PRODUCTION).lower())


def _str(value: Any, what: str, limit: int = MAX_NAME) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadRequest(f"{what} must be a non-empty string of at most {limit} characters")
    return value


def _name(value: Any, what: str) -> str:
    value = _str(value, what)
    if not NAME_RE.match(value):
        raise BadRequest(f"{what} has invalid characters")
    return value


def parse_settings(raw: Any, what: str = "app settings") -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_SETTINGS:
        raise BadRequest(f"{what} must be an object of at most {MAX_SETTINGS} entries")
    out: dict[str, str] = {}
    for k, v in raw.items():
        _str(k, f"{what} name", 1024)
        if v is None:
            v = ""
        if not isinstance(v, str) or len(v) > 65536:
            raise BadRequest(f"{what} value for {k!r} must be a string")
        out[k] = v
    return out


def parse_names(raw: Any, what: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_SETTINGS:
        raise BadRequest(f"{what} must be a list of names")
    return [_str(n, what, 1024) for n in raw]


def parse_site_config(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > 200:
        raise BadRequest("siteConfig must be an object of at most 200 fields")
    return copy.deepcopy(raw)


def parse_deployment(raw: Any, now: str) -> dict:
    if not isinstance(raw, dict):
        raise BadRequest("a deployment must be an object")
    dep_id = raw.get("id") or uuid.uuid4().hex
    return {
        "id": _name(str(dep_id), "deployment id"),
        "status": int(raw.get("status", DEPLOYMENT_SUCCESS)),
        "message": str(raw.get("message", ""))[:4096],
        "author": str(raw.get("author", "standin"))[:256],
        "deployer": str(raw.get("deployer", "standin"))[:256],
        "author_email": str(raw.get("author_email", ""))[:256],
        "start_time": str(raw.get("start_time") or now),
        "end_time": str(raw.get("end_time") or raw.get("start_time") or now),
        "active": bool(raw.get("active", False)),
        "details": str(raw.get("details", ""))[:4096],
        "log": [str(line)[:1000] for line in (raw.get("log") or [])[:200]],
    }


def parse_connection_strings(raw: Any) -> dict[str, dict[str, str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_SETTINGS:
        raise BadRequest(f"connection strings must be an object of at most {MAX_SETTINGS} entries")
    out = {}
    for k, v in raw.items():
        _str(k, "connection string name", 1024)
        value, typ = (v.get("value"), v.get("type", "Custom")) if isinstance(v, dict) else (v, "Custom")
        if not isinstance(value, str) or len(value) > 65536 or not isinstance(typ, str):
            raise BadRequest(f"connection string {k!r} must be a string or {{value, type}}")
        out[k] = {"value": value, "type": typ[:40]}
    return out


def parse_slot(name: str, raw: Any, now: str) -> Slot:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadRequest(f"slot {name!r} must be an object")
    site_config = parse_site_config(raw.get("site_config"))
    if raw.get("linux_fx_version") is not None:
        site_config["linuxFxVersion"] = _str(raw["linux_fx_version"], "linux_fx_version", 1024)
    state = raw.get("state", "Running")
    if state not in ("Running", "Stopped"):
        raise BadRequest("state must be Running or Stopped")
    deployments = [parse_deployment(d, now) for d in (raw.get("deployments") or [])[:500]]
    deployments.sort(key=lambda d: d["start_time"], reverse=True)  # stable: equal times keep given order
    if deployments and not any(d["active"] for d in deployments):
        deployments[0]["active"] = True
    tss = raw.get("target_swap_slot")
    return Slot(name=name, app_settings=parse_settings(raw.get("app_settings")), site_config=site_config,
                state=state, deployments=deployments, slot_swap_status=raw.get("slot_swap_status"),
                target_swap_slot=_name(tss, "target_swap_slot") if tss else None,
                connection_strings=parse_connection_strings(raw.get("connection_strings")),
                instances=[_name(i, "instance id") for i in (raw.get("instances") or [])[:50]])


def parse_seed(resource_group: str, name: str, raw: Any, now: str) -> App:
    """Validate a control-API seed body into an App (production slot always exists)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadRequest("seed must be a JSON object")
    sticky_raw = raw.get("slot_config_names") or {}
    if not isinstance(sticky_raw, dict):
        raise BadRequest("slot_config_names must be an object")
    app = App(
        resource_group=_name(resource_group, "resource group"), name=_name(name, "site name"),
        subscription_id=_str(raw["subscription_id"], "subscription_id") if raw.get("subscription_id") else None,
        location=str(raw.get("location", "West Europe"))[:64], kind=str(raw.get("kind", "app,linux"))[:64],
        sticky={"appSettingNames": parse_names(sticky_raw.get("appSettingNames"), "appSettingNames"),
                "connectionStringNames": parse_names(sticky_raw.get("connectionStringNames"), "connectionStringNames"),
                "azureStorageConfigNames": parse_names(sticky_raw.get("azureStorageConfigNames"),
                                                       "azureStorageConfigNames")},
    )
    slots_raw = raw.get("slots") or {}
    if not isinstance(slots_raw, dict) or len(slots_raw) > 20:
        raise BadRequest("slots must be an object of at most 20 slots")
    for slot_name, slot_raw in slots_raw.items():
        _name(slot_name, "slot name")
        app.slots[slot_name.lower()] = parse_slot(slot_name.lower() if slot_name.lower() == PRODUCTION
                                                  else slot_name, slot_raw, now)
    app.slots.setdefault(PRODUCTION, Slot(name=PRODUCTION))
    return app


def swap_slots(source: Slot, target: Slot, sticky_settings: set[str], now: str,
               sticky_connections: frozenset[str] | set[str] = frozenset()) -> tuple[Slot, Slot]:
    """App Service swap semantics: content and non-sticky config move, sticky app settings stay with the slot.

    Returns new (source, target); inputs are not modified. Slot names, state and sticky settings stay put.
    """
    def moved(own: Slot, other: Slot) -> Slot:
        settings = {k: v for k, v in own.app_settings.items() if k in sticky_settings}
        settings.update({k: v for k, v in other.app_settings.items() if k not in sticky_settings})
        conns = {k: dict(v) for k, v in own.connection_strings.items() if k in sticky_connections}
        conns.update({k: dict(v) for k, v in other.connection_strings.items() if k not in sticky_connections})
        return Slot(name=own.name, app_settings=settings, site_config=copy.deepcopy(other.site_config),
                    connection_strings=conns, instances=list(own.instances),
                    state=own.state, deployments=copy.deepcopy(other.deployments),
                    slot_swap_status={"timestampUtc": now, "sourceSlotName": source.name,
                                      "destinationSlotName": target.name},
                    target_swap_slot=None)
    return moved(source, target), moved(target, source)


def site_id(sub: str, app: App, slot: Slot) -> str:
    base = f"/subscriptions/{sub}/resourceGroups/{app.resource_group}/providers/Microsoft.Web/sites/{app.name}"
    return base if slot.name == PRODUCTION else f"{base}/slots/{slot.name}"


def host_name(app: App, slot: Slot) -> str:
    return f"{app.name}.azurewebsites.net" if slot.name == PRODUCTION else f"{app.name}-{slot.name}.azurewebsites.net"


def _type(slot: Slot, suffix: str = "") -> str:
    return ("Microsoft.Web/sites" if slot.name == PRODUCTION else "Microsoft.Web/sites/slots") + suffix


def _res_name(app: App, slot: Slot) -> str:
    return app.name if slot.name == PRODUCTION else f"{app.name}/{slot.name}"


def site_config_props(slot: Slot) -> dict:
    return {"numberOfWorkers": 1, "linuxFxVersion": "", "alwaysOn": True, "http20Enabled": True,
            "minTlsVersion": "1.2", "ftpsState": "FtpsOnly", **slot.site_config}


def render_site(sub: str, app: App, slot: Slot) -> dict:
    host = host_name(app, slot)
    cfg = site_config_props(slot)
    return {
        "id": site_id(sub, app, slot), "name": _res_name(app, slot), "type": _type(slot), "kind": app.kind,
        "location": app.location,
        "properties": {
            "name": _res_name(app, slot), "state": slot.state, "enabled": True, "availabilityState": "Normal",
            "usageState": "Normal", "hostNames": [host], "enabledHostNames": [host, host.replace(
                ".azurewebsites.net", ".scm.azurewebsites.net")], "defaultHostName": host,
            "repositorySiteName": app.name, "resourceGroup": app.resource_group, "reserved": "linux" in app.kind,
            "httpsOnly": True, "slotSwapStatus": copy.deepcopy(slot.slot_swap_status),
            "targetSwapSlot": slot.target_swap_slot,
            "siteConfig": {"linuxFxVersion": cfg["linuxFxVersion"], "numberOfWorkers": cfg["numberOfWorkers"],
                           "alwaysOn": cfg["alwaysOn"]},
        },
    }


def render_config(sub: str, app: App, slot: Slot, name: str, props: Any) -> dict:
    return {"id": f"{site_id(sub, app, slot)}/config/{name}", "name": name, "type": _type(slot, "/config"),
            "location": app.location, "properties": props}


def render_deployment(sub: str, app: App, slot: Slot, d: dict) -> dict:
    return {"id": f"{site_id(sub, app, slot)}/deployments/{d['id']}", "name": f"{_res_name(app, slot)}/{d['id']}",
            "type": _type(slot, "/deployments"),
            "properties": {k: v for k, v in d.items() if k not in ("id", "log")}}


def render_deployments(sub: str, app: App, slot: Slot) -> dict:
    return {"value": [render_deployment(sub, app, slot, d) for d in slot.deployments], "nextLink": None}


def render_deployment_log(sub: str, app: App, slot: Slot, d: dict) -> dict:
    out = render_deployment(sub, app, slot, d)
    out["properties"]["details"] = "\n".join(d.get("log") or []) or d.get("details", "")
    return out


def render_app_state(app: App) -> dict:
    return {
        "resource_group": app.resource_group, "name": app.name, "subscription_id": app.subscription_id,
        "location": app.location, "kind": app.kind, "slot_config_names": copy.deepcopy(app.sticky),
        "slots": {k: {"name": s.name, "state": s.state, "app_settings": dict(s.app_settings),
                      "connection_strings": copy.deepcopy(s.connection_strings),
                      "site_config": copy.deepcopy(s.site_config),
                      "linux_fx_version": s.site_config.get("linuxFxVersion", ""),
                      "deployments": copy.deepcopy(s.deployments), "slot_swap_status": s.slot_swap_status,
                      "target_swap_slot": s.target_swap_slot} for k, s in app.slots.items()},
    }


# ============================================================================================ state

@dataclass
class SwapOp:
    id: str
    app_key: tuple[str, str]
    source: str
    target: str
    path: str  # resource path the swap was posted on (site or slot)
    subscription: str
    created: dt.datetime
    started: float
    duration: float
    hang: bool
    fail: dict | None
    status: str = "InProgress"  # InProgress | Succeeded | Failed
    finished_utc: str | None = None

    def public(self) -> dict:
        return {"id": self.id, "resource_group": self.app_key[0], "name": self.app_key[1], "source": self.source,
                "target": self.target, "status": self.status, "hang": self.hang, "duration": self.duration,
                "created_utc": self.created.isoformat(), "finished_utc": self.finished_utc}


@dataclass
class Fault:
    id: str
    method: str
    path: re.Pattern[str]
    remaining: int
    status: int
    body: Any
    headers: dict[str, str]
    hits: int = 0

    def public(self) -> dict:
        return {"id": self.id, "method": self.method, "path": self.path.pattern, "remaining": self.remaining,
                "status": self.status, "body": self.body, "headers": self.headers, "hits": self.hits}


def parse_fault(raw: Any) -> Fault:
    if not isinstance(raw, dict):
        raise BadRequest("fault must be an object")
    method = str(raw.get("method", "*")).upper()[:10]
    pattern = _str(raw.get("path", ".*"), "path", 500)
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise BadRequest(f"path is not a valid regex: {exc}") from None
    status = int(raw.get("status", 500))
    if not 400 <= status <= 599:
        raise BadRequest("status must be 400..599")
    count = int(raw.get("count", 1))
    if not 1 <= count <= 10000:
        raise BadRequest("count must be 1..10000")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise BadRequest("headers must map strings to strings")
    body = raw.get("body")
    if body is None:
        body = arm_error(str(raw.get("code") or "InternalServerError")[:128],
                         str(raw.get("message") or "Injected fault.")[:4096])
    return Fault(uuid.uuid4().hex[:12], method, compiled, count, status, body, dict(headers))


@dataclass
class SwapBehavior:
    duration_seconds: float = 0.0
    hang: bool = False
    fail: dict | None = None  # {"status": 400, "code": ..., "message": ...}: the operation ends failed
    retry_after: float = 1.0

    def public(self) -> dict:
        return {"duration_seconds": self.duration_seconds, "hang": self.hang, "fail": self.fail,
                "retry_after": self.retry_after}


class World:
    """All the stand-in's state; every access holds ArmWebHandler.lock."""

    def __init__(self, retry_after: float = 1.0) -> None:
        self.default_retry_after = retry_after
        self.reset()

    def reset(self) -> None:
        self.apps: dict[tuple[str, str], App] = {}
        self.ops: collections.OrderedDict[str, SwapOp] = collections.OrderedDict()
        self.faults: list[Fault] = []
        self.behavior = SwapBehavior(retry_after=self.default_retry_after)
        self.counters: collections.Counter[str] = collections.Counter()
        self.routes: collections.Counter[str] = collections.Counter()
        self.log: collections.deque[dict] = collections.deque(maxlen=500)
        self.activity: list[dict] = []                      # Activity Log events (standins.arm_monitor)
        self.metrics: dict[str, dict[str, dict[str, float]]] = {}  # resource -> metric -> minute -> value

    def running_op(self, key: tuple[str, str]) -> SwapOp | None:
        return next((op for op in self.ops.values() if op.app_key == key and op.status == "InProgress"), None)

    def advance(self, now: float) -> None:
        """Finish every swap whose time has come (lazily, on each request)."""
        for op in self.ops.values():
            if op.status != "InProgress" or op.hang or now - op.started < op.duration:
                continue
            op.finished_utc = utc_now()
            app = self.apps.get(op.app_key)
            src, dst = (app.slot(op.source), app.slot(op.target)) if app else (None, None)
            if op.fail or not (app and src and dst):
                op.status = "Failed"
                op.fail = op.fail or {"status": 404, "code": "ResourceNotFound", "message": "The site was removed."}
                self.counters["swaps_failed"] += 1
                continue
            new_src, new_dst = swap_slots(src, dst, set(app.sticky["appSettingNames"]), op.finished_utc,
                                          set(app.sticky["connectionStringNames"]))
            app.slots[op.source.lower()], app.slots[op.target.lower()] = new_src, new_dst
            op.status = "Succeeded"
            self.counters["swaps_completed"] += 1
        while len(self.ops) > 500:
            oldest = next(iter(self.ops))
            if self.ops[oldest].status == "InProgress":
                break
            self.ops.popitem(last=False)

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and fault.method in ("*", method) and fault.path.search(path):
                fault.remaining -= 1
                fault.hits += 1
                self.counters["faults_injected"] += 1
                return fault
        return None


# ============================================================================================ handler

class ArmWebHandler(JsonHandler):
    """ARM Microsoft.Web stand-in."""

    world = World()
    token_secret = ""
    audiences: tuple[str, ...] = tokens.ARM_AUDIENCES

    # ---------------------------------------------------------------- plumbing
    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)
        self.send_header("x-ms-request-id", str(uuid.uuid4()))

    def _match(self, path: str) -> tuple[Callable[..., Any], dict] | None:
        for method, pattern, fn in self.routes:
            if method == self.command:
                m = pattern.match(path)
                if m:
                    return fn, m.groupdict()
        return None

    def _handle(self) -> None:
        self._status = 0
        self.__dict__.pop("_body", None)  # httpbase caches the body per handler, i.e. per keep-alive connection
        path = self.path_only
        route_name = "-"
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                self.send_json(413, arm_error("RequestEntityTooLarge", "The request body is too large."))
                return
            self.body_bytes()  # always drain the body so keep-alive connections stay in sync
            matched = self._match(path)
            route_name = matched[0].__name__ if matched else "-"
            if path.startswith("/_standin/"):
                if not matched:
                    self.not_found()
                    return
                fn, kwargs = matched
                with self.lock:
                    self.world.advance(time.monotonic())
                    resp = fn(self, **kwargs)
                self.send_json(*resp)
                return
            self._handle_arm(path, matched)
        except BadRequest as exc:
            self.send_json(400, arm_error("BadRequest", str(exc)))
        except Exception as exc:  # a stand-in bug must be visible, not a hung client
            self.send_json(500, arm_error("StandinError", repr(exc)[:2000]))
        finally:
            if not path.startswith("/_standin/"):
                with self.lock:
                    self.world.routes[route_name] += 1
                    self.world.log.append({"method": self.command, "path": path, "route": route_name,
                                           "status": self._status, "time_utc": utc_now()})

    def _handle_arm(self, path: str, matched: tuple[Callable[..., Any], dict] | None) -> None:
        self.claims = tokens.check_bearer(self, self.token_secret, self.audiences)
        if self.claims is None:
            with self.lock:
                self.world.counters["auth_failures"] += 1
            return
        api_version = self.query.get("api-version")
        if not api_version:
            self.send_json(400, arm_error("MissingApiVersionParameter",
                                          "The api-version query parameter (?api-version=) is required for all "
                                          "requests."))
            return
        if not API_VERSION_RE.match(api_version):
            self.send_json(400, arm_error("InvalidApiVersionParameter",
                                          f"The api-version '{api_version[:40]}' is invalid."))
            return
        with self.lock:
            self.world.advance(time.monotonic())
            fault = self.world.take_fault(self.command, path)
            if fault:
                resp: Resp = (fault.status, copy.deepcopy(fault.body), dict(fault.headers))
            elif not matched:
                resp = (404, arm_error("InvalidResourceType",
                                       f"The resource type could not be found for {self.command} {path[:300]}."), {})
            else:
                fn, kwargs = matched
                resp = fn(self, **kwargs)
        self.send_json(*resp)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    # ---------------------------------------------------------------- lookups (lock held)
    def _find(self, sub: str, rg: str, name: str, slot: str | None) -> tuple[App | None, Slot | None, Resp | None]:
        app = self.world.apps.get((rg.lower(), name.lower()))
        if app and app.subscription_id and app.subscription_id.lower() != sub.lower():
            app = None
        if app is None:
            if not any(k[0] == rg.lower() for k in self.world.apps):
                return None, None, (404, arm_error("ResourceGroupNotFound",
                                                   f"Resource group '{rg[:90]}' could not be found."), {})
            return None, None, (404, arm_error(
                "ResourceNotFound", f"The Resource 'Microsoft.Web/sites/{name[:60]}' under resource group "
                f"'{rg[:90]}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"), {})
        found = app.slot(slot)
        if found is None:
            return app, None, (404, arm_error(
                "ResourceNotFound", f"The Resource 'Microsoft.Web/sites/{app.name}/slots/{str(slot)[:60]}' under "
                f"resource group '{app.resource_group}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix"), {})
        return app, found, None

    def _conflict(self, app: App, slot: str | None) -> Resp | None:
        op = self.world.running_op((app.resource_group.lower(), app.name.lower()))
        if op is None:
            return None
        self.world.counters["conflicts"] += 1
        return (409, arm_error("Conflict", swap_conflict_message(
            app.name, slot or op.source, op.id, op.subscription, f"{app.resource_group}-{app.location.replace(' ', '')}"
            "webspace", op.created)), {})

    def _body_object(self) -> dict:
        try:
            body = self.json_body()
        except ValueError:
            raise BadRequest("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        return body

    # ---------------------------------------------------------------- ARM routes
    @route("GET", SITE + SLOT)
    def get_site(self, sub, rg, name, slot=None) -> Resp:
        app, s, err = self._find(sub, rg, name, slot)
        return err or (200, render_site(sub, app, s), {})

    @route("POST", SITE + SLOT + r"/config/appsettings/list")
    def list_app_settings(self, sub, rg, name, slot=None) -> Resp:
        app, s, err = self._find(sub, rg, name, slot)
        return err or (200, render_config(sub, app, s, "appsettings", dict(s.app_settings)), {})

    @route("POST", SITE + SLOT + r"/config/connectionstrings/list")
    def list_connection_strings(self, sub, rg, name, slot=None) -> Resp:
        app, s, err = self._find(sub, rg, name, slot)
        return err or (200, render_config(sub, app, s, "connectionstrings", copy.deepcopy(s.connection_strings)),
                       {})

    @route("PUT", SITE + SLOT + r"/config/appsettings")
    def put_app_settings(self, sub, rg, name, slot=None) -> Resp:
        app, s, err = self._find(sub, rg, name, slot)
        if err:
            return err
        settings = parse_settings(self._body_object().get("properties"))
        conflict = self._conflict(app, slot)
        if conflict:
            return conflict
        s.app_settings = settings
        record_config_write(self.world, self.claims, site_id(sub, app, s) + "/config/appsettings", sub,
                            app.resource_group)
        return 200, render_config(sub, app, s, "appsettings", dict(s.app_settings)), {}

    @route("GET", SITE + r"/config/slotConfigNames")
    def get_slot_config_names(self, sub, rg, name) -> Resp:
        app, s, err = self._find(sub, rg, name, None)
        return err or (200, render_config(sub, app, s, "slotConfigNames", copy.deepcopy(app.sticky)), {})

    @route("PUT", SITE + r"/config/slotConfigNames")
    def put_slot_config_names(self, sub, rg, name) -> Resp:
        app, s, err = self._find(sub, rg, name, None)
        if err:
            return err
        props = self._body_object().get("properties") or {}
        if not isinstance(props, dict):
            raise BadRequest("properties must be an object")
        sticky = {k: parse_names(props.get(k), k)
                  for k in ("appSettingNames", "connectionStringNames", "azureStorageConfigNames")}
        conflict = self._conflict(app, None)
        if conflict:
            return conflict
        app.sticky = sticky
        return 200, render_config(sub, app, s, "slotConfigNames", copy.deepcopy(app.sticky)), {}

    @route("GET", SITE + SLOT + r"/config/web")
    def get_config_web(self, sub, rg, name, slot=None) -> Resp:
        app, s, err = self._find(sub, rg, name, slot)
        return err or (200, render_config(sub, app, s, "web", site_config_props(s)), {})

    @route("PUT", SITE + SLOT + r"/config/web")
    def put_config_web(self, sub, rg, name, slot=None) -> Resp:
        return self._update_config_web(sub, rg, name, slot)

    @route("PATCH", SITE + SLOT + r"/config/web")
    def patch_config_web(self, sub, rg, name, slot=None) -> Resp:
        return self._update_config_web(sub, rg, name, slot)

    def _update_config_web(self, sub, rg, name, slot) -> Resp:
        app, s, err = self._find(sub, rg, name, slot)
        if err:
            return err
        props = parse_site_config(self._body_object().get("properties"))
        conflict = self._conflict(app, slot)
        if conflict:
            return conflict
        s.site_config.update({k: v for k, v in props.items() if v is not None})
        record_config_write(self.world, self.claims, site_id(sub, app, s) + "/config/web", sub, app.resource_group)
        return 200, render_config(sub, app, s, "web", site_config_props(s)), {}

    @route("GET", SITE + SLOT + r"/deployments")
    def list_deployments(self, sub, rg, name, slot=None) -> Resp:
        app, s, err = self._find(sub, rg, name, slot)
        return err or (200, render_deployments(sub, app, s), {})

    @route("GET", SITE + SLOT + r"/deployments/(?P<dep_id>[^/]+)")
    def get_deployment(self, sub, rg, name, dep_id, slot=None) -> Resp:
        return self._deployment(sub, rg, name, slot, dep_id, render_deployment)

    @route("GET", SITE + SLOT + r"/deployments/(?P<dep_id>[^/]+)/log")
    def get_deployment_log(self, sub, rg, name, dep_id, slot=None) -> Resp:
        return self._deployment(sub, rg, name, slot, dep_id, render_deployment_log)

    def _deployment(self, sub, rg, name, slot, dep_id, render) -> Resp:
        app, s, err = self._find(sub, rg, name, slot)
        if err:
            return err
        found = next((d for d in s.deployments if d["id"].lower() == dep_id.lower()), None)
        if found is None:
            return 404, arm_error("ResourceNotFound", f"The deployment '{dep_id[:64]}' was not found."), {}
        return 200, render(sub, app, s, found), {}

    @route("GET", SITE + SLOT + r"/instances")
    def list_instances(self, sub, rg, name, slot=None) -> Resp:
        app, s, err = self._find(sub, rg, name, slot)
        if err:
            return err
        rid = site_id(sub, app, s)
        ids = s.instances or [uuid.uuid5(uuid.NAMESPACE_URL, rid.lower()).hex * 2]
        return 200, {"value": [{"id": f"{rid}/instances/{i}", "name": i, "type": _type(s, "/instances"),
                                "properties": {"state": "READY", "statusUrl": f"{rid}/instances/{i}/status"}}
                               for i in ids], "nextLink": None}, {}

    @route("POST", SITE + SLOT + r"/slotsswap")
    def slots_swap(self, sub, rg, name, slot=None) -> Resp:
        w = self.world
        w.counters["swap_requests"] += 1
        app, s, err = self._find(sub, rg, name, slot)
        if err:
            return err
        body = self._body_object()
        target_name = body.get("targetSlot")
        if not isinstance(target_name, str) or not target_name or len(target_name) > MAX_NAME:
            raise BadRequest("The parameter 'targetSlot' is required and must be a slot name.")
        if "preserveVnet" in body and not isinstance(body["preserveVnet"], bool):
            raise BadRequest("The parameter 'preserveVnet' must be a boolean.")
        # POST {site}/slotsswap swaps targetSlot into production; POST {site}/slots/{slot}/slotsswap swaps two slots.
        source, target = (target_name, PRODUCTION) if slot is None else (s.name, target_name)
        src, dst = app.slot(source), app.slot(target)
        missing = source if src is None else target if dst is None else None
        if missing:
            return 404, arm_error("ResourceNotFound", f"The Resource 'Microsoft.Web/sites/{app.name}/slots/"
                                  f"{missing[:60]}' under resource group '{app.resource_group}' was not found."), {}
        if src is dst:
            raise BadRequest("The source and target slots of a swap must differ.")
        conflict = self._conflict(app, slot or source)
        if conflict:
            w.counters["swaps_rejected_conflict"] += 1
            return conflict
        b = w.behavior
        op = SwapOp(id=str(uuid.uuid4()), app_key=(app.resource_group.lower(), app.name.lower()),
                    source=src.name, target=dst.name, path=re.sub(r"/slotsswap$", "", self.path_only, flags=re.IGNORECASE),
                    subscription=sub, created=dt.datetime.now(dt.timezone.utc), started=time.monotonic(),
                    duration=b.duration_seconds, hang=b.hang, fail=copy.deepcopy(b.fail))
        w.ops[op.id] = op
        w.counters["swaps_accepted"] += 1
        w.advance(time.monotonic())  # a zero-duration swap is done by the first poll, as in Azure
        return 202, None, {"Location": self._op_url(op), **retry_after_headers(b.retry_after)}

    def _op_url(self, op: SwapOp) -> str:
        return f"{self.base_url()}{op.path}/operationresults/{op.id}?api-version={self.query.get('api-version')}"

    @route("GET", SITE + SLOT + r"/operationresults/(?P<op_id>[^/]+)")
    def operation_result(self, sub, rg, name, op_id, slot=None) -> Resp:
        op = self.world.ops.get(op_id)
        if op is None or op.app_key != (rg.lower(), name.lower()):
            return 404, arm_error("ResourceNotFound", f"The operation '{op_id[:64]}' was not found."), {}
        if op.status == "InProgress":
            return 202, None, {"Location": self._op_url(op), **retry_after_headers(self.world.behavior.retry_after)}
        if op.status == "Failed":
            fail = op.fail or {}
            return (int(fail.get("status", 500)), arm_error(str(fail.get("code", "InternalServerError")),
                                                            str(fail.get("message", "The swap failed."))), {})
        return 200, None, {}

    # ---------------------------------------------------------------- control API (no auth)
    @route("POST", r"/_standin/reset")
    def ctl_reset(self) -> Resp:
        self.world.reset()
        return 200, {"ok": True}, {}

    @route("GET", r"/_standin/apps")
    def ctl_list_apps(self) -> Resp:
        return 200, {"apps": [render_app_state(a) for a in self.world.apps.values()]}, {}

    @route("PUT", r"/_standin/apps/(?P<rg>[^/]+)/(?P<name>[^/]+)")
    def ctl_seed_app(self, rg, name) -> Resp:
        app = parse_seed(rg, name, self.json_body(), utc_now())
        key = (app.resource_group.lower(), app.name.lower())
        for op in self.world.ops.values():  # a re-seed abandons swaps of the old app
            if op.app_key == key and op.status == "InProgress":
                op.status, op.fail, op.finished_utc = "Failed", {"status": 500, "code": "InternalServerError",
                                                                 "message": "The app was re-seeded."}, utc_now()
        self.world.apps[key] = app
        return 200, render_app_state(app), {}

    @route("GET", r"/_standin/apps/(?P<rg>[^/]+)/(?P<name>[^/]+)")
    def ctl_get_app(self, rg, name) -> Resp:
        app = self.world.apps.get((rg.lower(), name.lower()))
        if app is None:
            return 404, {"error": "no such app"}, {}
        state = render_app_state(app)
        running = self.world.running_op((rg.lower(), name.lower()))
        state["running_swap"] = running.public() if running else None
        return 200, state, {}

    @route("PATCH", r"/_standin/apps/(?P<rg>[^/]+)/(?P<name>[^/]+)/slots/(?P<slot>[^/]+)")
    def ctl_patch_slot(self, rg, name, slot) -> Resp:
        app = self.world.apps.get((rg.lower(), name.lower()))
        body = self.json_body() or {}
        if app is None or not isinstance(body, dict):
            return 404, {"error": "no such app"}, {}
        s = app.slot(slot)
        if s is None:  # PATCH creates a missing slot, like adding one in the portal
            s = app.slots[slot.lower()] = Slot(name=_name(slot, "slot name"))
        if "state" in body:
            if body["state"] not in ("Running", "Stopped"):
                raise BadRequest("state must be Running or Stopped")
            s.state = body["state"]
        if "target_swap_slot" in body:
            s.target_swap_slot = _name(body["target_swap_slot"], "target_swap_slot") if body["target_swap_slot"] \
                else None
        if "app_settings" in body:  # merge; a None value deletes
            for k, v in (body["app_settings"] or {}).items():
                if v is None:
                    s.app_settings.pop(k, None)
                else:
                    s.app_settings.update(parse_settings({k: v}))
        if "instances" in body:
            s.instances = [_name(i, "instance id") for i in (body["instances"] or [])[:50]]
        if "app_settings" in body or "connection_strings" in body:  # a portal edit leaves an Activity Log event
            what = "appsettings" if "app_settings" in body else "connectionstrings"
            record_config_write(self.world, None, site_id(app.subscription_id or "00000000-0000-0000-0000-000000000000",
                                                         app, s) + f"/config/{what}",
                                app.subscription_id or "", app.resource_group,
                                caller=str(body.get("caller") or "portal-user@contoso.com")[:200])
        if "connection_strings" in body:  # merge; a None value deletes
            for k, v in (body["connection_strings"] or {}).items():
                if v is None:
                    s.connection_strings.pop(k, None)
                else:
                    s.connection_strings.update(parse_connection_strings({k: v}))
        if "site_config" in body:
            s.site_config.update(parse_site_config(body["site_config"]))
        if body.get("linux_fx_version") is not None:
            s.site_config["linuxFxVersion"] = _str(body["linux_fx_version"], "linux_fx_version", 1024)
        return 200, render_app_state(app)["slots"][slot.lower()], {}

    @route("POST", r"/_standin/apps/(?P<rg>[^/]+)/(?P<name>[^/]+)/slots/(?P<slot>[^/]+)/deploy")
    def ctl_deploy(self, rg, name, slot) -> Resp:
        app = self.world.apps.get((rg.lower(), name.lower()))
        s = app.slot(slot) if app else None
        if s is None:
            return 404, {"error": "no such app or slot"}, {}
        body = self.json_body() or {}
        if not isinstance(body, dict):
            raise BadRequest("body must be an object")
        now = utc_now()
        build_id = body.get("build_id")
        status = int(body.get("status", DEPLOYMENT_SUCCESS))
        dep = parse_deployment({
            "id": body.get("id"), "status": status, "log": body.get("log"),
            "message": body.get("message") or (f"Deployed build {build_id}" if build_id else "Deployed"),
            "author": body.get("author", "healer-drill"), "deployer": body.get("deployer", "standin"),
            "start_time": body.get("start_time") or now, "end_time": body.get("end_time") or now,
            "active": status == DEPLOYMENT_SUCCESS,
        }, now)
        if status != DEPLOYMENT_SUCCESS:  # a failed or unfinished deployment changes nothing the slot runs
            s.deployments.insert(0, dep)
            del s.deployments[500:]
            return 200, {"deployment": dep, "slot": render_app_state(app)["slots"][slot.lower()]}, {}
        settings = parse_settings(body.get("app_settings"))
        if build_id is not None:
            settings[_str(body.get("setting_name", "BUILD_ID"), "setting_name", 1024)] = _str(
                str(build_id), "build_id", 1024)
        if body.get("linux_fx_version") is not None:
            s.site_config["linuxFxVersion"] = _str(body["linux_fx_version"], "linux_fx_version", 1024)
        for d in s.deployments:
            d["active"] = False
        s.deployments.insert(0, dep)
        del s.deployments[500:]
        s.app_settings.update(settings)
        return 200, {"deployment": dep, "slot": render_app_state(app)["slots"][slot.lower()]}, {}

    @route("POST", r"/_standin/faults")
    def ctl_add_fault(self) -> Resp:
        fault = parse_fault(self.json_body())
        if len(self.world.faults) >= 200:
            raise BadRequest("too many faults; DELETE /_standin/faults first")
        self.world.faults.append(fault)
        return 200, fault.public(), {}

    @route("GET", r"/_standin/faults")
    def ctl_list_faults(self) -> Resp:
        return 200, {"faults": [f.public() for f in self.world.faults]}, {}

    @route("DELETE", r"/_standin/faults")
    def ctl_clear_faults(self) -> Resp:
        self.world.faults.clear()
        return 200, {"ok": True}, {}

    @route("GET", r"/_standin/swap-behavior")
    def ctl_get_behavior(self) -> Resp:
        return 200, self.world.behavior.public(), {}

    @route("PUT", r"/_standin/swap-behavior")
    def ctl_set_behavior(self) -> Resp:
        body = self.json_body() or {}
        if not isinstance(body, dict):
            raise BadRequest("body must be an object")
        b = self.world.behavior
        if "duration_seconds" in body:
            b.duration_seconds = max(0.0, min(float(body["duration_seconds"]), 3600.0))
        if "hang" in body:
            b.hang = bool(body["hang"])
        if "fail" in body:
            fail = body["fail"]
            if fail is not None and not (isinstance(fail, dict) and 400 <= int(fail.get("status", 500)) <= 599):
                raise BadRequest("fail must be null or {status: 400..599, code, message}")
            b.fail = fail
        if "retry_after" in body:
            b.retry_after = max(0.001, min(float(body["retry_after"]), 60.0))
        return 200, b.public(), {}

    @route("POST", r"/_standin/swaps/release")
    def ctl_release(self) -> Resp:
        body = self.json_body() or {}
        op_id = body.get("operation_id") if isinstance(body, dict) else None
        released = []
        for op in self.world.ops.values():
            if op.status == "InProgress" and op.hang and (op_id is None or op.id == op_id):
                op.hang = False
                released.append(op.id)
        self.world.advance(time.monotonic())
        return 200, {"released": released}, {}

    @route("GET", r"/_standin/operations")
    def ctl_operations(self) -> Resp:
        return 200, {"operations": [op.public() for op in self.world.ops.values()]}, {}

    @route("GET", r"/_standin/counters")
    def ctl_counters(self) -> Resp:
        w = self.world
        return 200, {**{k: 0 for k in ("swap_requests", "swaps_accepted", "swaps_completed", "swaps_failed",
                                       "swaps_rejected_conflict", "conflicts", "faults_injected", "auth_failures")},
                     **dict(w.counters), "routes": dict(w.routes)}, {}

    @route("GET", r"/_standin/requests")
    def ctl_requests(self) -> Resp:
        return 200, {"requests": list(self.world.log)}, {}


# ============================================================================================ control client

class ArmWebControl:
    """Client for the stand-in's /_standin/ control API (tests and the drill)."""

    def __init__(self, base_url: str, ca: Any = None, timeout: float = 10.0) -> None:
        import ssl

        import httpx

        self.base_url = base_url.rstrip("/")
        verify: Any = ssl.create_default_context(cafile=str(ca)) if ca else True
        self._http = httpx.Client(base_url=self.base_url + "/_standin", verify=verify, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ArmWebControl":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        resp = self._http.request(method, path, json=body)
        if resp.status_code >= 400:
            raise RuntimeError(f"control API {method} {path} -> {resp.status_code}: {resp.text[:500]}")
        return resp.json()

    def reset(self) -> None:
        self._call("POST", "/reset")

    def seed_app(self, resource_group: str, name: str, *, slots: dict[str, dict] | None = None,
                 sticky_app_settings: list[str] | tuple[str, ...] = (),
                 sticky_connection_strings: list[str] | tuple[str, ...] = (),
                 subscription_id: str | None = None, location: str = "West Europe", kind: str = "app,linux") -> dict:
        """Create or replace an app. slots: {slot: {app_settings, linux_fx_version, site_config, state,
        deployments: [{id, status, author, message, start_time, end_time, active}], target_swap_slot}}."""
        return self._call("PUT", f"/apps/{resource_group}/{name}", {
            "slots": slots or {}, "subscription_id": subscription_id, "location": location, "kind": kind,
            "slot_config_names": {"appSettingNames": list(sticky_app_settings),
                                  "connectionStringNames": list(sticky_connection_strings)}})

    def app(self, resource_group: str, name: str) -> dict:
        return self._call("GET", f"/apps/{resource_group}/{name}")

    def apps(self) -> list[dict]:
        return self._call("GET", "/apps")["apps"]

    def deploy(self, resource_group: str, name: str, slot: str, *, build_id: str | None = None,
               setting_name: str = "BUILD_ID", app_settings: dict[str, str] | None = None,
               linux_fx_version: str | None = None, author: str = "healer-drill", message: str | None = None,
               status: int = DEPLOYMENT_SUCCESS, log: list[str] | None = None, id: str | None = None) -> dict:
        """status: Kudu DeployStatus (4 success; 3 failed; 0-2 in progress). Only a successful deployment changes
        the slot's build, settings and active deployment."""
        return self._call("POST", f"/apps/{resource_group}/{name}/slots/{slot}/deploy", {
            "build_id": build_id, "setting_name": setting_name, "app_settings": app_settings or {},
            "linux_fx_version": linux_fx_version, "author": author, "message": message, "status": status,
            "log": log, "id": id})

    def add_activity(self, events: list[dict]) -> dict:
        """Activity Log events: [{resource_id, operation (default sites/config/write), caller, at, status}]."""
        return self._call("POST", "/activity", {"events": events})

    def set_metric(self, resource_id: str, metric: str, points: list[tuple[dt.datetime, float]]) -> dict:
        """Per-minute values of `metric` on `resource_id` served by Microsoft.Insights/metrics."""
        return self._call("PUT", "/metrics", {"resource_id": resource_id, "metric": metric,
                                              "points": [{"at": t.isoformat(), "value": v} for t, v in points]})

    def patch_slot(self, resource_group: str, name: str, slot: str, **fields: Any) -> dict:
        """fields: state, target_swap_slot, app_settings / connection_strings (merge, None deletes), site_config,
        linux_fx_version, instances (ids), caller (who made a settings edit: the Activity Log event's caller)."""
        return self._call("PATCH", f"/apps/{resource_group}/{name}/slots/{slot}", fields)

    def inject_fault(self, method: str, path_regex: str, status: int, *, code: str | None = None,
                     message: str | None = None, count: int = 1, headers: dict[str, str] | None = None,
                     body: Any = None) -> dict:
        """The next `count` ARM requests with `method` ('*' = any) whose path matches `path_regex` (re.search,
        case-insensitive) get `status` with an ARM error body (or `body`) and `headers`."""
        return self._call("POST", "/faults", {"method": method, "path": path_regex, "status": status, "code": code,
                                              "message": message, "count": count, "headers": headers or {},
                                              "body": body})

    def inject_swap_conflict(self, site: str = "site", slot: str = "staging", count: int = 1,
                             path_regex: str = r"/slotsswap$") -> dict:
        return self.inject_fault("POST", path_regex, 409, code="Conflict",
                                 message=swap_conflict_message(site, slot), count=count)

    def faults(self) -> list[dict]:
        return self._call("GET", "/faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def set_swap_behavior(self, *, duration_seconds: float | None = None, hang: bool | None = None,
                          fail: dict | None | bool = False, retry_after: float | None = None) -> dict:
        """fail: {"status", "code", "message"} makes later swaps end failed; None clears; False leaves it."""
        body: dict[str, Any] = {}
        if duration_seconds is not None:
            body["duration_seconds"] = duration_seconds
        if hang is not None:
            body["hang"] = hang
        if fail is not False:
            body["fail"] = fail
        if retry_after is not None:
            body["retry_after"] = retry_after
        return self._call("PUT", "/swap-behavior", body)

    def swap_behavior(self) -> dict:
        return self._call("GET", "/swap-behavior")

    def release_swaps(self, operation_id: str | None = None) -> list[str]:
        return self._call("POST", "/swaps/release", {"operation_id": operation_id})["released"]

    def operations(self) -> list[dict]:
        return self._call("GET", "/operations")["operations"]

    def counters(self) -> dict:
        return self._call("GET", "/counters")

    def requests(self) -> list[dict]:
        return self._call("GET", "/requests")["requests"]

    def wait_for_counter(self, name: str, at_least: int, timeout: float = 10.0) -> dict:
        """Poll the counters until counters[name] >= at_least (deadline, no fixed sleep)."""
        deadline = time.monotonic() + timeout
        while True:
            counters = self.counters()
            if counters.get(name, 0) >= at_least:
                return counters
            if time.monotonic() > deadline:
                raise TimeoutError(f"counter {name} stayed at {counters.get(name, 0)} < {at_least}")
            threading.Event().wait(0.02)


ArmWebHandler.routes = ArmWebHandler.routes + [
    (*getattr(fn, "_route"), fn) for fn in MonitorRoutes.__dict__.values() if hasattr(fn, "_route")]


def main(argv: list[str] | None = None) -> None:
    def extra(p):
        p.add_argument("--token-secret", required=True, help="HS256 key shared with standins.identity --secret")
        p.add_argument("--retry-after", type=float, default=1.0,
                       help="seconds clients are told to wait between swap polls (fractions -> retry-after-ms)")

    def configure(args):
        ArmWebHandler.token_secret = args.token_secret
        ArmWebHandler.world = World(retry_after=args.retry_after)

    serve(ArmWebHandler, argv, configure=configure, extra_args=extra)


if __name__ == "__main__":
    main(sys.argv[1:])
