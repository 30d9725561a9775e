"""Evaluators for the error-clustering healer's queries (healers/errors/kql.py), classic and workspace shapes.

They compute what the KQL computes: message shape (GUIDs, hex, digits masked with the same regexes as the KQL's
replace_regex calls), sum of itemCount (null counts as 1), summarised by problem id / type / shape / role with
first/last seen, counts per hour ('yyyy-MM-ddTHH:mm' keys), up to 20 operation names and one sample
(message, stack) per group; ordered by occurrences desc then keys; `take N` honoured.
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
                       fallback="message", role="cloud_RoleName", operation="operation_Name", details="details"),
    "AppExceptions": dict(time="TimeGenerated", count="ItemCount", problem="ProblemId", type="ExceptionType",
                          message="OuterMessage", fallback="Message", role="AppRoleName", operation="OperationName",
                          details="Details"),
    "traces": dict(time="timestamp", count="itemCount", message="message", role="cloud_RoleName",
                   operation="operation_Name", severity="severityLevel"),
    "AppTraces": dict(time="TimeGenerated", count="ItemCount", message="Message", role="AppRoleName",
                      operation="OperationName", severity="SeverityLevel"),
}
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


@register(EXCEPTIONS)
def exceptions(ctx: QueryContext) -> Table:
    table = ctx.table_in_query("AppExceptions", "exceptions")
    return _aggregate(ctx, ctx.rows(table), SHAPES[table], traces=False)


@register(TRACES)
def traces(ctx: QueryContext) -> Table:
    table = ctx.table_in_query("AppTraces", "traces")
    return _aggregate(ctx, ctx.rows(table), SHAPES[table], traces=True)
