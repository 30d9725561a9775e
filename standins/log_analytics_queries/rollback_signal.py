"""Evaluator for the rollback tests' and drill's log alert: an availability SLO burn rate over AppRequests.

The KQL it stands for is the sample log alert's rule query (tests/fixtures/alerts/log_search_fired.json) with the
stand-in's marker line: Healer re-runs the rule's own query after a rollback to prove the recovery.
"""
from __future__ import annotations

from standins.log_analytics_queries import QueryContext, Table, register

NAME = "rollback-slo-burn"
KQL = f"""// healer-query: {NAME}
AppRequests
| where AppRoleName == 'shop-web'
| summarize failed = countif(Success == false), total = count()
| extend burn = (failed * 1.0 / total) / 0.001"""


@register(NAME)
def slo_burn(ctx: QueryContext) -> Table:
    rows = [r for r in ctx.rows("AppRequests") if r.get("AppRoleName") == "shop-web"]
    failed = sum(1 for r in rows if r.get("Success") is False)
    total = len(rows)
    burn = (failed * 1.0 / total) / 0.001 if total else None
    return Table(columns=[("failed", "long"), ("total", "long"), ("burn", "real")], rows=[[failed, total, burn]])
