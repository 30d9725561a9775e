"""Sample evaluator: sum of the custom metric `agent.cost.usd` per tenant, for classic and workspace tables.

It is the template for healer evaluators: the KQL it stands for is kept next to it (so tests can check the
KQL with standins.kql_check against the same schema the evaluator reads), and it serves both table shapes.
"""
from __future__ import annotations

import json
from typing import Any

from standins.log_analytics_queries import QueryContext, Table, register

NAME = "sample-cost-by-tenant"
METRIC = "agent.cost.usd"

KQL_CLASSIC = f"""// healer-query: {NAME}
customMetrics
| where name == "{METRIC}"
| summarize cost = sum(valueSum) by tenant = tostring(customDimensions.tenant)
| order by tenant asc"""

KQL_WORKSPACE = f"""// healer-query: {NAME}
AppMetrics
| where Name == "{METRIC}"
| summarize cost = sum(Sum) by tenant = tostring(Properties.tenant)
| order by tenant asc"""

# table -> (metric name column, summed column, dimensions column)
SHAPES = {"customMetrics": ("name", "valueSum", "customDimensions"),
          "AppMetrics": ("Name", "Sum", "Properties")}


def kql_tostring(value: Any) -> str:
    """Kusto tostring() of a dynamic member: null -> "", strings as is, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


@register(NAME)
def cost_by_tenant(ctx: QueryContext) -> Table:
    table = ctx.table_in_query(*SHAPES)
    name_col, sum_col, dims_col = SHAPES[table]
    totals: dict[str, float] = {}
    for row in ctx.rows(table):
        if row.get(name_col) != METRIC:
            continue
        dims = row.get(dims_col) or {}
        tenant = kql_tostring(dims.get("tenant") if isinstance(dims, dict) else None)
        value = row.get(sum_col)
        totals.setdefault(tenant, 0.0)
        if value is not None:  # sum() skips nulls
            totals[tenant] += float(value)
    return Table(columns=[("tenant", "string"), ("cost", "real")],
                 rows=[[tenant, totals[tenant]] for tenant in sorted(totals)])
