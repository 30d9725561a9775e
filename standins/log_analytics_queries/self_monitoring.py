"""Evaluators for Healer's self-monitoring alert queries (`infra/kql/self-*.kql`), over seeded `AppTraces` rows.

Each computes what its KQL computes: the rows that make the alert fire (any row fires it).
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from standins.log_analytics_queries import QueryContext, QueryError, Table, register

OUTCOME_COLUMNS = [("TimeGenerated", "datetime"), ("healer", "string"), ("resource", "string"), ("subject", "string"),
                   ("auditId", "string"), ("Message", "string")]


def _props(row: dict[str, Any]) -> dict[str, Any]:
    props = row.get("Properties")
    return props if isinstance(props, dict) else {}


def _outcome_rows(ctx: QueryContext, wanted: set[str], healer: str | None = None) -> Table:
    rows = []
    for row in ctx.rows("AppTraces"):
        p = _props(row)
        if str(p.get("healer.outcome", "")) in wanted and (healer is None or p.get("healer.healer") == healer):
            rows.append([row["TimeGenerated"], str(p.get("healer.healer", "")), str(p.get("healer.resource", "")),
                         str(p.get("healer.subject", "")), str(p.get("healer.audit_id", "")), row.get("Message", "")])
    return Table(columns=OUTCOME_COLUMNS, rows=rows)


@register("self-escalations")
def escalations(ctx: QueryContext) -> Table:
    return _outcome_rows(ctx, {"escalated"})


@register("self-dead-letters")
def dead_letters(ctx: QueryContext) -> Table:
    return _outcome_rows(ctx, {"dead-letter"})


@register("self-config-invalid")
def config_invalid(ctx: QueryContext) -> Table:
    return _outcome_rows(ctx, {"config-invalid"})


@register("self-notify-failures")
def notify_failures(ctx: QueryContext) -> Table:
    table = _outcome_rows(ctx, {"failed", "dead-letter"}, healer="notify")
    keep = [i for i, (name, _) in enumerate(OUTCOME_COLUMNS) if name != "healer"]
    return Table(columns=[OUTCOME_COLUMNS[i] for i in keep], rows=[[r[i] for i in keep] for r in table.rows])


_ROW = re.compile(r'"([A-Za-z0-9_]+)"\s*,\s*(\d+)([mhd])\s*,')
_UNIT = {"m": dt.timedelta(minutes=1), "h": dt.timedelta(hours=1), "d": dt.timedelta(days=1)}


@register("self-timers-stale")
def timers_stale(ctx: QueryContext) -> Table:
    """The query's own datatable of expected timers (as deployed) against each timer's last logged run."""
    expected = [(name, int(n) * _UNIT[unit]) for name, n, unit in _ROW.findall(ctx.query)]
    if not expected:
        raise QueryError("BadArgumentError", "the expected-timers datatable is empty")
    last: dict[str, dt.datetime] = {}
    lookback = ctx.now - dt.timedelta(days=2)
    for row in ctx.rows("AppTraces"):
        timer, at = str(_props(row).get("healer.timer", "")), row["TimeGenerated"]
        if timer and at > lookback and (timer not in last or at > last[timer]):
            last[timer] = at
    rows = [[name, _timespan(period), last.get(name)] for name, period in expected
            if name not in last or last[name] < ctx.now - 2 * period]
    return Table(columns=[("timer", "string"), ("period", "timespan"), ("lastRun", "datetime")], rows=rows)


def _timespan(delta: dt.timedelta) -> str:
    total = int(delta.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{days}.{hours:02d}:{minutes:02d}:{seconds:02d}" if days else f"{hours:02d}:{minutes:02d}:{seconds:02d}"
