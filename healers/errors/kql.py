"""The KQL Healer runs for the error-clustering healer, and the rows it gets back.

Every failure is in one aggregation: exceptions, failed dependency calls (`success` false: 429s, timeouts, 5xx from
a model endpoint) and failed requests that logged no exception (a left anti join on the operation id), as one
`union` projected to common columns. Aggregation happens in Kusto: rows are summarised by source, problem id, type,
message shape (digits, GUIDs and hex masked in KQL), role, target and result code, honouring `itemCount`
(sampling), with first/last seen, counts per hour, operations, the application versions seen and one sample message
and stack per group. A day with a million failures comes back as thousands of rows.
The marker line `// healer-query: <name>` names the query (the Log Analytics stand-in dispatches on it).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Schema = Literal["classic", "workspace"]
EXCEPTIONS = "errors-exceptions"
TRACES = "errors-traces"
MAX_SET = 20
SAMPLE_CHARS = 8000
SHAPE_CHARS = 300

# Same masking as the stand-in's evaluator (standins/log_analytics_queries/errors_queries.py) reproduces.
GUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
HEX_RE = r"0x[0-9a-fA-F]+|[0-9a-fA-F]{16,}"
NUM_RE = r"[0-9]+"

# column names per schema
COLS = {
    "classic": {"exceptions": "exceptions", "traces": "traces", "time": "timestamp", "count": "itemCount",
                "problem": "problemId", "type": "type", "message": "outerMessage", "fallback": "message",
                "role": "cloud_RoleName", "operation": "operation_Name", "details": "details",
                "trace_message": "message", "severity": "severityLevel", "dependencies": "dependencies",
                "requests": "requests", "name": "name", "target": "target", "result": "resultCode",
                "dep_type": "type", "failed": "success == 'False'", "url": "url", "operation_id": "operation_Id",
                "version": "application_Version", "dims": "customDimensions"},
    "workspace": {"exceptions": "AppExceptions", "traces": "AppTraces", "time": "TimeGenerated",
                  "count": "ItemCount", "problem": "ProblemId", "type": "ExceptionType", "message": "OuterMessage",
                  "fallback": "Message", "role": "AppRoleName", "operation": "OperationName",
                  "details": "Details", "trace_message": "Message", "severity": "SeverityLevel",
                  "dependencies": "AppDependencies", "requests": "AppRequests", "name": "Name", "target": "Target",
                  "result": "ResultCode", "dep_type": "DependencyType", "failed": "Success == false", "url": "Url",
                  "operation_id": "OperationId", "version": "AppVersion", "dims": "Properties"},
}
SOURCES = ("exceptions", "dependencies", "requests", "traces")
MAX_VERSIONS = 10
_DIMENSION = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,99}")


def _shape(expr: str) -> str:
    return (f"replace_regex(replace_regex(replace_regex(substring({expr}, 0, {SHAPE_CHARS}), @'{GUID_RE}', '<guid>'),"
            f" @'{HEX_RE}', '<hex>'), @'{NUM_RE}', '<n>')")


def _aggregate(c: dict[str, str], key_cols: str, key_names: str, message: str, stack: str) -> str:
    return f"""| extend shape = {_shape(message)}, n = toint(coalesce({c['count']}, 1))
| summarize n = sum(n), firstSeen = min({c['time']}), lastSeen = max({c['time']}),
    operations = make_set({c['operation']}, {MAX_SET}),
    example = take_any(pack('message', substring({message}, 0, 2000), 'stack', substring({stack}, 0, {SAMPLE_CHARS})))
    by {key_cols}, hour = bin({c['time']}, 1h)
| summarize occurrences = sum(n), hourly = make_bag(bag_pack(format_datetime(hour, 'yyyy-MM-ddTHH:mm'), n)),
    firstSeen = min(firstSeen), lastSeen = max(lastSeen), operations = make_set(operations, {MAX_SET}),
    example = take_any(example)
    by {key_names}"""


def version_expr(schema: Schema, dimension: str | None = None) -> str:
    """The application version of a row: `AppVersion` / `application_Version`, or a configured custom dimension
    (a name checked against a strict pattern and quoted, never raw text in the query)."""
    c = COLS[schema]
    if dimension:
        if not _DIMENSION.fullmatch(dimension):
            raise ValueError("a version dimension is a name of letters, digits, '_', '.' or '-'")
        return f"tostring({c['dims']}[{_kql_string(dimension)}])"
    return c["version"]


def failures_query(schema: Schema, max_rows: int = 5000, version_dimension: str | None = None) -> str:
    """Exceptions, failed dependencies and failed requests without an exception: one union, one aggregation."""
    c = COLS[schema]
    version = version_expr(schema, version_dimension)
    common = (f"at = {c['time']}, itemN = {c['count']}, role = {c['role']}, operation = {c['operation']}, "
              f"version = {version}")
    return f"""// healer-query: {EXCEPTIONS}
union
  ({c['exceptions']}
   | project {common}, source = 'exceptions', problemId = {c['problem']}, exceptionType = {c['type']},
       message = iff(isempty({c['message']}), {c['fallback']}, {c['message']}), stack = tostring({c['details']}),
       target = '', resultCode = ''),
  ({c['dependencies']}
   | where {c['failed']}
   | project {common}, source = 'dependencies', problemId = '', exceptionType = strcat('dependency ', {c['dep_type']}),
       message = {c['name']}, stack = '', target = {c['target']}, resultCode = {c['result']}),
  ({c['requests']}
   | where {c['failed']}
   | join kind=leftanti ({c['exceptions']} | where isnotempty({c['operation_id']}) | distinct {c['operation_id']})
       on {c['operation_id']}
   | project {common}, source = 'requests', problemId = '', exceptionType = 'request', message = {c['name']},
       stack = '', target = tostring(parse_url({c['url']}).Host), resultCode = {c['result']})
| extend shape = {_shape('message')}, n = toint(coalesce(itemN, 1))
| summarize n = sum(n), firstSeen = min(at), lastSeen = max(at), operations = make_set(operation, {MAX_SET}),
    versions = make_set(version, {MAX_VERSIONS}),
    example = take_any(pack('message', substring(message, 0, 2000), 'stack', substring(stack, 0, {SAMPLE_CHARS}),
        'version', version))
    by source, problemId, exceptionType, shape, role, target, resultCode, hour = bin(at, 1h)
| summarize occurrences = sum(n), hourly = make_bag(bag_pack(format_datetime(hour, 'yyyy-MM-ddTHH:mm'), n)),
    firstSeen = min(firstSeen), lastSeen = max(lastSeen), operations = make_set(operations, {MAX_SET}),
    versions = make_set(versions, {MAX_VERSIONS}), example = take_any(example)
    by source, problemId, exceptionType, shape, role, target, resultCode
| order by occurrences desc, source asc, problemId asc, shape asc, role asc, target asc, resultCode asc
| take {int(max_rows)}"""


def exceptions_query(schema: Schema, max_rows: int = 5000, version_dimension: str | None = None) -> str:
    """The daily query: every failure (see `failures_query`)."""
    return failures_query(schema, max_rows, version_dimension)


def traces_query(schema: Schema, max_rows: int = 2000) -> str:
    c = COLS[schema]
    return f"""// healer-query: {TRACES}
{c['traces']}
| where {c['severity']} >= 3
{_aggregate(c, f"problemId = '', exceptionType = 'trace', shape, role = {c['role']}",
            "problemId, exceptionType, shape, role", c['trace_message'], "''")}
| order by occurrences desc, shape asc, role asc
| take {int(max_rows)}"""


def _kql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", " ")[:500] + "'"


def _kql_time(value: dt.datetime) -> str:
    return "datetime(" + value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + ")"


def repro_query(schema: Schema, source: str, problem_ids: list[str], types: list[str],
                start: dt.datetime, end: dt.datetime, target: str = "", result_code: str = "") -> str:
    """A query an engineer can paste into Logs to see the raw rows of one group."""
    c = COLS[schema]
    time = c["time"]
    span = f"| where {time} >= {_kql_time(start)} and {time} < {_kql_time(end)}"
    if source == "traces":
        body = f"{c['traces']}\n{span}\n| where {c['severity']} >= 3"
    elif source in ("dependencies", "requests"):
        body = f"{c[source]}\n{span}\n| where {c['failed']}"
        if result_code and result_code not in ("(none)", "(other)"):
            body += f"\n| where {c['result']} == {_kql_string(result_code)}"
        if source == "dependencies" and target and "<*>" not in target:
            body += f"\n| where tolower({c['target']}) == {_kql_string(target)}"
    else:
        ids = ", ".join(_kql_string(p) for p in sorted(set(problem_ids))[:20] if p)
        kinds = ", ".join(_kql_string(t) for t in sorted(set(types))[:20] if t)
        body = f"{c['exceptions']}\n{span}"
        if ids:
            body += f"\n| where {c['problem']} in ({ids})"
        elif kinds:
            body += f"\n| where {c['type']} in ({kinds})"
    return body + f"\n| order by {time} desc\n| take 100"


# ---------------------------------------------------------------------------------------------- rows

@dataclass
class ErrorRow:
    """One aggregated row from Kusto (one problem id / type / message shape / role)."""
    source: str  # "exceptions" | "traces"
    problem_id: str
    type: str
    shape: str
    role: str
    occurrences: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    hourly: dict[str, int] = field(default_factory=dict)
    operations: list[str] = field(default_factory=list)
    sample_message: str = ""
    sample_stack: str = ""
    target: str = ""  # dependency target or request host (failed calls)
    result_code: str = ""
    versions: list[str] = field(default_factory=list)  # application versions seen
    sample_version: str = ""  # the version of the sample row


def _as_dt(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = str(value).replace("Z", "+00:00")
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _as_obj(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def parse_rows(source: str, columns: list[str], rows: list[Any]) -> list[ErrorRow]:
    """Rows of the aggregated query as ErrorRow, bounded and type-checked (the response is untrusted)."""
    out = []
    for raw in rows:
        r = dict(zip(columns, list(raw)))
        sample = _as_obj(r.get("example")) or {}
        if not isinstance(sample, dict):
            sample = {}
        hourly = _as_obj(r.get("hourly")) or {}
        ops = _as_obj(r.get("operations")) or []
        versions = _as_obj(r.get("versions")) or []
        origin = str(r.get("source") or source)
        if origin not in SOURCES:
            origin = source
        try:
            occurrences = int(r.get("occurrences") or 0)
            first, last = _as_dt(r["firstSeen"]), _as_dt(r["lastSeen"])
        except (KeyError, TypeError, ValueError):
            continue
        out.append(ErrorRow(
            source=origin, problem_id=str(r.get("problemId") or "")[:500], type=str(r.get("exceptionType") or "")[:300],
            shape=str(r.get("shape") or "")[:SHAPE_CHARS + 200], role=str(r.get("role") or "")[:200],
            occurrences=max(occurrences, 0), first_seen=first, last_seen=last,
            hourly={str(k)[:32]: int(v) for k, v in (hourly.items() if isinstance(hourly, dict) else [])
                    if isinstance(v, (int, float))},
            operations=[str(o)[:300] for o in (ops if isinstance(ops, list) else []) if o][:MAX_SET],
            sample_message=str(sample.get("message") or "")[:2000],
            sample_stack=str(sample.get("stack") or "")[:SAMPLE_CHARS],
            sample_version=str(sample.get("version") or "")[:100], target=str(r.get("target") or "")[:300],
            result_code=str(r.get("resultCode") or "")[:40],
            versions=[str(v)[:100] for v in (versions if isinstance(versions, list) else []) if v][:MAX_VERSIONS]))
    return out
