"""Evaluator of the downshift healer's spend query (healers/downshift/spend.py), classic and workspace shapes.

It computes what the KQL computes: rows of the cost metric (optionally of some roles only), per (role, tenant =
tostring(dimensions[<dimension>])), `s<i>` = sum since start i, `r<i>` = sum since recent start i (sum() skips
nulls; sumif over no matching rows is 0), `lastSeen` = newest row time. The metric, dimension, roles and the
datetimes are read back from the query text, which the healer builds from validated configuration.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from standins.log_analytics_queries import QueryContext, QueryError, Table, register
from standins.log_analytics_queries.sample_cost_by_tenant import kql_tostring

NAME = "downshift-spend"
SHAPES = {"customMetrics": ("name", "valueSum", "customDimensions", "cloud_RoleName", "timestamp"),
          "AppMetrics": ("Name", "Sum", "Properties", "AppRoleName", "TimeGenerated")}
_STRING = r'"((?:[^"\\]|\\.)*)"'
_SUMIF = re.compile(r"\b([sr])(\d+) = sumif\(\w+, \w+ >= datetime\(([0-9T:\-]+Z)\)\)")


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), text)


def _parse(query: str, name_col: str, dims_col: str, role_col: str) -> tuple[str, str, set[str] | None, dict,
                                                                         str | None]:
    metric = re.search(rf"\| where {name_col} == {_STRING}", query)
    dim = re.search(rf"tostring\({dims_col}\[{_STRING}\]\)", query)
    if not metric or not dim:
        raise QueryError("BadArgumentError", "downshift-spend: metric or dimension not found in the query")
    roles_m = re.search(rf"\| where {role_col} in \(([^)]*)\)", query)
    only = re.search(rf"\| where tenant == {_STRING}", query)  # the bench's one-query-per-tenant baseline
    roles = {_unescape(r) for r in re.findall(_STRING, roles_m.group(1))} if roles_m else None
    bounds: dict[tuple[str, int], dt.datetime] = {}
    for kind, i, when in _SUMIF.findall(query):
        bounds[(kind, int(i))] = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
    return _unescape(metric.group(1)), _unescape(dim.group(1)), roles, bounds, \
        (_unescape(only.group(1)) if only else None)


@register(NAME)
def downshift_spend(ctx: QueryContext) -> Table:
    table = ctx.table_in_query(*SHAPES)
    name_col, sum_col, dims_col, role_col, time_col = SHAPES[table]
    metric, dimension, roles, bounds, only = _parse(ctx.query, name_col, dims_col, role_col)
    count = 1 + max((i for _, i in bounds), default=-1)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in ctx.rows(table):
        if row.get(name_col) != metric:
            continue
        role = row.get(role_col) or ""
        if roles is not None and role not in roles:
            continue
        dims = row.get(dims_col) or {}
        tenant = kql_tostring(dims.get(dimension) if isinstance(dims, dict) else None)
        if only is not None and tenant != only:
            continue
        g = groups.setdefault((role, tenant), {"s": [0.0] * count, "r": [0.0] * count, "last": None})
        at, value = row[time_col], row.get(sum_col)
        for (kind, i), start in bounds.items():
            if at >= start and value is not None:
                g[kind][i] += float(value)
        if g["last"] is None or at > g["last"]:
            g["last"] = at
    columns = [("role", "string"), ("tenant", "string")]
    for i in range(count):
        columns += [(f"s{i}", "real"), (f"r{i}", "real")]
    columns.append(("lastSeen", "datetime"))
    rows = []
    for (role, tenant), g in sorted(groups.items()):
        row: list[Any] = [role, tenant]
        for i in range(count):
            row += [g["s"][i], g["r"][i]]
        row.append(g["last"])
        rows.append(row)
    return Table(columns=columns, rows=rows)


RAW = "downshift-bench-raw"


@register(RAW)
def raw_rows(ctx: QueryContext) -> Table:
    """The bench's pull-raw-rows baseline: `project` time, tenant, amount of every cost row, no aggregation."""
    table = ctx.table_in_query(*SHAPES)
    name_col, sum_col, dims_col, role_col, time_col = SHAPES[table]
    metric = re.search(rf"\| where {name_col} == {_STRING}", ctx.query)
    rows = []
    for row in ctx.rows(table):
        if metric and row.get(name_col) != _unescape(metric.group(1)):
            continue
        dims = row.get(dims_col) or {}
        rows.append([row[time_col], kql_tostring(dims.get("tenant") if isinstance(dims, dict) else None),
                     row.get(sum_col)])
    return Table(columns=[("t", "datetime"), ("tenant", "string"), ("amount", "real")], rows=rows)
