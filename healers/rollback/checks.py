"""The recovery checks' I/O: production's instances one by one, health URLs, and the alert's signal re-read.

Instances: App Service routes a request carrying the `ARRAffinity` cookie to the instance whose id is the cookie's
value (the instance's `WEBSITE_INSTANCE_ID`, which is the `name` ARM lists under `sites/instances`), as long as
client affinity (ARR affinity) is enabled on the app. This is App Service front-end behaviour described by the
App Service team, not a documented API contract, so Healer never trusts the routing: the app's instance URL must
echo the instance id it runs on, and an answer from another instance counts as *not proven*.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from healers.rollback.recovery import HealthCheck, InstanceCheck, Point, Results, SignalReading
from healers.rollback.signal import Signal
from shared.config import Settings
from shared.resource_ids import SiteId
from shared.webapps import web_client

MAX_INSTANCES = 50
LOGS_AUDIENCE = "https://api.loganalytics.io"


def _get(url: str, cookies: dict[str, str] | None = None) -> tuple[int | None, str, str | None]:
    import httpx
    try:
        resp = httpx.get(url, timeout=10.0, follow_redirects=False, cookies=cookies)
    except httpx.HTTPError as exc:
        return None, "", type(exc).__name__
    return resp.status_code, resp.text[:20000], None


def check_instances(settings: Settings, site: SiteId, check: InstanceCheck, good: str) -> tuple[bool, list[str]]:
    ids = [str(i.name).rsplit("/", 1)[-1] for i in
           web_client(settings, site.subscription).web_apps.list_instance_identifiers(site.resource_group,
                                                                                      site.name)][:MAX_INSTANCES]
    if not ids:
        return False, ["no instances listed for production"]
    lines = []
    for iid in ids:
        status, body, err = _get(check.url, {"ARRAffinity": iid, "ARRAffinitySameSite": iid})
        short = iid[:12]
        if err or status is None or not 200 <= status < 300:
            lines.append(f"instance {short}: {err or f'HTTP {status}'}")
            continue
        try:
            import json
            data: Any = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            lines.append(f"instance {short}: the instance URL did not answer JSON")
        elif str(data.get(check.instance_field)) != iid:
            lines.append(f"instance {short}: answered by instance {str(data.get(check.instance_field))[:12]} "
                         f"(routing not honoured; not proven)")
        elif str(data.get(check.build_field)) != good:
            lines.append(f"instance {short}: serves {str(data.get(check.build_field))[:60]}, not {good}")
        else:
            lines.append(f"ok instance {short} serves {good}")
    return all(x.startswith("ok") for x in lines), lines


def check_health(checks: list[HealthCheck]) -> tuple[bool, list[str]]:
    lines = []
    for c in checks:
        status, body, err = _get(c.url)
        where = c.url[:200]
        if err or status is None:
            lines.append(f"{where}: {err}")
        elif status != c.expect_status:
            lines.append(f"{where}: HTTP {status}, expected {c.expect_status}")
        elif c.body_contains and c.body_contains not in body:
            lines.append(f"{where}: HTTP {status} without {c.body_contains[:60]!r}")
        else:
            lines.append(f"ok {where}: HTTP {status}")
    return all(x.startswith("ok") for x in lines), lines


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metric_points(settings: Settings, resource: str, metric: str, namespace: str | None, aggregation: str,
                  start: dt.datetime, end: dt.datetime) -> list[Point]:
    """One value per minute through ARM `Microsoft.Insights/metrics` (azure-mgmt-monitor)."""
    from healers.rollback.changes import monitor_client
    subscription = resource.split("/")[2]
    agg = aggregation.lower()
    answer = monitor_client(settings, subscription).metrics.list(
        resource, timespan=f"{_iso(start)}/{_iso(end)}", interval="PT1M", metricnames=metric,
        aggregation=aggregation, metricnamespace=namespace)
    points = []
    for m in answer.value or []:
        for series in m.timeseries or []:
            for d in series.data or []:
                value = {"total": d.total, "average": d.average, "maximum": d.maximum, "minimum": d.minimum,
                         "count": d.count}.get(agg, d.average)
                at = d.time_stamp if d.time_stamp.tzinfo else d.time_stamp.replace(tzinfo=dt.UTC)
                points.append(Point(at=at, value=value))
    return points[:2000]


def log_points(settings: Settings, resource: str, query: str, measure: str | None, start: dt.datetime,
               end: dt.datetime) -> list[Point]:
    """The rule's own query through LogsQueryClient over [start, end): one point per row (measure or count)."""
    from azure.monitor.query import LogsQueryClient, LogsQueryStatus
    from shared.identity import credential
    endpoint = settings.require("HEALER_ROLLBACK_LOGS_ENDPOINT").rstrip("/")
    kwargs: dict[str, Any] = {} if endpoint == LOGS_AUDIENCE else {"endpoint": endpoint, "audience": LOGS_AUDIENCE}
    client = LogsQueryClient(credential(settings.get("AZURE_CLIENT_ID")), **kwargs)
    answer = client.query_resource(resource, query, timespan=(start, end), server_timeout=60)
    if answer.status != LogsQueryStatus.SUCCESS or not answer.tables:
        raise RuntimeError("the rule's query returned no complete table")
    table = answer.tables[0]
    if not measure:
        return [Point(at=end, value=float(len(table.rows)))]
    col = list(table.columns).index(measure) if measure in table.columns else None
    if col is None:
        raise RuntimeError(f"the rule's query has no column {measure[:60]}")
    return [Point(at=end, value=float(row[col])) for row in table.rows[:2000] if row[col] is not None]


def read_signal(settings: Settings, signal: Signal, resource: str, *, fired_at: dt.datetime,
                swap_at: dt.datetime, now: dt.datetime) -> list[SignalReading]:
    """Each criterion's values over the rule's window before the alert, and from the swap until now."""
    window = dt.timedelta(minutes=signal.window_minutes)
    out = []
    for c in signal.criteria[:3]:
        reading = SignalReading(name=c.metric or (c.measure or "rows"), operator=c.operator, threshold=c.threshold,
                                aggregation=c.aggregation)
        try:
            if signal.kind == "metric":
                reading.before = metric_points(settings, resource, c.metric or "", c.namespace, c.aggregation,
                                               fired_at - window, fired_at)
                reading.after = metric_points(settings, resource, c.metric or "", c.namespace, c.aggregation,
                                              swap_at, now)
            elif signal.kind == "log" and c.query:
                reading.before = log_points(settings, resource, c.query, c.measure, fired_at - window, fired_at)
                reading.after = log_points(settings, resource, c.query, c.measure, max(swap_at, now - window), now)
        except Exception as exc:
            reading.error = f"{type(exc).__name__}: {str(exc)[:150]}"
        out.append(reading)
    return out


def run_checks(settings: Settings, site: SiteId, *, good: str, instance_check: InstanceCheck | None,
               health_checks: list[HealthCheck], signal: Signal | None, signal_resource: str | None,
               fired_at: dt.datetime, swap_at: dt.datetime, now: dt.datetime) -> Results:
    results = Results()
    if instance_check is not None:
        try:
            results.instances_ok, results.instances = check_instances(settings, site, instance_check, good)
        except Exception as exc:
            results.instances_ok, results.instances = False, [f"instances unreadable: {type(exc).__name__}"]
    if health_checks:
        results.health_ok, results.health = check_health(health_checks)
    if signal is not None and signal.kind in ("metric", "log") and signal_resource:
        results.signal = read_signal(settings, signal, signal_resource, fired_at=fired_at, swap_at=swap_at, now=now)
    return results
