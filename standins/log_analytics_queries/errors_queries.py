"""Evaluators for the error-clustering healer's queries (healers/errors/kql.py), classic and workspace shapes.

They compute what the KQL computes: the failures query is the union of exceptions, failed dependencies and failed
requests whose operation id logged no exception (the KQL's leftanti join); message shape (GUIDs, hex, digits
masked with the same regexes as the KQL's replace_regex calls), sum of itemCount (null counts as 1), summarised by
source / problem id / type / shape / role / target / result code with first/last seen, counts per hour
('yyyy-MM-ddTHH:mm' keys), up to 20 operation names, up to 10 versions and one sample (message, stack) per group;
ordered by occurrences desc then keys; `take N` honoured. The traces query keeps its own shape.
"""
from __future__ import annotations

import json
import re
from typing import Any

from standins.log_analytics_queries import QueryContext, Table, register

EXCEPTIONS, TRACES = "errors-exceptions", "errors-traces"
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HEX = re.compile(r"0x[0-9a-fA-F]+|[0-9a-fA-F]{16,}")
NUM = re.compile(r"[0-9]+")
MAX_SET = 20

SHAPES = {
    "exceptions": dict(time="timestamp", count="itemCount", problem="problemId", type="type", message="outerMessage",
                       fallback="message", role="cloud_RoleName", operation="operation_Name", details="details",
                       version="application_Version", dims="customDimensions"),
    "AppExceptions": dict(time="TimeGenerated", count="ItemCount", problem="ProblemId", type="ExceptionType",
                          message="OuterMessage", fallback="Message", role="AppRoleName", operation="OperationName",
                          details="Details", version="AppVersion", dims="Properties"),
    "traces": dict(time="timestamp", count="itemCount", message="message", role="cloud_RoleName",
                   operation="operation_Name", severity="severityLevel"),
    "AppTraces": dict(time="TimeGenerated", count="ItemCount", message="Message", role="AppRoleName",
                      operation="OperationName", severity="SeverityLevel"),
}
DEPENDENCIES = {
    "dependencies": dict(time="timestamp", count="itemCount", role="cloud_RoleName", operation="operation_Name",
                         name="name", target="target", result="resultCode", type="type", success="success",
                         version="application_Version", dims="customDimensions"),
    "AppDependencies": dict(time="TimeGenerated", count="ItemCount", role="AppRoleName", operation="OperationName",
                            name="Name", target="Target", result="ResultCode", type="DependencyType",
                            success="Success", version="AppVersion", dims="Properties"),
}
REQUESTS = {
    "requests": dict(time="timestamp", count="itemCount", role="cloud_RoleName", operation="operation_Name",
                     name="name", url="url", result="resultCode", success="success", operation_id="operation_Id",
                     version="application_Version", dims="customDimensions"),
    "AppRequests": dict(time="TimeGenerated", count="ItemCount", role="AppRoleName", operation="OperationName",
                        name="Name", url="Url", result="ResultCode", success="Success", operation_id="OperationId",
                        version="AppVersion", dims="Properties"),
}
FAILURE_COLUMNS = [("source", "string"), ("problemId", "string"), ("exceptionType", "string"), ("shape", "string"),
                   ("role", "string"), ("target", "string"), ("resultCode", "string"), ("occurrences", "long"),
                   ("hourly", "dynamic"), ("firstSeen", "datetime"), ("lastSeen", "datetime"),
                   ("operations", "dynamic"), ("versions", "dynamic"), ("example", "dynamic")]
MAX_VERSIONS = 10
_DIMENSION = re.compile(r"Properties\['((?:[^'\\]|\\.)*)'\]|customDimensions\['((?:[^'\\]|\\.)*)'\]")
COLUMNS = [("problemId", "string"), ("exceptionType", "string"), ("shape", "string"), ("role", "string"),
           ("occurrences", "long"), ("hourly", "dynamic"), ("firstSeen", "datetime"), ("lastSeen", "datetime"),
           ("operations", "dynamic"), ("example", "dynamic")]


def shape_of(message: str) -> str:
    return NUM.sub("<n>", HEX.sub("<hex>", GUID.sub("<guid>", (message or "")[:300])))


def _tostring(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _take(ctx: QueryContext) -> int:
    m = re.search(r"\|\s*take\s+(\d+)\s*$", ctx.query.strip())
    return int(m.group(1)) if m else 10_000


def _aggregate(ctx: QueryContext, rows: list[dict[str, Any]], c: dict[str, str], traces: bool) -> Table:
    groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r[c["time"]]):
        if traces:
            if (row.get(c["severity"]) or 0) < 3:
                continue
            message, stack, problem, kind = _tostring(row.get(c["message"])), "", "", "trace"
        else:
            message = _tostring(row.get(c["message"])) or _tostring(row.get(c["fallback"]))
            stack = _tostring(row.get(c["details"]))
            problem, kind = _tostring(row.get(c["problem"])), _tostring(row.get(c["type"]))
        key = (problem, kind, shape_of(message), _tostring(row.get(c["role"])))
        g = groups.get(key)
        at = row[c["time"]]
        if g is None:
            g = groups[key] = {"n": 0, "hourly": {}, "first": at, "last": at, "ops": [],
                               "example": {"message": message[:2000], "stack": stack[:8000]}}
        n = row.get(c["count"])
        n = 1 if n is None else int(n)
        g["n"] += n
        hour = at.strftime("%Y-%m-%dT%H:00")
        g["hourly"][hour] = g["hourly"].get(hour, 0) + n
        g["first"], g["last"] = min(g["first"], at), max(g["last"], at)
        op = row.get(c["operation"])
        if op and op not in g["ops"] and len(g["ops"]) < MAX_SET:
            g["ops"].append(op)
    out = [[k[0], k[1], k[2], k[3], g["n"], g["hourly"], g["first"], g["last"], sorted(g["ops"]), g["example"]]
           for k, g in groups.items()]
    out.sort(key=lambda r: (-r[4], r[0], r[2], r[3]))
    return Table(columns=COLUMNS, rows=out[:_take(ctx)])


def _failed(value: Any) -> bool:
    """success is a string ('False') in the classic schema and a bool in the workspace one."""
    return value is False or (isinstance(value, str) and value.lower() == "false")


def _host(url: str) -> str:
    from urllib.parse import urlsplit
    try:
        return urlsplit(url or "").hostname or ""
    except ValueError:
        return ""


def _version(row: dict[str, Any], c: dict[str, str], dimension: str | None) -> str:
    if dimension is None:
        return _tostring(row.get(c["version"]))
    dims = row.get(c["dims"])
    if isinstance(dims, str):
        try:
            dims = json.loads(dims)
        except ValueError:
            dims = {}
    return _tostring(dims.get(dimension)) if isinstance(dims, dict) else ""


def _failure_rows(ctx: QueryContext) -> list[dict[str, Any]]:
    """The union's legs, projected to common columns."""
    workspace = ctx.references("AppExceptions")
    ex_t, dep_t, req_t = (("AppExceptions", "AppDependencies", "AppRequests") if workspace
                          else ("exceptions", "dependencies", "requests"))
    m = _DIMENSION.search(ctx.query)
    dimension = (m.group(1) or m.group(2) or "").replace("\\'", "'").replace("\\\\", "\\") if m else None
    out: list[dict[str, Any]] = []
    exc_rows = ctx.rows(ex_t)
    c = SHAPES[ex_t]
    for row in exc_rows:
        out.append({"at": row[c["time"]], "n": row.get(c["count"]), "role": _tostring(row.get(c["role"])),
                    "operation": row.get(c["operation"]), "version": _version(row, c, dimension),
                    "source": "exceptions", "problem": _tostring(row.get(c["problem"])),
                    "type": _tostring(row.get(c["type"])),
                    "message": _tostring(row.get(c["message"])) or _tostring(row.get(c["fallback"])),
                    "stack": _tostring(row.get(c["details"])), "target": "", "result": ""})
    d = DEPENDENCIES[dep_t]
    for row in ctx.rows(dep_t):
        if _failed(row.get(d["success"])):
            out.append({"at": row[d["time"]], "n": row.get(d["count"]), "role": _tostring(row.get(d["role"])),
                        "operation": row.get(d["operation"]), "version": _version(row, d, dimension),
                        "source": "dependencies", "problem": "", "type": "dependency " + _tostring(row.get(d["type"])),
                        "message": _tostring(row.get(d["name"])), "stack": "",
                        "target": _tostring(row.get(d["target"])), "result": _tostring(row.get(d["result"]))})
    r = REQUESTS[req_t]
    logged = {_tostring(row.get(r["operation_id"])) for row in exc_rows} - {""}
    for row in ctx.rows(req_t):
        if _failed(row.get(r["success"])) and _tostring(row.get(r["operation_id"])) not in logged:
            out.append({"at": row[r["time"]], "n": row.get(r["count"]), "role": _tostring(row.get(r["role"])),
                        "operation": row.get(r["operation"]), "version": _version(row, r, dimension),
                        "source": "requests", "problem": "", "type": "request",
                        "message": _tostring(row.get(r["name"])), "stack": "",
                        "target": _host(_tostring(row.get(r["url"]))), "result": _tostring(row.get(r["result"]))})
    return out


@register(EXCEPTIONS)
def exceptions(ctx: QueryContext) -> Table:
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in sorted(_failure_rows(ctx), key=lambda r: r["at"]):
        key = (row["source"], row["problem"], row["type"], shape_of(row["message"]), row["role"], row["target"],
               row["result"])
        g = groups.get(key)
        at = row["at"]
        if g is None:
            g = groups[key] = {"n": 0, "hourly": {}, "first": at, "last": at, "ops": [], "versions": [],
                               "example": {"message": row["message"][:2000], "stack": row["stack"][:8000],
                                           "version": row["version"]}}
        n = 1 if row["n"] is None else int(row["n"])
        g["n"] += n
        hour = at.strftime("%Y-%m-%dT%H:00")
        g["hourly"][hour] = g["hourly"].get(hour, 0) + n
        g["first"], g["last"] = min(g["first"], at), max(g["last"], at)
        for value, bag, limit in ((row["operation"], g["ops"], MAX_SET), (row["version"], g["versions"], MAX_VERSIONS)):
            if value and value not in bag and len(bag) < limit:
                bag.append(value)
    out = [[*k[:4], k[4], k[5], k[6], g["n"], g["hourly"], g["first"], g["last"], sorted(g["ops"]),
            sorted(g["versions"]), g["example"]] for k, g in groups.items()]
    out.sort(key=lambda r: (-r[7], r[0], r[1], r[3], r[4], r[5], r[6]))
    return Table(columns=FAILURE_COLUMNS, rows=out[:_take(ctx)])


@register(TRACES)
def traces(ctx: QueryContext) -> Table:
    table = ctx.table_in_query("AppTraces", "traces")
    return _aggregate(ctx, ctx.rows(table), SHAPES[table], traces=True)
