"""Azure Monitor's ARM surface, served by the ARM stand-in process (same host as Microsoft.Web, as in Azure).

Contracts (as `azure-mgmt-monitor` 7.0.0 calls them; bearer token for ARM, `api-version` required):
  GET /subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01
      &$filter=eventTimestamp ge '<t>' and eventTimestamp le '<t>' and (resourceGroupName|resourceUri|
      resourceProvider|correlationId) eq '<v>'&$select=a,b
      -> {"value": [EventData], "nextLink": null}; a filter without `eventTimestamp ge` is a 400 (as in Azure).
  GET /{resourceUri}/providers/Microsoft.Insights/metrics?api-version=2024-02-01&timespan=<start>/<end>
      &interval=PT1M&metricnames=Http5xx&aggregation=Total,Average
      -> Response {cost, timespan, interval, namespace, resourceregion, value: [Metric {id, type, name, unit,
         timeseries: [{metadatavalues, data: [{timeStamp, total|average|maximum|minimum|count}]}]}]}
      An unknown metric name is a 400 BadRequest, as in Azure.
Config writes made through the Microsoft.Web routes (app settings, connection strings, site config) are recorded
as `Microsoft.Web/sites/config/write` Activity Log events with the token's caller.

Control API (no auth): POST /_standin/activity {"events": [{resource_id, operation, caller, at, status}]},
PUT /_standin/metrics {"resource_id", "metric", "points": [{"at", "value"}]} (per-minute values; replaces the
points in the given minutes), DELETE /_standin/metrics.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from standins.httpbase import route

Resp = tuple[int, Any, dict[str, str]]
MAX_EVENTS = 5000
CONFIG_WRITE = "Microsoft.Web/sites/config/write"
_CLAUSE = re.compile(r"^\s*(\w+)\s+(ge|le|eq)\s+'([^']{0,1000})'\s*$", re.IGNORECASE)
_AGGS = {"total": "total", "average": "average", "maximum": "maximum", "minimum": "minimum", "count": "count"}


def _err(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def _time(text: str) -> dt.datetime:
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.strip().replace("Z", "+00:00"))
    t = dt.datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def parse_filter(text: str) -> dict[str, Any]:
    """The Activity Log $filter: 'and'-joined clauses. Raises ValueError with Azure's kind of message."""
    out: dict[str, Any] = {}
    for clause in re.split(r"\s+and\s+", text or "", flags=re.IGNORECASE):
        m = _CLAUSE.match(clause)
        if not m:
            raise ValueError(f"The filter clause '{clause.strip()[:100]}' is not supported.")
        field, op, value = m.group(1).lower(), m.group(2).lower(), m.group(3)
        if field == "eventtimestamp":
            out["from" if op == "ge" else "to"] = _time(value)
        elif op == "eq" and field in ("resourcegroupname", "resourceuri", "resourceprovider", "correlationid"):
            out[field] = value.lower()
        else:
            raise ValueError(f"The filter field '{field[:40]}' with '{op}' is not supported.")
    if "from" not in out:
        raise ValueError("The $filter must specify a start time: eventTimestamp ge '<time>'.")
    return out


def event_data(*, resource_id: str, operation: str, caller: str, at: dt.datetime, status: str = "Succeeded",
               subscription: str = "", resource_group: str = "") -> dict:
    eid = str(uuid.uuid4())
    return {
        "authorization": {"action": operation, "scope": resource_id}, "caller": caller[:200],
        "channels": "Operation", "correlationId": str(uuid.uuid4()), "description": "", "eventDataId": eid,
        "eventName": {"value": "EndRequest", "localizedValue": "End request"},
        "category": {"value": "Administrative", "localizedValue": "Administrative"},
        "id": f"{resource_id}/events/{eid}/ticks/{int(at.timestamp() * 10**7)}", "level": "Informational",
        "operationId": str(uuid.uuid4()), "operationName": {"value": operation, "localizedValue": operation},
        "resourceGroupName": resource_group, "resourceProviderName": {"value": operation.split("/")[0],
                                                                      "localizedValue": operation.split("/")[0]},
        "resourceType": {"value": "/".join(operation.split("/")[:-1]), "localizedValue": ""},
        "resourceId": resource_id, "status": {"value": status, "localizedValue": status},
        "subStatus": {"value": "OK", "localizedValue": "OK"}, "eventTimestamp": _iso(at),
        "submissionTimestamp": _iso(at), "subscriptionId": subscription, "tenantId": "",
    }


def select_events(events: list[dict], flt: dict[str, Any], select: str | None) -> list[dict]:
    def keep(e: dict) -> bool:
        t = _time(e["eventTimestamp"])
        rid = e["resourceId"].lower()
        return (t >= flt["from"] and t <= flt.get("to", t)
                and ("resourcegroupname" not in flt or e["resourceGroupName"].lower() == flt["resourcegroupname"])
                and ("resourceuri" not in flt or rid == flt["resourceuri"] or rid.startswith(flt["resourceuri"] + "/"))
                and ("resourceprovider" not in flt or rid.find("/providers/" + flt["resourceprovider"] + "/") > 0)
                and ("correlationid" not in flt or e["correlationId"].lower() == flt["correlationid"]))
    chosen = sorted((e for e in events if keep(e)), key=lambda e: e["eventTimestamp"], reverse=True)
    if select:
        fields = {f.strip() for f in select.split(",")}
        chosen = [{k: v for k, v in e.items() if k in fields} for e in chosen]
    return chosen


def _duration(text: str | None) -> dt.timedelta:
    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?|P(\d+)D", (text or "PT1M").upper())
    if not m:
        raise ValueError(f"interval '{str(text)[:40]}' is not an ISO 8601 duration")
    h, mi, s, d = (int(x or 0) for x in m.groups())
    return dt.timedelta(days=d, hours=h, minutes=mi, seconds=s) or dt.timedelta(minutes=1)


def metric_response(resource: str, series: dict[str, dict[str, float]], *, timespan: str, interval: str | None,
                    names: list[str], aggregations: list[str]) -> dict:
    """Pure: the metrics Response for seeded per-minute values (aggregated into `interval` buckets)."""
    start_s, _, end_s = timespan.partition("/")
    start, end = _time(start_s), _time(end_s)
    step = _duration(interval)
    value = []
    for name in names:
        points = series.get(name.lower(), {})
        data, t = [], start
        while t < end and len(data) < 10000:
            bucket = [v for k, v in points.items() if t <= _time(k) < t + step]
            point: dict[str, Any] = {"timeStamp": _iso(t)}
            if bucket:
                stats = {"total": sum(bucket), "average": sum(bucket) / len(bucket), "maximum": max(bucket),
                         "minimum": min(bucket), "count": float(len(bucket))}
                point.update({_AGGS[a]: stats[_AGGS[a]] for a in aggregations if a in _AGGS})
            data.append(point)
            t += step
        value.append({"id": f"{resource}/providers/Microsoft.Insights/metrics/{name}",
                      "type": "Microsoft.Insights/metrics", "name": {"value": name, "localizedValue": name},
                      "displayDescription": "", "unit": "Count", "errorCode": "Success",
                      "timeseries": [{"metadatavalues": [], "data": data}]})
    return {"cost": 0, "timespan": timespan, "interval": interval or "PT1M", "namespace": "Microsoft.Web/sites",
            "resourceregion": "westeurope", "value": value}


class MonitorRoutes:
    """Routes mixed into the ARM stand-in's handler (see standins.arm_web); state lives on `self.world`:
    `world.activity` (list of EventData) and `world.metrics` ({resource id lower: {metric lower: {iso: value}}})."""

    @route("GET", r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Insights/eventtypes/management/values")
    def activity_log(self, sub) -> Resp:
        try:
            flt = parse_filter(self.query.get("$filter", ""))
        except ValueError as exc:
            return 400, _err("BadRequest", str(exc)), {}
        events = [e for e in self.world.activity if e["subscriptionId"].lower() == sub.lower()]
        return 200, {"value": select_events(events, flt, self.query.get("$select")), "nextLink": None}, {}

    @route("GET", r"(?P<resource>/subscriptions/.+?)/providers/Microsoft\.Insights/metrics")
    def metrics(self, resource) -> Resp:
        names = [n for n in (self.query.get("metricnames") or "").split(",") if n]
        known = self.world.metrics.get(resource.lower(), {})
        unknown = [n for n in names if n.lower() not in known]
        if not names or unknown:
            return 400, _err("BadRequest", f"Failed to find metric configuration for provider: Microsoft.Web, "
                                           f"resource Type: sites, metric: {','.join(unknown)[:100]}"), {}
        aggs = [a.strip().lower() for a in (self.query.get("aggregation") or "average").split(",")]
        try:
            body = metric_response(resource, known, timespan=self.query.get("timespan") or "",
                                   interval=self.query.get("interval"), names=names, aggregations=aggs)
        except ValueError as exc:
            return 400, _err("BadRequest", str(exc)[:300]), {}
        return 200, body, {}

    # ---------------------------------------------------------------- control API
    @route("POST", r"/_standin/activity")
    def ctl_activity(self) -> Resp:
        body = self.json_body() or {}
        added = []
        for raw in (body.get("events") or [])[:500]:
            rid = str(raw["resource_id"])
            parts = rid.split("/")
            added.append(event_data(resource_id=rid, operation=str(raw.get("operation", CONFIG_WRITE)),
                                    caller=str(raw.get("caller", "someone@contoso.com")),
                                    at=_time(raw["at"]) if raw.get("at") else dt.datetime.now(dt.timezone.utc),
                                    status=str(raw.get("status", "Succeeded")), subscription=parts[2],
                                    resource_group=parts[4]))
        self.world.activity.extend(added)
        del self.world.activity[:-MAX_EVENTS]
        return 200, {"added": len(added)}, {}

    @route("PUT", r"/_standin/metrics")
    def ctl_metrics(self) -> Resp:
        body = self.json_body() or {}
        series = self.world.metrics.setdefault(str(body["resource_id"]).lower(), {}).setdefault(
            str(body["metric"]).lower(), {})
        for p in (body.get("points") or [])[:10000]:
            at = _time(p["at"]).replace(second=0, microsecond=0)
            series[_iso(at)] = float(p["value"])
        return 200, {"points": len(series)}, {}

    @route("DELETE", r"/_standin/metrics")
    def ctl_clear_metrics(self) -> Resp:
        self.world.metrics.clear()
        return 200, {"ok": True}, {}


def record_config_write(world: Any, claims: dict | None, resource_id: str, subscription: str,
                        resource_group: str, caller: str | None = None) -> None:
    """What Azure does on a config write through ARM: an Administrative Activity Log event with the caller."""
    caller = caller or str((claims or {}).get("upn") or (claims or {}).get("oid") or (claims or {}).get("appid")
                           or "?")
    operation = "Microsoft.Web/sites/slots/config/write" if "/slots/" in resource_id.lower() else CONFIG_WRITE
    world.activity.append(event_data(resource_id=resource_id, operation=operation, caller=caller,
                                     at=dt.datetime.now(dt.timezone.utc), subscription=subscription,
                                     resource_group=resource_group))
    del world.activity[:-MAX_EVENTS]
