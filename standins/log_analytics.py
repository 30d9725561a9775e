"""Stand-in for the Azure Monitor Log Analytics query API (api.loganalytics.io, v1), as `LogsQueryClient` uses it.

    python -m standins.log_analytics --port N --cert C --key K --token-secret S [--evaluators mod1,mod2]

Served contract (azure-monitor-query 2.0.0):
  POST /v1/workspaces/{workspaceId}/query      LogsQueryClient.query_workspace
  POST /v1/{resourceId}/query                  LogsQueryClient.query_resource (resourceId = subscriptions/...)
  POST /v1/$batch                              LogsQueryClient.query_batch
  body {"query", "timespan" (ISO 8601 duration or interval, optional), "workspaces" (optional)};
  header Prefer: wait=N, include-statistics=true, include-render=true.
  200 {"tables": [{"name": "PrimaryResult", "columns": [{"name", "type"}], "rows": [[...]]}]}, plus
  "error" {"code": "PartialError", ...} next to the tables for a partial result (LogsQueryPartialResult);
  400 {"error": {"code": "BadArgumentError", "message", "innererror"}} for a bad query;
  401 (standins.tokens.check_bearer) without a valid HS256 bearer token for audience https://api.loganalytics.io;
  429 + Retry-After when throttled.

How queries are answered: a stand-in cannot run KQL. A query must contain a marker line
`// healer-query: <name>`; the evaluator registered under <name> (see standins/log_analytics_queries)
computes the result from rows seeded per table through the control API, restricted to the request timespan.

Control API (no auth, test use only), JSON bodies:
  POST   /_standin/tables/{table}/rows  {"rows": [{col: value}]}   seed rows (columns checked against
                                                                    tools/kql/schemas; time column required)
  GET    /_standin/tables/{table}/rows ; DELETE same path            read / clear a table
  POST   /_standin/faults {"kind": "throttle"|"partial"|"error"|"slow", "count": N, ...}   see Fault
  GET    /_standin/faults ; DELETE /_standin/faults
  GET    /_standin/queries               every query request received (name, query, timespan, status...)
  DELETE /_standin/queries
  GET    /_standin/stats                 {"round_trips", "by_status", "by_route"}
  POST   /_standin/clock {"now": ISO|null}  freeze (or unfreeze) the stand-in's notion of now
  GET    /_standin/evaluators            registered evaluator names
  POST   /_standin/reset                 clear rows, faults, query log, stats and clock
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from standins.httpbase import JsonHandler, route, serve
from standins.log_analytics_queries import QueryContext, QueryError, Table, load_all
from standins.tokens import check_bearer

REPO = Path(__file__).resolve().parent.parent
SCHEMA_DIR = REPO / "tools" / "kql" / "schemas"
AUDIENCES = ("https://api.loganalytics.io", "https://api.loganalytics.io/")
TIME_COLUMN = {"classic": "timestamp", "workspace": "TimeGenerated"}
MARKER_RE = re.compile(r"^[ \t]*//[ \t]*healer-query:[ \t]*([A-Za-z0-9][A-Za-z0-9_.-]{0,99})[ \t]*$", re.MULTILINE)
MAX_QUERY_BODY = 1 << 20
MAX_SEED_BODY = 16 << 20
MAX_ROWS_PER_TABLE = 200_000
MAX_LOG = 10_000
UTC = dt.timezone.utc


# ---------------------------------------------------------------------------------------------- pure core

def parse_datetime(text: str) -> dt.datetime:
    if not isinstance(text, str) or len(text) > 40:
        raise ValueError(f"not an ISO 8601 datetime: {text!r}")
    value = dt.datetime.fromisoformat(text.strip().replace("z", "Z"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_DURATION_RE = re.compile(
    r"^P(?!$)(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: str) -> dt.timedelta:
    """ISO 8601 duration with weeks/days/hours/minutes/seconds (the SDK sends PT<seconds>S)."""
    m = _DURATION_RE.match(text.strip().upper()) if isinstance(text, str) and len(text) <= 40 else None
    if not m:
        raise ValueError(f"unsupported ISO 8601 duration: {text!r}")
    g = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return dt.timedelta(weeks=g["w"], days=g["d"], hours=g["h"], minutes=g["m"], seconds=g["s"])


def _point_or_duration(text: str) -> dt.datetime | dt.timedelta:
    return parse_duration(text) if text.strip().upper().startswith("P") else parse_datetime(text)


def parse_timespan(timespan: str | None, now: dt.datetime) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The [start, end) window of a request timespan: "dur" (ending now), "start/end", "start/dur", "dur/end"."""
    if not timespan:
        return None, None
    if not isinstance(timespan, str):
        raise ValueError("timespan must be a string")
    if "/" not in timespan:
        return now - parse_duration(timespan), now
    a_text, b_text = timespan.split("/", 1)
    a, b = _point_or_duration(a_text), _point_or_duration(b_text)
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        start, end = a, b
    elif isinstance(a, dt.datetime) and isinstance(b, dt.timedelta):
        start, end = a, a + b
    elif isinstance(a, dt.timedelta) and isinstance(b, dt.datetime):
        start, end = b - a, b
    else:
        raise ValueError(f"timespan {timespan!r} has two durations")
    if end < start:
        raise ValueError(f"timespan {timespan!r} ends before it starts")
    return start, end


def query_name(query: str) -> str | None:
    m = MARKER_RE.search(query)
    return m.group(1) if m else None


def parse_prefer(header: str | None) -> dict[str, str]:
    prefs: dict[str, str] = {}
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key:
            prefs[key.strip().lower()] = value.strip()
    return prefs


def format_datetime(value: dt.datetime) -> str:
    value = value.astimezone(UTC) if value.tzinfo else value
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{value.microsecond:06d}Z" if value.microsecond else "Z")


def wire_value(value: Any, typ: str) -> Any:
    """A cell as the v1 API returns it: datetimes as ISO strings, dynamic values as JSON text."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if typ == "dynamic" and not isinstance(value, str):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, dt.timedelta):
        return str(value)
    return value


def wire_table(table: Table) -> dict[str, Any]:
    types = [t for _, t in table.columns]
    return {"name": table.name, "columns": [{"name": n, "type": t} for n, t in table.columns],
            "rows": [[wire_value(v, types[i]) for i, v in enumerate(row)] for row in table.rows]}


def error_body(code: str, message: str, inner_code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner_code:
        error["innererror"] = {"code": inner_code, "message": message}
    return {"error": error}


def load_schemas(directory: Path = SCHEMA_DIR) -> dict[str, tuple[str, dict[str, str]]]:
    """table -> (schema name, {column: Kusto type}) over every schema file."""
    tables: dict[str, tuple[str, dict[str, str]]] = {}
    for path in sorted(directory.glob("*.json")):
        schema = json.loads(path.read_text())
        for table, columns in schema["tables"].items():
            tables[table] = (schema["name"], dict(columns))
    return tables


def _check_cell(column: str, typ: str, value: Any) -> Any:
    if value is None:
        return None
    ok = {
        "string": lambda v: isinstance(v, str), "guid": lambda v: isinstance(v, str),
        "timespan": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "real": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "decimal": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "dynamic": lambda v: True,
        "datetime": lambda v: isinstance(v, str),
    }.get(typ, lambda v: True)
    if not ok(value):
        raise ValueError(f"column {column!r} is {typ}, got {type(value).__name__}")
    return parse_datetime(value) if typ == "datetime" else value


def validate_rows(table: str, schema: str, columns: dict[str, str], rows: Any) -> list[dict[str, Any]]:
    if not isinstance(rows, list):
        raise ValueError("\"rows\" must be a list of objects")
    time_col = TIME_COLUMN.get(schema, "TimeGenerated")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"row {i} is not an object")
        unknown = sorted(set(row) - set(columns))
        if unknown:
            raise ValueError(f"row {i}: {table} has no column(s) {unknown}")
        if row.get(time_col) is None:
            raise ValueError(f"row {i}: the time column {time_col!r} is required")
        out.append({col: _check_cell(col, columns[col], value) for col, value in row.items()})
    return out


@dataclass
class Fault:
    """A failure injected for the next `count` query requests (FIFO across faults).

    kind "throttle": 429 + Retry-After: `retry_after` (seconds), body code ThrottledError.
    kind "partial":  200 with the evaluated tables and "error" {"code": "PartialError", "message", "details"}.
    kind "error":    `status` (default 400) with {"error": {"code": `code`, "message": `message`}}.
    kind "slow":     answer normally after `delay` seconds.
    """
    kind: str
    count: int = 1
    retry_after: float = 1
    delay: float = 0.0
    status: int = 400
    code: str = ""
    message: str = ""

    @staticmethod
    def parse(body: Any) -> "Fault":
        if not isinstance(body, dict) or body.get("kind") not in ("throttle", "partial", "error", "slow"):
            raise ValueError("fault needs \"kind\": throttle | partial | error | slow")
        fault = Fault(kind=body["kind"], count=int(body.get("count", 1)),
                      retry_after=float(body.get("retry_after", 1)), delay=float(body.get("delay", 0)),
                      status=int(body.get("status", 400)), code=str(body.get("code", ""))[:100],
                      message=str(body.get("message", ""))[:1000])
        if not 1 <= fault.count <= 10_000 or not 0 <= fault.delay <= 120 or not 0 <= fault.retry_after <= 600:
            raise ValueError("fault count/delay/retry_after out of range")
        if not 400 <= fault.status <= 599:
            raise ValueError("fault status must be 4xx/5xx")
        return fault


# ---------------------------------------------------------------------------------------------- state

@dataclass
class State:
    tables: dict[str, tuple[str, dict[str, str]]]
    token_secret: str = ""
    evaluators: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    faults: deque = field(default_factory=deque)
    log: list[dict[str, Any]] = field(default_factory=list)
    round_trips: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_route: dict[str, int] = field(default_factory=dict)
    frozen_now: dt.datetime | None = None

    def now(self) -> dt.datetime:
        return self.frozen_now or dt.datetime.now(UTC)

    def take_fault(self) -> Fault | None:
        while self.faults:
            fault = self.faults[0]
            if fault.count <= 0:
                self.faults.popleft()
                continue
            fault.count -= 1
            if fault.count == 0:
                self.faults.popleft()
            return fault
        return None

    def reset(self) -> None:
        self.rows.clear()
        self.faults.clear()
        self.log.clear()
        self.round_trips = 0
        self.by_status.clear()
        self.by_route.clear()
        self.frozen_now = None


STATE = State(tables={})


# ---------------------------------------------------------------------------------------------- query pipeline

def evaluate(state: State, body: dict[str, Any], *, workspace_id: str | None, resource_id: str | None
             ) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """(status, response body, log fields) for one query body; pure except for reading the seeded rows."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
        return 400, error_body("BadArgumentError", "The request had some invalid properties: query is required",
                               "QueryValidationError"), {}
    query, timespan = body["query"], body.get("timespan")
    workspaces = body.get("workspaces") or []
    name = query_name(query)
    fields = {"name": name, "query": query, "timespan": timespan, "workspaces": workspaces}
    try:
        window = parse_timespan(timespan, state.now())
    except ValueError as exc:
        return 400, error_body("BadArgumentError", f"Invalid timespan: {exc}", "InvalidTimespan"), fields
    if name is None:
        return 400, error_body("BadArgumentError", "stand-in: the query has no '// healer-query: <name>' line",
                               "SemanticError"), fields
    evaluator = state.evaluators.get(name)
    if evaluator is None:
        return 400, error_body("BadArgumentError", f"stand-in: no evaluator registered for query {name!r}",
                               "SemanticError"), fields
    start, end = window

    def rows_of(table: str) -> list[dict[str, Any]]:
        schema = state.tables.get(table, ("workspace", {}))[0]
        time_col = TIME_COLUMN.get(schema, "TimeGenerated")
        return [dict(r) for r in state.rows.get(table, [])
                if (start is None or r[time_col] >= start) and (end is None or r[time_col] < end)]

    ctx = QueryContext(name=name, query=query, window=window, now=state.now(), workspace_id=workspace_id,
                       resource_id=resource_id, additional_workspaces=list(workspaces), _rows=rows_of)
    try:
        result = evaluator(ctx)
    except QueryError as exc:
        return exc.status, error_body(exc.code, exc.message, "SemanticError"), fields
    tables = [result] if isinstance(result, Table) else list(result)
    return 200, {"tables": [wire_table(t) for t in tables]}, fields


def statistics(response: dict[str, Any]) -> dict[str, Any]:
    rows = sum(len(t["rows"]) for t in response.get("tables", []))
    return {"query": {"executionTime": 0.001, "resourceUsage": {"cache": {}, "cpu": {}, "memory": {}},
                      "datasetStatistics": [{"tableRowCount": rows, "tableSize": 0}]}}


class LogAnalyticsHandler(JsonHandler):
    """Azure Monitor Log Analytics query API stand-in."""

    # ------------------------------------------------------------------ query routes
    @route("POST", r"/v1/workspaces/(?P<workspace_id>[A-Za-z0-9-]{1,100})/query")
    def query_workspace(self, workspace_id: str) -> None:
        self._query("workspace", workspace_id=workspace_id, resource_id=None)

    @route("POST", r"/v1/+(?P<resource_id>subscriptions/[^?#]{1,1000}?)/query")
    def query_resource(self, resource_id: str) -> None:
        self._query("resource", workspace_id=None, resource_id="/" + resource_id)

    @route("POST", r"/v1/\$batch")
    def query_batch(self) -> None:
        body = self._read_body(MAX_QUERY_BODY * 8, "batch")
        if body is None:
            return
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests or len(requests) > 100:
            self._answer("batch", 400, error_body("BadArgumentError", "requests must hold 1..100 queries"))
            return
        responses = []
        for item in requests:
            if not isinstance(item, dict):
                responses.append({"id": None, "status": 400, "body": error_body("BadArgumentError", "bad item")})
                continue
            status, out, headers = self._run(item.get("body"), workspace_id=item.get("workspace"), resource_id=None,
                                             prefer=(item.get("headers") or {}).get("Prefer"), route_name="batch")
            responses.append({"id": item.get("id"), "status": status, "body": out})
        self._answer("batch", 200, {"responses": responses})

    def _query(self, route_name: str, *, workspace_id: str | None, resource_id: str | None) -> None:
        body = self._read_body(MAX_QUERY_BODY, route_name)
        if body is None:
            return
        status, out, headers = self._run(body, workspace_id=workspace_id, resource_id=resource_id,
                                         prefer=self.headers.get("Prefer"), route_name=route_name)
        self._answer(route_name, status, out, headers)

    def _read_body(self, limit: int, route_name: str) -> Any:
        with self.lock:
            STATE.round_trips += 1
            STATE.by_route[route_name] = STATE.by_route.get(route_name, 0) + 1
        if check_bearer(self, STATE.token_secret, AUDIENCES) is None:
            self._count_status(401)
            self._log({"route": route_name, "status": 401})
            return None
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            self._answer(route_name, 413, error_body("BadArgumentError", "request body too large"))
            return None
        try:
            return self.json_body()
        except ValueError:
            self._answer(route_name, 400, error_body("BadArgumentError", "request body is not JSON"))
            return None

    def _run(self, body: Any, *, workspace_id: str | None, resource_id: str | None, prefer: str | None,
             route_name: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            fault = STATE.take_fault()
        headers: dict[str, str] = {}
        if fault and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault and fault.kind == "throttle":
            status, out = 429, error_body("ThrottledError", "Too many requests. Please retry later.")
            headers["Retry-After"] = f"{fault.retry_after:g}"
            fields: dict[str, Any] = {"name": query_name(body.get("query", "")) if isinstance(body, dict) else None,
                                      "query": body.get("query") if isinstance(body, dict) else None,
                                      "timespan": body.get("timespan") if isinstance(body, dict) else None}
        elif fault and fault.kind == "error":
            status, out = fault.status, error_body(fault.code or "BadArgumentError",
                                                   fault.message or "stand-in: injected error", "InjectedError")
            fields = {"name": query_name(body.get("query", "")) if isinstance(body, dict) else None,
                      "query": body.get("query") if isinstance(body, dict) else None,
                      "timespan": body.get("timespan") if isinstance(body, dict) else None}
        else:
            with self.lock:
                status, out, fields = evaluate(STATE, body, workspace_id=workspace_id, resource_id=resource_id)
            if status == 200 and fault and fault.kind == "partial":
                message = fault.message or "The query was partially successful: results may be incomplete."
                out["error"] = {"code": "PartialError", "message": "There were some errors when processing your "
                                "query.", "details": [{"code": fault.code or "EngineError", "message": message,
                                                       "innererror": {"code": fault.code or "EngineError",
                                                                      "message": message}}]}
        prefs = parse_prefer(prefer)
        applied = []
        if status == 200 and prefs.get("include-statistics") == "true":
            out["statistics"] = statistics(out)
            applied.append("include-statistics=true")
        if "wait" in prefs:
            applied.append(f"wait={prefs['wait']}")
        if applied:
            headers["Preference-Applied"] = ",".join(applied)
        self._log({"route": route_name, "status": status, "workspace_id": workspace_id, "resource_id": resource_id,
                   "prefer": prefer, "fault": fault.kind if fault else None, **fields})
        return status, out, headers

    def _log(self, entry: dict[str, Any]) -> None:
        entry["received_at"] = format_datetime(dt.datetime.now(UTC))
        with self.lock:
            entry["seq"] = len(STATE.log) + 1
            if len(STATE.log) < MAX_LOG:
                STATE.log.append(entry)

    def _count_status(self, status: int) -> None:
        with self.lock:
            STATE.by_status[str(status)] = STATE.by_status.get(str(status), 0) + 1

    def _answer(self, route_name: str, status: int, body: dict[str, Any],
                headers: dict[str, str] | None = None) -> None:
        self._count_status(status)
        self.send_json(status, body, headers)

    # ------------------------------------------------------------------ control API
    def _control_body(self, limit: int = MAX_QUERY_BODY) -> Any:
        if int(self.headers.get("Content-Length") or 0) > limit:
            raise ValueError("body too large")
        return self.json_body()

    @route("POST", r"/_standin/tables/(?P<table>[A-Za-z_][A-Za-z0-9_]{0,99})/rows")
    def seed_rows(self, table: str) -> None:
        if table not in STATE.tables:
            self.send_json(404, error_body("NotFound", f"unknown table {table}; known: {sorted(STATE.tables)}"))
            return
        schema, columns = STATE.tables[table]
        try:
            body = self._control_body(MAX_SEED_BODY)
            rows = validate_rows(table, schema, columns, body.get("rows") if isinstance(body, dict) else None)
        except ValueError as exc:
            self.send_json(400, error_body("BadArgumentError", str(exc)))
            return
        with self.lock:
            stored = STATE.rows.setdefault(table, [])
            if len(stored) + len(rows) > MAX_ROWS_PER_TABLE:
                self.send_json(400, error_body("BadArgumentError", f"more than {MAX_ROWS_PER_TABLE} rows"))
                return
            stored.extend(rows)
            total = len(stored)
        self.send_json(200, {"table": table, "added": len(rows), "total": total})

    @route("GET", r"/_standin/tables/(?P<table>[A-Za-z_][A-Za-z0-9_]{0,99})/rows")
    def read_rows(self, table: str) -> None:
        with self.lock:
            rows = [{k: wire_value(v, "dynamic" if isinstance(v, (dict, list)) else "") for k, v in r.items()}
                    for r in STATE.rows.get(table, [])]
        self.send_json(200, {"table": table, "rows": rows})

    @route("DELETE", r"/_standin/tables/(?P<table>[A-Za-z_][A-Za-z0-9_]{0,99})/rows")
    def clear_rows(self, table: str) -> None:
        with self.lock:
            STATE.rows.pop(table, None)
        self.send_json(200, {"table": table, "total": 0})

    @route("POST", r"/_standin/faults")
    def add_fault(self) -> None:
        try:
            fault = Fault.parse(self._control_body())
        except (ValueError, TypeError) as exc:
            self.send_json(400, error_body("BadArgumentError", str(exc)))
            return
        with self.lock:
            STATE.faults.append(fault)
            pending = len(STATE.faults)
        self.send_json(200, {"queued": fault.__dict__, "pending": pending})

    @route("GET", r"/_standin/faults")
    def list_faults(self) -> None:
        with self.lock:
            self.send_json(200, {"faults": [f.__dict__ for f in STATE.faults]})

    @route("DELETE", r"/_standin/faults")
    def clear_faults(self) -> None:
        with self.lock:
            STATE.faults.clear()
        self.send_json(200, {"faults": []})

    @route("GET", r"/_standin/queries")
    def list_queries(self) -> None:
        with self.lock:
            self.send_json(200, {"queries": list(STATE.log)})

    @route("DELETE", r"/_standin/queries")
    def clear_queries(self) -> None:
        with self.lock:
            STATE.log.clear()
        self.send_json(200, {"queries": []})

    @route("GET", r"/_standin/stats")
    def stats(self) -> None:
        with self.lock:
            self.send_json(200, {"round_trips": STATE.round_trips, "by_status": dict(STATE.by_status),
                                 "by_route": dict(STATE.by_route)})

    @route("POST", r"/_standin/clock")
    def clock(self) -> None:
        try:
            body = self._control_body()
            now = body.get("now") if isinstance(body, dict) else None
            frozen = parse_datetime(now) if now is not None else None
        except ValueError as exc:
            self.send_json(400, error_body("BadArgumentError", str(exc)))
            return
        with self.lock:
            STATE.frozen_now = frozen
        self.send_json(200, {"now": format_datetime(STATE.now()), "frozen": frozen is not None})

    @route("GET", r"/_standin/evaluators")
    def list_evaluators(self) -> None:
        self.send_json(200, {"evaluators": sorted(STATE.evaluators)})

    @route("POST", r"/_standin/reset")
    def reset(self) -> None:
        with self.lock:
            STATE.reset()
        self.send_json(200, {"reset": True})


# ---------------------------------------------------------------------------------------------- test helper

@dataclass
class LogAnalyticsStandin:
    """A running stand-in (started by `start_log_analytics`) and a small client for its control API."""
    server: Any  # standins.harness.Server
    endpoint: str  # pass as LogsQueryClient(endpoint=...); also pass audience=AUDIENCES[0]
    ca_path: Path

    def control(self, method: str, path: str, body: Any = None) -> Any:
        import ssl

        import httpx

        response = httpx.request(method, f"{self.endpoint}/_standin/{path.lstrip('/')}", json=body,
                                 verify=ssl.create_default_context(cafile=str(self.ca_path)), timeout=30)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} /_standin/{path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def seed(self, table: str, rows: list[dict[str, Any]]) -> int:
        return self.control("POST", f"tables/{table}/rows", {"rows": rows})["total"]

    def fault(self, kind: str, count: int = 1, **options: Any) -> None:
        self.control("POST", "faults", {"kind": kind, "count": count, **options})

    def queries(self) -> list[dict[str, Any]]:
        return self.control("GET", "queries")["queries"]

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "stats")

    def set_now(self, now: dt.datetime | None) -> None:
        self.control("POST", "clock", {"now": format_datetime(now) if now else None})

    def reset(self) -> None:
        self.control("POST", "reset", {})

    def stop(self) -> None:
        self.server.stop()


def start_log_analytics(workdir: Path, ca, token_secret: str,
                        evaluator_modules: list[str] | tuple[str, ...] = ()) -> LogAnalyticsStandin:
    """Start the stand-in on a free port with the test CA (`standins.harness.make_test_ca`)."""
    from standins.harness import free_port, start_python_server

    port = free_port()
    args = ["--port", str(port), "--cert", str(ca.cert_path), "--key", str(ca.key_path),
            "--token-secret", token_secret]
    if evaluator_modules:
        args += ["--evaluators", ",".join(evaluator_modules)]
    server = start_python_server("log-analytics", "standins.log_analytics", args, port, workdir)
    return LogAnalyticsStandin(server, f"https://127.0.0.1:{port}", Path(ca.ca_path))


def configure(args) -> None:
    STATE.tables = load_schemas()
    STATE.token_secret = args.token_secret or os.environ.get("LOG_ANALYTICS_TOKEN_SECRET", "")
    extra = [m.strip() for m in (args.evaluators or os.environ.get("LOG_ANALYTICS_EVALUATORS", "")).split(",")]
    STATE.evaluators = dict(load_all([m for m in extra if m]))


def extra_args(parser) -> None:
    parser.add_argument("--token-secret", help="HS256 secret that bearer tokens must be signed with")
    parser.add_argument("--evaluators", help="comma-separated modules to import that register evaluators")


def main(argv: list[str] | None = None) -> None:
    serve(LogAnalyticsHandler, argv, configure=configure, extra_args=extra_args)


if __name__ == "__main__":
    main(sys.argv[1:])
