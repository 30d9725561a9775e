"""The shell of the downshift healer's extra signals (their pure rules live in `throttle`, `lost` and `warn`):

* `quota`: a 429 alert from the AI gateway's own token limit: no model switch; "quota, not capacity" audited once per
  alert and condition, with a notification suggesting a limit change;
* `ask_monitor`: a capacity alert Fired past the dwell: ask Azure Monitor whether its Resolved was lost;
* `warn_step`: forecast warnings, one audit record per tenant, period and threshold.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from healers.downshift import lost, throttle, warn
from healers.downshift.core import CapacitySignal, DownshiftPolicy, DownshiftState, SpendObservation
from shared import monitor_alerts
from shared.alerts import Alert
from shared.state import Conflict, Record, safe_key

if TYPE_CHECKING:
    from healers.downshift.shell import Context, Evaluation, ManagedApp


def audit_(ctx: Context, app: ManagedApp | None, tenant: str, outcome: str, reason: str, **details: Any) -> None:
    from healers.downshift.shell import _audit
    _audit(ctx, app, tenant, outcome, reason, **details)


def _iso(when: Any) -> str | None:
    import datetime as dt
    return None if when is None else when.astimezone(dt.UTC).isoformat()


def quota(ctx: Context, app: ManagedApp, tenant: str, alert: Alert, dims: dict[str, str], why: str) -> str:
    """The gateway's token limit answered the 429s: no model switch (the same tokens hit the same limit). Audited
    once per (alert, condition) as "quota, not capacity"; a Fired one notifies with a suggested limit change."""
    store = ctx.store
    try:
        store.insert(Record("~quota", safe_key(f"{alert.alert_id}|{alert.monitor_condition}"[:500]),
                            {"at": _iso(ctx.now()), "app": app.key, "tenant": tenant}))
    except Conflict:
        audit_(ctx, app, tenant, "duplicate", f"quota alert {alert.alert_id} ({alert.monitor_condition}) already "
               "recorded", alertId=alert.alert_id, kind="quota")
        return "duplicate"
    name = app.resource_id.rsplit("/", 1)[-1]
    advice = throttle.suggestion(tenant, name)
    details: dict[str, Any] = {"kind": "quota", "alertId": alert.alert_id, "rule": alert.rule,
                               "condition": alert.monitor_condition, "dimensions": dims, "suggestion": advice}
    if alert.fired:  # the audit record carries the flag; shared.notify tells the destinations
        details["attention"] = f"Tenant {tenant} of {name} hit the AI gateway's token limit (quota, not capacity)"
        details["attentionKind"] = "quota-not-capacity"
    audit_(ctx, app, tenant, "ignored", f"quota, not capacity ({alert.monitor_condition}): {why}; no model switch — "
           f"suggested: {advice}", **details)
    return "ignored"


def warn_step(ev: Evaluation, record: Record, spend: SpendObservation | None) -> None:
    """Forecast warnings (`healers.downshift.warn`): an audit record of kind forecast-warning per threshold the
    forecast crosses before spend reaches it, once per tenant per period."""
    if spend is None or not record.data.get("state"):
        return
    app, tenant = ev.app, ev.tenant
    if spend.budget is None:
        spend = dataclasses.replace(spend, budget=app.budget(tenant))
    state = DownshiftState.from_dict(record.data["state"])
    found, after = warn.forecast_warnings(spend, state, app.policy(tenant), ev.ctx.now())
    if not found:
        return
    ev._save(record, after)
    for w in found:
        audit_(ev.ctx, app, tenant, "recorded", f"forecast warning: {w.text}", **w.figures)

def ask_monitor(ev: Evaluation, before: DownshiftState, policy: DownshiftPolicy
            ) -> tuple[DownshiftState, CapacitySignal | None, dict[str, Any]]:
    """A capacity alert Fired for longer than the dwell: ask Azure Monitor whether its Resolved was lost
    (`healers.downshift.lost`). One alert per evaluation; unknown stays down and is notified once."""
    if not policy.monitor_check:
        return before, None, {}
    due = lost.due(before, policy, ev.ctx.now())
    if not due:
        return before, None, {}
    watch = due[0]
    found = monitor_alerts.alert_condition(ev.ctx.settings, watch.subscription, watch.alert_id)
    state, signal, tell = lost.after_check(before, watch, found.condition if found else None, ev.ctx.now(),
                                           found.resolved_at if found else None)
    asked: dict[str, Any] = {"alertId": watch.alert_id, "condition": found.condition if found else "unknown"}
    if tell:
        name = ev.app.resource_id.rsplit("/", 1)[-1]
        # The evaluation's audit record carries the flag (lifted by the shell); shared.notify tells the destinations.
        asked["attention"] = (f"Tenant {ev.tenant} of {name} stays downshifted: Azure Monitor cannot tell whether "
                              f"alert {watch.alert_id} resolved")
        asked["attentionText"] = ("The capacity alert's Resolved never arrived and its current condition is unknown "
                                  "(not found, no access or an error); Healer keeps the tenant down (unknown never "
                                  "upshifts). Check the alert, then release the tenant (POST /api/downshift/release) "
                                  "if it is over.")
        asked["notification"] = "attention (through the audit record)"
    return state, signal, asked
