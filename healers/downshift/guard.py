"""Budget outranks capacity across the app-wide value (pure): an app-wide restore must never upshift a tenant that
is over its budget.

A tenant without a value of its own reads the app-wide (`*`) one (App Configuration: the tenant label falls back to
the null label). Before Healer restores the app-wide value, every such inheriting tenant that is over budget gets a
value of its own holding the model it reads now: a Healer-managed, tagged key-value, recorded in that tenant's state
as DOWNSHIFTED (budget) so that its own restore later works (one rung per dwell toward the app-wide baseline, then the
key-value is removed and it inherits again) and drift detection does not take it for a human change.

A tenant counts as over budget when its state is DOWNSHIFTED for budget, or its budget reason is active once this
tick's spend is merged by the core's own hysteresis (spend or forecast at/over the enter thresholds, or an earlier
trip that has not cleared). HELD tenants are the operator's: Healer writes nothing for them.

The restore waits (`blocked`) when it cannot tell: tenant spend unknown (query failed, partial or stale) while a
tenant that inherits has a budget, or an inheriting tenant has a write in flight. The app-setting actuator is
app-wide (no per-tenant values to hold anyone at): there an over-budget tenant blocks the app-wide restore.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from collections.abc import Iterable

from healers.downshift import spend as spend_mod
from healers.downshift.core import DownshiftPolicy, DownshiftState, Inputs, SpendObservation, decide
from healers.downshift.periods import period_at

if TYPE_CHECKING:
    from healers.downshift.actuators import Current
    from healers.downshift.shell import ManagedApp

MAX_LISTED = 20   # tenants named in a reason


@dataclass(frozen=True)
class GuardPlan:
    value: str | None                            # the app-wide value inheriting tenants read now
    hold: tuple[str, ...] = ()                   # inheriting over-budget tenants to give their own value
    blocked: str = ""                            # non-empty: the app-wide restore must not happen now
    over: dict[str, str] = field(default_factory=dict)   # tenant → why it counts as over budget

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "hold": list(self.hold[:1000]), "blocked": self.blocked,
                "over": dict(list(self.over.items())[:1000])}


def over_budget(state: DownshiftState, obs: SpendObservation | None, policy: DownshiftPolicy,
                now: dt.datetime) -> str:
    """Why this tenant is over budget now ("" = it is not), by the core's own rules (hysteresis included)."""
    if state.status == "HELD":
        return ""
    if state.status == "DOWNSHIFTED" and state.reason == "budget":
        return f"downshifted for budget on {state.model}"
    decision, merged = decide(Inputs(spend=obs), state, policy, now)
    if not merged.budget_active:
        return ""
    f = decision.inputs
    if f.get("spend_pct") is not None:
        return (f"spend {f['spend_pct']}% of budget"
                + (f", forecast {f['forecast_pct']}%" if f.get("forecast_pct") is not None else ""))
    return f"budget reason active since period {merged.budget_period}"


def candidates(app: ManagedApp, states: dict[str, DownshiftState],
               result: spend_mod.SpendResult | None) -> set[str]:
    tenants = (set(app.config.tenants) | set(states)) - {"*"}
    if result is not None and not result.unknown and app.config.default_budget is not None:
        tenants |= {t for (r, t) in result.cells if t and t != "*"
                    and (app.config.role is None or r == app.config.role)}
    return tenants


def _spend_unknown(app: ManagedApp, result: spend_mod.SpendResult | None, now: dt.datetime) -> str:
    if result is None:
        return "tenant spend unknown (the spend query failed)"
    if result.unknown:
        return f"tenant spend unknown ({result.unknown})"
    newest, _ = result.index(app.config.role)
    if newest is None:
        return "tenant spend unknown (no spend data this period)"
    age = (now - newest).total_seconds()
    if age > app.base_policy.stale_after_s:
        return f"tenant spend unknown (data {int(age // 60)} min old)"
    return ""


def _names(tenants: Iterable[str]) -> str:
    items = sorted(tenants)
    return ", ".join(items[:MAX_LISTED]) + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def plan(app: ManagedApp, states: dict[str, DownshiftState], currents: dict[str, Current],
         result: spend_mod.SpendResult | None, now: dt.datetime, value: str | None, *, app_wide_only: bool,
         pending: Iterable[str] = ()) -> GuardPlan:
    """Which tenants an app-wide restore away from `value` would upshift although they are over budget."""
    busy = set(pending)
    inheriting = sorted(t for t in candidates(app, states, result)
                        if app_wide_only or t not in currents)
    live = [t for t in inheriting if t not in states or states[t].status != "HELD"]
    # With a default budget any tenant in the spend data has one: unknown data hides who they are.
    anyone = app.config.default_budget is not None and app.base_policy.track_budget
    if not live and not anyone:
        return GuardPlan(value)
    in_flight = [t for t in live if t in busy]
    if in_flight:
        return GuardPlan(value, blocked=f"tenant(s) {_names(in_flight)} have a write in flight")
    unknown = ""
    if anyone or any(app.policy(t).track_budget and app.budget(t) is not None for t in live):
        unknown = _spend_unknown(app, result, now)
    over: dict[str, str] = {}
    for tenant in live:
        policy = app.policy(tenant)
        period = period_at(now, policy.timezone, policy.period)
        obs = spend_mod.observation(result, app.config.role, tenant, period, app.budget(tenant))
        state = states.get(tenant) or DownshiftState(app=app.resource_id, tenant=tenant)
        why = over_budget(state, obs, policy, now)
        if why:
            over[tenant] = why
    if unknown:
        return GuardPlan(value, blocked=unknown + ": cannot tell whether tenants that inherit the app-wide value are "
                         "over budget", over=over)
    if not over:
        return GuardPlan(value)
    if app_wide_only:
        return GuardPlan(value, blocked=f"tenant(s) {_names(over)} over budget, and the app-setting actuator is "
                         "app-wide (no per-tenant value to hold them at)", over=over)
    return GuardPlan(value, hold=tuple(sorted(over)), over=over)


def held_state(state: DownshiftState, obs: SpendObservation | None, policy: DownshiftPolicy, value: str,
               baseline: str | None, now: dt.datetime, why: str) -> DownshiftState:
    """The tenant's state once it has its own value holding `value`: DOWNSHIFTED (budget) at `value`, restoring later
    toward `baseline` (the app-wide record's baseline) on its own path. Not a switch: the value it reads stays."""
    _, merged = decide(Inputs(spend=obs), state, policy, now)
    s = dataclasses.replace(state, budget_active=merged.budget_active, budget_period=merged.budget_period,
                            budget_at_trip=merged.budget_at_trip)
    text = f"held at {value} with its own value while the app-wide value restores: over budget ({why})"
    if s.status in ("DOWNSHIFTED", "RESTORING") and s.model == value:
        return dataclasses.replace(s, status="DOWNSHIFTED", reason="budget",
                                   since=s.since if s.status == "DOWNSHIFTED" and s.since else now, last_reason=text)
    keep = s.status in ("DOWNSHIFTED", "RESTORING") and policy.ladder.allowed(s.baseline)
    target = s.baseline if keep else (baseline if policy.ladder.allowed(baseline) else value)
    fresh = s.last_trip_at is None or (now - s.last_trip_at).total_seconds() > policy.trip_memory_s
    return dataclasses.replace(s, status="DOWNSHIFTED", reason="budget", model=value, baseline=target, since=now,
                               trips=1 if fresh else s.trips + 1, last_trip_at=now, held_reason="",
                               held_value=None, last_reason=text)
