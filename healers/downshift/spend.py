"""Per-tenant spend this budget period, from the `agent.cost.usd` custom metric, aggregated in Kusto.

One query per (metric, tenant dimension) answers every app and tenant of a tick: it sums the metric per
(role, tenant) from the start of each distinct budget period in play (tenants in different time zones start their
month at different instants: one `sumif` column per distinct start), plus the spend of the recent burn window
per start (for the forecast) and the newest row's time (freshness). 10,000 tenants are 10,000 result rows and one
round trip; raw rows never leave Log Analytics.

Unknown is never zero: a failed or partial query, or an app with no rows at all, gives no spend observation, and
the core treats that as unknown (never trips, never upshifts).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal
from collections.abc import Iterable

from healers.downshift.core import SpendObservation
from healers.downshift.periods import Period
from healers.downshift.rates import RateCard

Schema = Literal["classic", "workspace"]
NAME = "downshift-spend"
MAX_WINDOWS = 24
RECENT = dt.timedelta(hours=24)      # burn-rate window of the forecast
MIN_RATE_SPAN = dt.timedelta(hours=1)
MAX_ROWS = 500_000
UTC = dt.UTC

# table, metric name column, summed column, dimensions column, role column, time column
SHAPES: dict[str, tuple[str, str, str, str, str, str]] = {
    "classic": ("customMetrics", "name", "valueSum", "customDimensions", "cloud_RoleName", "timestamp"),
    "workspace": ("AppMetrics", "Name", "Sum", "Properties", "AppRoleName", "TimeGenerated"),
}


class SpendError(Exception):
    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class Source:
    schema: Schema
    workspace_id: str | None
    resource_id: str | None
    endpoint: str


def kql_string(value: str) -> str:
    """A Kusto double-quoted string literal (backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def kql_datetime(when: dt.datetime) -> str:
    return "datetime(" + when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + ")"


def recent_start(start: dt.datetime, now: dt.datetime) -> dt.datetime:
    return max(start, now - RECENT)


def spend_query(schema: Schema, metric: str, dimension: str, starts: list[dt.datetime], now: dt.datetime,
                roles: Iterable[str] | None = None, rates: RateCard | None = None) -> str:
    """The KQL: per (role, tenant), spend since each period start `s<i>`, recent spend `r<i>`, newest row time.
    With a rate card the rows are token counts (`rates.input_metric` / `output_metric`, by `model_dimension`),
    priced in the same aggregation; `unpriced` counts tokens of models without a price."""
    if not starts or len(starts) > MAX_WINDOWS:
        raise ValueError(f"1..{MAX_WINDOWS} period starts per query")
    table, name_col, sum_col, dims_col, role_col, time_col = SHAPES[schema]
    money = sum_col if rates is None else "cost"
    columns = []
    for i, start in enumerate(starts):
        columns.append(f"s{i} = sumif({money}, {time_col} >= {kql_datetime(start)})")
        columns.append(f"r{i} = sumif({money}, {time_col} >= {kql_datetime(recent_start(start, now))})")
    role_filter = ""
    wanted = sorted(set(roles or ()))
    if wanted:
        role_filter = f"\n| where {role_col} in ({', '.join(kql_string(r) for r in wanted)})"
    tenant = f"tenant = tostring({dims_col}[{kql_string(dimension)}]), role = {role_col}"
    if rates is None:
        return (f"// healer-query: {NAME}\n"
                f"{table}\n"
                f"| where {name_col} == {kql_string(metric)}{role_filter}\n"
                f"| extend {tenant}\n"
                f"| summarize {', '.join(columns)}, lastSeen = max({time_col}) by role, tenant\n"
                f"| take {MAX_ROWS}")
    inp, out = kql_string(rates.input_metric), kql_string(rates.output_metric)
    return (f"// healer-query: {NAME}\n"
            f"let rates = {rates.kql_table()};\n"
            f"{table}\n"
            f"| where {name_col} in ({inp}, {out}){role_filter}\n"
            f"| extend {tenant}, model = tostring({dims_col}[{kql_string(rates.model_dimension)}])\n"
            f"| lookup kind=leftouter rates on model\n"
            f"| extend cost = {sum_col} * iff({name_col} == {inp}, inputPrice, outputPrice) / {rates.per}.0\n"
            f"| summarize {', '.join(columns)}, unpriced = sumif({sum_col}, isnull(cost)), "
            f"lastSeen = max({time_col}) by role, tenant\n"
            f"| take {MAX_ROWS}")


@dataclass
class Cell:
    """What the query returned for one (role, tenant)."""
    spend: list[float]
    recent: list[float]
    last_seen: dt.datetime | None
    unpriced: float = 0.0       # tokens of models the rate card has no price for: the spend is unknown


@dataclass
class SpendResult:
    starts: list[dt.datetime]
    now: dt.datetime
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    unknown: str = ""           # why every figure is unknown ("" when the query answered fully)
    round_trips: int = 0
    _by_role: dict[str | None, tuple[dt.datetime | None, dict[str, list[Cell]]]] = field(default_factory=dict,
                                                                                     repr=False)

    def index(self, role: str | None) -> tuple[dt.datetime | None, dict[str, list[Cell]]]:
        """(newest row time, tenant → cells) of one role (None: every role), built once per result."""
        if role not in self._by_role:
            newest, tenants = None, {}
            for (r, t), cell in self.cells.items():
                if role is not None and r != role:
                    continue
                tenants.setdefault(t, []).append(cell)
                if cell.last_seen is not None and (newest is None or cell.last_seen > newest):
                    newest = cell.last_seen
            self._by_role[role] = (newest, tenants)
        return self._by_role[role]


def _num(v: Any) -> float:
    if v is None or isinstance(v, bool):
        return 0.0  # sumif() over no matching rows; a row exists, so the tenant has data
    return float(v)


def _time(v: Any) -> dt.datetime | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    text = str(v).replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_rows(columns: list[str], rows: Iterable[Iterable[Any]], windows: int) -> dict[tuple[str, str], Cell]:
    index = {c: i for i, c in enumerate(columns)}
    needed = ["role", "tenant", "lastSeen"] + [f"s{i}" for i in range(windows)] + [f"r{i}" for i in range(windows)]
    missing = [c for c in needed if c not in index]
    if missing:
        raise SpendError(f"spend query returned no column(s) {missing}")
    out: dict[tuple[str, str], Cell] = {}
    for row in rows:
        row = list(row)
        key = (str(row[index["role"]] or "")[:256], str(row[index["tenant"]] or "")[:64])
        out[key] = Cell([_num(row[index[f"s{i}"]]) for i in range(windows)],
                        [_num(row[index[f"r{i}"]]) for i in range(windows)], _time(row[index["lastSeen"]]),
                        _num(row[index["unpriced"]]) if "unpriced" in index else 0.0)
    return out


def forecast(spend: float, recent: float, period: Period, now: dt.datetime) -> float | None:
    """Spend at period end at the recent burn rate; None (unknown) too early in the period to say."""
    since = recent_start(period.start_utc, now)
    span = now - since
    if span < MIN_RATE_SPAN:
        return None
    remaining = max((period.end_utc - now).total_seconds(), 0.0)
    return spend + recent / span.total_seconds() * remaining


def observation(result: SpendResult | None, role: str | None, tenant: str, period: Period,
                budget: float | None) -> SpendObservation | None:
    """The spend of one app's tenant ("*" = the whole app) this period, or None when there is no data at all."""
    if result is None:
        return None
    if result.unknown:
        return SpendObservation(None, budget, None, None, period.key)
    try:
        w = result.starts.index(period.start_utc)
    except ValueError:
        return SpendObservation(None, budget, None, None, period.key)
    newest, tenants = result.index(role)
    if not tenants:
        return SpendObservation(None, budget, None, None, period.key)
    # Freshness is the app's, not the tenant's: an idle tenant's spend is as fresh as the app's newest row.
    as_of = min(newest, result.now) if newest else None
    mine = [c for cells in tenants.values() for c in cells] if tenant == "*" else tenants.get(tenant, [])
    if not mine or any(c.unpriced > 0 for c in mine):   # tokens without a price: unknown, never zero
        return SpendObservation(None, budget, None, as_of, period.key)
    spend = sum(c.spend[w] for c in mine)
    recent = sum(c.recent[w] for c in mine)
    return SpendObservation(spend, budget, forecast(spend, recent, period, result.now), as_of, period.key)


# ---------------------------------------------------------------------------------------------- I/O

DEFAULT_ENDPOINT = "https://api.loganalytics.io"
AUDIENCE = "https://api.loganalytics.io"


def make_client(endpoint: str, credential: Any) -> Any:
    from azure.monitor.query import LogsQueryClient
    kwargs: dict[str, Any] = {}
    if endpoint.rstrip("/") != DEFAULT_ENDPOINT:
        kwargs = {"endpoint": endpoint.rstrip("/"), "audience": AUDIENCE}
    from shared.transport import sdk_options
    return LogsQueryClient(credential, **kwargs, **sdk_options())


def query_spend(client: Any, source: Source, metric: str, dimension: str, starts: list[dt.datetime],
                now: dt.datetime, roles: Iterable[str] | None = None, rates: RateCard | None = None) -> SpendResult:
    """Run the spend query once for every start (chunks of MAX_WINDOWS); a failure raises SpendError."""
    from azure.core.exceptions import HttpResponseError
    from azure.monitor.query import LogsQueryStatus

    starts = sorted(set(s.astimezone(UTC) for s in starts))
    result = SpendResult(starts, now)
    for chunk_at in range(0, len(starts), MAX_WINDOWS):
        chunk = starts[chunk_at:chunk_at + MAX_WINDOWS]
        query = spend_query(source.schema, metric, dimension, chunk, now, roles, rates)
        timespan = (min(chunk), now)
        result.round_trips += 1
        try:
            if source.schema == "workspace":
                if not source.workspace_id:
                    raise SpendError("setting HEALER_DOWNSHIFT_WORKSPACE_ID is required for the workspace schema")
                answer = client.query_workspace(source.workspace_id, query, timespan=timespan, server_timeout=120)
            else:
                if not source.resource_id:
                    raise SpendError("setting HEALER_DOWNSHIFT_RESOURCE_ID is required for the classic schema")
                answer = client.query_resource(source.resource_id, query, timespan=timespan, server_timeout=120)
        except HttpResponseError as exc:
            code = getattr(getattr(exc, "error", None), "code", None) or ""
            raise SpendError(f"spend query failed: HTTP {exc.status_code} {code}".strip(), exc.status_code) from None
        if answer.status == LogsQueryStatus.PARTIAL:
            err = answer.partial_error
            result.unknown = (f"spend query partial ({getattr(err, 'code', 'PartialError')}): figures may be "
                              "incomplete, so all are unknown")
            return result
        if answer.status != LogsQueryStatus.SUCCESS or not answer.tables:
            raise SpendError("spend query returned no table")
        table = answer.tables[0]
        cells = parse_rows(list(table.columns), table.rows, len(chunk))
        offset = chunk_at
        for key, cell in cells.items():
            whole = result.cells.setdefault(key, Cell([0.0] * len(starts), [0.0] * len(starts), None))
            whole.unpriced = max(whole.unpriced, cell.unpriced)
            for i in range(len(chunk)):
                whole.spend[offset + i] = cell.spend[i]
                whole.recent[offset + i] = cell.recent[i]
            if cell.last_seen and (whole.last_seen is None or cell.last_seen > whole.last_seen):
                whole.last_seen = cell.last_seen
    return result
