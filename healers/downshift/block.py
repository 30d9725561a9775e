"""The last rung (pure): block a tenant that has spent its whole budget for the period.

Below the model ladder there is one more state per (app, tenant): BLOCKED. Healer sets a block flag the app reads
next to its model key (App Configuration `ai:blocked` with the tenant's label, `healers.downshift.actuators`) and
the app refuses the tenant's requests until the flag is gone. Rules:

* off by default: `DownshiftPolicy.block` (per app, overridable per tenant) turns it on;
* blocks only on known, fresh spend of this period at or above `block_ratio` (default 100 %) of the budget; a
  capacity signal (429s, latency) never blocks and never lifts, and a forecast only warns (`healers.downshift.warn`);
* lifted at the period reset (always, whatever the spend data says), on a budget raise that brings spend below
  `block_ratio`, by an operator (who thereby waives the block for the rest of the period), or when blocking is turned
  off in configuration;
* the shell gates a block as action `downshift.block` (a policy that does not name it explicitly asks a human) and a
  lift as `downshift.unblock`; the state is persisted only after the flag was really written.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from healers.downshift.core import (DownshiftPolicy, DownshiftState, SpendObservation, _assess, _money, _pct,
                                    _utc)
from healers.downshift.periods import period_at

BlockAction = Literal["block", "unblock", "none"]
ACTIONS = {"block": "downshift.block", "unblock": "downshift.unblock"}


@dataclass(frozen=True)
class BlockDecision:
    action: BlockAction
    reason: str
    inputs: dict[str, Any]

    @property
    def writes(self) -> bool:
        return self.action != "none"

    @property
    def policy_action(self) -> str | None:
        return ACTIONS.get(self.action)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def decide_block(spend: SpendObservation | None, state: DownshiftState, policy: DownshiftPolicy, now: dt.datetime,
                 *, lift: bool = False) -> tuple[BlockDecision, DownshiftState]:
    """Block, unblock or leave one (app, tenant) now. `lift`: an operator lifts the block. Returns the decision and
    the state to persist once the flag was written (persist nothing for a flag that was not written)."""
    now = _utc(now)
    period = period_at(now, policy.timezone, policy.period)
    sp = _assess(spend, now, period, policy)
    figures: dict[str, Any] = {
        "period": period.key, "spend": sp.spend, "budget": sp.budget,
        "spend_pct": None if sp.ratio is None else round(sp.ratio * 100, 2),
        "block_pct": round(policy.block_ratio * 100, 2), "data_known": sp.known, "enabled": policy.block,
        "blocked": state.blocked, "blocked_period": state.blocked_period}

    def out(action: BlockAction, text: str, new: DownshiftState) -> tuple[BlockDecision, DownshiftState]:
        return BlockDecision(action, text[:1000], figures), new

    def lifted(why: str, waive: bool = False) -> tuple[BlockDecision, DownshiftState]:
        new = dataclasses.replace(state, blocked=False, blocked_period=None, blocked_budget=None, blocked_since=None,
                                  block_waived=period.key if waive else state.block_waived)
        return out("unblock", f"lift the block of tenant {state.tenant}: {why}", new)

    if state.blocked:
        if lift:
            return lifted("an operator lifted it (no new block this period)", waive=True)
        if state.blocked_period != period.key:
            return lifted(f"period reset ({state.blocked_period} → {period.key})")
        if not policy.block:
            return lifted("blocking is turned off in the configuration")
        if (sp.known and sp.budget is not None and state.blocked_budget is not None
                and sp.budget > state.blocked_budget and sp.ratio is not None and sp.ratio < policy.block_ratio):
            return lifted(f"budget raised ({_money(state.blocked_budget)} → {_money(sp.budget)}; spend now "
                          f"{_pct(sp.ratio)})")
        return out("none", f"stays blocked since {state.blocked_period}", state)
    if not policy.block:
        return out("none", "blocking is off", state)
    if lift:
        waived = dataclasses.replace(state, block_waived=period.key)
        return out("none", "not blocked; an operator waived blocking for the rest of the period", waived)
    if not sp.known:
        return out("none", f"no block on unknown data ({sp.why_unknown})", state)
    assert sp.ratio is not None
    if sp.ratio < policy.block_ratio:
        return out("none", f"spend {_pct(sp.ratio)} is below the block ratio {_pct(policy.block_ratio)}", state)
    if state.block_waived == period.key:
        return out("none", f"spend {_pct(sp.ratio)} of budget, but an operator lifted the block for period "
                   f"{period.key}", state)
    new = dataclasses.replace(state, blocked=True, blocked_period=period.key, blocked_budget=sp.budget,
                              blocked_since=now)
    return out("block", f"block tenant {state.tenant}: spend {_money(sp.spend)} of {_money(sp.budget)} "
               f"({_pct(sp.ratio)}) reached the block ratio {_pct(policy.block_ratio)} for period {period.key}", new)


def effect(verdict: str, explicit: bool) -> str:
    """The effect a policy verdict has on `downshift.block`: default ask. An `allow` that comes from a wildcard rule
    or the document's default (no rule names `downshift.block` itself) asks a human instead."""
    if verdict == "allow" and not explicit:
        return "ask"
    return verdict


def names_block(rules: Any, resource: str) -> bool:
    """Whether a policy document has a rule naming `downshift.block` itself (no wildcard) for this resource."""
    import fnmatch
    return any(str(getattr(r, "action", "")).strip().lower() == ACTIONS["block"]
               and fnmatch.fnmatchcase(resource.lower(), str(getattr(r, "resource", "")).lower())
               for r in (rules or ()))
