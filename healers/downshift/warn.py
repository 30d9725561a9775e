"""Forecast warnings (pure): tell a human before the breach, once per tenant per period and threshold.

When known, fresh spend of this period is still below a threshold (the downshift's `enter_ratio`, and with the
block rung on, the `block_ratio`) but the forecast at the recent burn rate crosses it before the period ends, Healer
records a warning ("at this burn rate, tenant acme reaches 100 % of its budget on the 23rd"): an audit record of
kind `forecast-warning`, from which notifications are sent. `DownshiftState.warned` remembers `<period>|<kind>` so a
threshold warns once per period; a new period warns afresh.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from healers.downshift.core import (MAX_SEEN, DownshiftPolicy, DownshiftState, SpendObservation, _assess, _money,
                                    _utc)
from healers.downshift.periods import period_at, zone

KIND = "forecast-warning"


@dataclass(frozen=True)
class Warning:
    threshold: str              # "downshift" | "block"
    ratio: float
    reaches_on: dt.date         # in the tenant's time zone
    text: str
    figures: dict[str, Any]


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def forecast_warnings(spend: SpendObservation | None, state: DownshiftState, policy: DownshiftPolicy,
                      now: dt.datetime) -> tuple[list[Warning], DownshiftState]:
    """The warnings due now, and the state that remembers them (persist it once they are recorded)."""
    now = _utc(now)
    if not policy.warn_forecast or not policy.track_budget:
        return [], state
    period = period_at(now, policy.timezone, policy.period)
    sp = _assess(spend, now, period, policy)
    if not sp.known or sp.forecast is None or sp.spend is None or sp.budget is None:
        return [], state
    remaining = (period.end_utc - now).total_seconds()
    rate = (sp.forecast - sp.spend) / remaining if remaining > 0 else 0.0     # money per second, recent burn
    thresholds = [("downshift", policy.enter_ratio)] + ([("block", policy.block_ratio)] if policy.block else [])
    out, warned = [], list(state.warned)
    for name, ratio in thresholds:
        key = f"{period.key}|{name}"
        target = ratio * sp.budget
        if key in warned or sp.spend >= target or sp.forecast < target or rate <= 0:
            continue
        when = now + dt.timedelta(seconds=(target - sp.spend) / rate)
        day = when.astimezone(zone(policy.timezone)).date()
        text = (f"at this burn rate, tenant {state.tenant} reaches {ratio * 100:.0f}% of its budget "
                f"({_money(target)} of {_money(sp.budget)}) on the {_ordinal(day.day)} ({day.isoformat()}); "
                f"spent {_money(sp.spend)} so far in {period.key}, forecast {_money(sp.forecast)}: Healer will "
                + ("move it one rung down the model ladder" if name == "downshift" else "block it") + " then")
        out.append(Warning(name, ratio, day, text, {
            "kind": KIND, "threshold": name, "ratio": ratio, "reachesOn": day.isoformat(), "period": period.key,
            "spend": sp.spend, "budget": sp.budget, "forecast": sp.forecast}))
        warned.append(key)
    if not out:
        return [], state
    return out, dataclasses.replace(state, warned=tuple(warned)[-MAX_SEEN:])
