"""The last rung (healers.downshift.block): pure rules and hypothesis properties over random event sequences.

Properties: never blocked by a capacity signal; always lifted at the period reset; never blocked without a policy
that allows `downshift.block` explicitly (or a human's approval)."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healers.downshift import block
from healers.downshift.core import (CapacitySignal, DownshiftPolicy, DownshiftState, Inputs, ObservedModel,
                                    PolicyError, SpendObservation, decide)
from healers.downshift.ladder import Ladder
from healers.downshift.periods import period_at
from shared.policy import evaluate, load_policy
from tests.downshift.test_core_properties import SETTINGS

UTC = dt.timezone.utc
LADDER = Ladder(("gpt-4o", "gpt-4o-mini"), floor="gpt-4o-mini")
POLICY = DownshiftPolicy(LADDER, block=True)
T0 = dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
APP = "/subscriptions/s/resourceGroups/ai-prod/providers/Microsoft.Web/sites/chat-web"


def obs(spend: float | None, budget: float = 100.0, at: dt.datetime = T0) -> SpendObservation:
    return SpendObservation(spend, budget, None, at - dt.timedelta(minutes=2), period_at(at).key)


def state(**kw) -> DownshiftState:
    return DownshiftState(app=APP, tenant="acme", **kw)


def test_block_is_off_by_default_and_validated():
    assert DownshiftPolicy(LADDER).block is False and DownshiftPolicy(LADDER).block_ratio == 1.0
    d, _ = block.decide_block(obs(500.0), state(), DownshiftPolicy(LADDER), T0)
    assert d.action == "none" and "off" in d.reason
    with pytest.raises(PolicyError):
        DownshiftPolicy(LADDER, block=True, block_ratio=0.5)      # below enter_ratio: not the last rung
    assert DownshiftPolicy.from_config({"ladder": ["a", "b"], "block": True, "block_ratio": 1.2}).block_ratio == 1.2


def test_blocks_at_the_ratio_on_known_fresh_spend_only():
    d, s = block.decide_block(obs(99.9), state(), POLICY, T0)
    assert d.action == "none" and not s.blocked
    d, s = block.decide_block(obs(100.0), state(), POLICY, T0)
    assert d.action == "block" and d.policy_action == "downshift.block"
    assert s.blocked and s.blocked_period == "2026-03" and s.blocked_budget == 100.0 and s.blocked_since == T0
    stale = SpendObservation(150.0, 100.0, None, T0 - dt.timedelta(hours=2), "2026-03")
    for unknown in (None, obs(None), stale, SpendObservation(150.0, None, None, T0, "2026-03")):
        d, s = block.decide_block(unknown, state(), POLICY, T0)
        assert d.action == "none" and not s.blocked


def test_lifted_at_period_reset_budget_raise_operator_and_config_off():
    blocked = block.decide_block(obs(120.0), state(), POLICY, T0)[1]
    d, s = block.decide_block(obs(120.0), blocked, POLICY, T0 + dt.timedelta(hours=1))
    assert d.action == "none" and s.blocked                                    # stays blocked this period
    april = dt.datetime(2026, 4, 1, 0, 5, tzinfo=UTC)
    d, s = block.decide_block(None, blocked, POLICY, april)                   # unknown data: still lifted
    assert d.action == "unblock" and "period reset" in d.reason and not s.blocked
    d, s = block.decide_block(obs(120.0, budget=200.0), blocked, POLICY, T0)
    assert d.action == "unblock" and "budget raised" in d.reason
    d, s = block.decide_block(obs(120.0, budget=110.0), blocked, POLICY, T0)  # raised, but still over: stays
    assert d.action == "none"
    d, s = block.decide_block(obs(120.0), blocked, POLICY, T0, lift=True)
    assert d.action == "unblock" and s.block_waived == "2026-03"
    d, _ = block.decide_block(obs(130.0), s, POLICY, T0)                      # waived for the rest of March
    assert d.action == "none" and "operator" in d.reason
    d, _ = block.decide_block(obs(130.0, at=april), s, POLICY, april)         # but not in April
    assert d.action == "block"
    d, _ = block.decide_block(obs(120.0), blocked, DownshiftPolicy(LADDER), T0)
    assert d.action == "unblock" and "turned off" in d.reason


def test_state_round_trips_the_block_fields():
    s = block.decide_block(obs(120.0), state(), POLICY, T0)[1]
    s = dataclasses.replace(s, warned=("2026-03|block",), monitor_checked=("a1",))
    assert DownshiftState.from_dict(s.to_dict()) == s
    assert DownshiftState.from_dict({"app": APP, "tenant": "x"}).blocked is False   # records from before


# ---------------------------------------------------------------------------------------------- properties

events = st.lists(st.tuples(
    st.sampled_from([0, 5, 10, 60, 600, 6000, 20000]),               # minutes to advance
    st.one_of(st.none(), st.floats(0, 1.6)),                          # spend ratio (None: no spend this step)
    st.one_of(st.none(), st.sampled_from(["Fired", "Resolved"])),    # a capacity signal
    st.sampled_from([100.0, 100.0, 100.0, 150.0]),                   # budget (150: raised)
    st.booleans()), min_size=1, max_size=40)


@SETTINGS
@given(events, st.sampled_from([1.0, 1.2]), st.sampled_from(["UTC", "Pacific/Auckland"]))
def test_property_never_blocked_by_capacity_and_always_lifted_at_period_reset(steps, ratio, tz):
    policy = DownshiftPolicy(LADDER, block=True, block_ratio=ratio, timezone=tz)
    now, s, value = T0, state(), "gpt-4o"
    for minutes, spend_ratio, condition, budget, lift in steps:
        now += dt.timedelta(minutes=minutes)
        period = period_at(now, tz)
        spend = None if spend_ratio is None else SpendObservation(spend_ratio * budget, budget, None, now, period.key)
        capacity = None if condition is None else CapacitySignal("a1", condition, now)
        decision, s = decide(Inputs(observed=ObservedModel(value), spend=spend, capacity=capacity), s, policy, now)
        if decision.writes:
            value = decision.to_model
        before = s
        bd, s = block.decide_block(spend, s, policy, now, lift=lift and minutes % 2 == 0)
        if bd.action == "block":
            # Only known spend at the ratio blocks: never a capacity signal, never without spend.
            assert spend is not None and spend_ratio >= ratio and not (lift and minutes % 2 == 0)
        if before.blocked and before.blocked_period != period.key:
            assert bd.action == "unblock" and not s.blocked                 # always lifted at the period reset
        if bd.action == "unblock" and not (lift and minutes % 2 == 0):
            # Lifted only by the period reset or a budget raise (never by a capacity signal).
            assert before.blocked_period != period.key or (
                spend is not None and budget > (before.blocked_budget or budget) and spend_ratio < ratio), bd.reason
        if s.blocked:
            assert s.blocked_period == period.key


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["downshift.block", "downshift.*", "*", "downshift.switch"]),
                          st.sampled_from(["*", "*/resourceGroups/ai-prod/*", "*/sites/other"]),
                          st.sampled_from(["allow", "ask", "deny"])), max_size=5),
       st.sampled_from(["ask", "deny"]))
def test_property_never_blocked_without_a_policy_allowing_it(rules, default):
    doc, why = load_policy({"version": 1, "default": default,
                            "rules": [{"action": a, "resource": r, "effect": e} for a, r, e in rules]})
    verdict = evaluate(doc, "downshift.block", APP, why)
    effect = block.effect(verdict.effect, block.names_block(doc.rules if doc else (), APP))
    if effect == "allow":   # acts without a human only when a rule names downshift.block and allows it here
        assert any(a == "downshift.block" and e == "allow" and (r == "*" or "ai-prod" in r) for a, r, e in rules)
        assert not any(e == "deny" and (r == "*" or "ai-prod" in r) and a != "downshift.switch"
                       for a, r, e in rules)
    if verdict.effect == "deny":
        assert effect == "deny"
