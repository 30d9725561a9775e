"""Evaluator of the downshift healer's spend query (healers/downshift/spend.py), classic and workspace shapes.

It computes what the KQL computes: rows of the cost metric (optionally of some roles only), per (role, tenant =
tostring(dimensions[<dimension>])), `s<i>` = sum since start i, `r<i>` = sum since recent start i (sum() skips
nulls; sumif over no matching rows is 0), `lastSeen` = newest row time. The metric, dimension, roles and the
datetimes are read back from the query text, which the healer builds from validated configuration.

The rate-card shape (token metrics priced in the query, `healers/downshift/rates.py`): rows of the input and output
token metrics; `lookup` of the model dimension in the query's `datatable` of prices; `cost = Sum × (input or output
price) / per`, null for a model without a price; `unpriced` = the tokens whose cost is null.
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


_RATE_ROW = re.compile(rf'{_STRING}, ([0-9.]+), ([0-9.]+)')


def _rate_card(query: str, name_col: str, dims_col: str) -> dict[str, Any] | None:
    """The rate-card shape: `let rates = datatable(...) [...]`, `Name in (input, output)`, the model dimension, the
    `iff(Name == input, inputPrice, outputPrice) / per` conversion. None for the dollar-metric shape."""
    table = re.search(r"let rates = datatable\(model: string, inputPrice: real, outputPrice: real\) \[(.*?)\];",
                      query, re.S)
    if not table:
        return None
    metrics = re.search(rf"\| where {name_col} in \({_STRING}, {_STRING}\)", query)
    model = re.search(rf"model = tostring\({dims_col}\[{_STRING}\]\)", query)
    conv = re.search(rf"iff\({name_col} == {_STRING}, inputPrice, outputPrice\) / ([0-9]+)\.0", query)
    if not (metrics and model and conv and "| lookup kind=leftouter rates on model" in query):
        raise QueryError("BadArgumentError", "downshift-spend: rate-card query shape not recognised")
    prices = {_unescape(m): (float(i), float(o)) for m, i, o in _RATE_ROW.findall(table.group(1))}
    return {"metrics": {_unescape(metrics.group(1)), _unescape(metrics.group(2))}, "input": _unescape(conv.group(1)),
            "model": _unescape(model.group(1)), "per": float(conv.group(2)), "prices": prices}


def _parse(query: str, name_col: str, dims_col: str, role_col: str) -> tuple[str, str, set[str] | None, dict,
                                                                         str | None]:
    metric = re.search(rf"\| where {name_col} == {_STRING}", query)
    dim = re.search(rf"tostring\({dims_col}\[{_STRING}\]\), role", query)
    if not dim:
        dim = re.search(rf"tostring\({dims_col}\[{_STRING}\]\)", query)
    if (not metric and "let rates = datatable" not in query) or not dim:
        raise QueryError("BadArgumentError", "downshift-spend: metric or dimension not found in the query")
    roles_m = re.search(rf"\| where {role_col} in \(([^)]*)\)", query)
    only = re.search(rf"\| where tenant == {_STRING}", query)  # the bench's one-query-per-tenant baseline
    roles = {_unescape(r) for r in re.findall(_STRING, roles_m.group(1))} if roles_m else None
    bounds: dict[tuple[str, int], dt.datetime] = {}
    for kind, i, when in _SUMIF.findall(query):
        bounds[(kind, int(i))] = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
    return _unescape(metric.group(1)) if metric else "", _unescape(dim.group(1)), roles, bounds, \
        (_unescape(only.group(1)) if only else None)


@register(NAME)
def downshift_spend(ctx: QueryContext) -> Table:
    table = ctx.table_in_query(*SHAPES)
    name_col, sum_col, dims_col, role_col, time_col = SHAPES[table]
    metric, dimension, roles, bounds, only = _parse(ctx.query, name_col, dims_col, role_col)
    card = _rate_card(ctx.query, name_col, dims_col)
    count = 1 + max((i for _, i in bounds), default=-1)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in ctx.rows(table):
        if (row.get(name_col) not in card["metrics"]) if card else (row.get(name_col) != metric):
            continue
        role = row.get(role_col) or ""
        if roles is not None and role not in roles:
            continue
        dims = row.get(dims_col) or {}
        tenant = kql_tostring(dims.get(dimension) if isinstance(dims, dict) else None)
        if only is not None and tenant != only:
            continue
        g = groups.setdefault((role, tenant), {"s": [0.0] * count, "r": [0.0] * count, "last": None, "u": 0.0})
        at, value = row[time_col], row.get(sum_col)
        if card is not None and value is not None:   # lookup + extend cost = Sum * price / per (null: no price)
            price = card["prices"].get(kql_tostring(dims.get(card["model"]) if isinstance(dims, dict) else None))
            tokens = float(value)
            value = None if price is None else tokens * price[0 if row[name_col] == card["input"] else 1] / card["per"]
            if value is None:
                g["u"] += tokens
        for (kind, i), start in bounds.items():
            if at >= start and value is not None:
                g[kind][i] += float(value)
        if g["last"] is None or at > g["last"]:
            g["last"] = at
    columns = [("role", "string"), ("tenant", "string")]
    for i in range(count):
        columns += [(f"s{i}", "real"), (f"r{i}", "real")]
    if card is not None:
        columns.append(("unpriced", "real"))
    columns.append(("lastSeen", "datetime"))
    rows = []
    for (role, tenant), g in sorted(groups.items()):
        row: list[Any] = [role, tenant]
        for i in range(count):
            row += [g["s"][i], g["r"][i]]
        if card is not None:
            row.append(g["u"])
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


RAW_TOKENS = "downshift-bench-raw-tokens"


@register(RAW_TOKENS)
def raw_token_rows(ctx: QueryContext) -> Table:
    """The bench's rate-card baseline: every token row (tenant, metric name, model, tokens), priced in Python."""
    table = ctx.table_in_query(*SHAPES)
    name_col, sum_col, dims_col, role_col, time_col = SHAPES[table]
    names = set(re.findall(_STRING, (re.search(rf"\| where {name_col} in \(([^)]*)\)", ctx.query) or
                                     re.search("()", "")).group(1)))
    rows = []
    for row in ctx.rows(table):
        if row.get(name_col) not in names:
            continue
        dims = row.get(dims_col) or {}
        dims = dims if isinstance(dims, dict) else {}
        rows.append([kql_tostring(dims.get("tenant")), row[name_col], kql_tostring(dims.get("model")),
                     row.get(sum_col)])
    return Table(columns=[("tenant", "string"), ("name", "string"), ("model", "string"), ("tokens", "real")],
                 rows=rows)
