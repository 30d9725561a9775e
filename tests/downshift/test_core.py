"""The downshift state machine, scenario by scenario."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from healers.downshift.budget import parse_budget_alert
from healers.downshift.core import (HEALER, BudgetSignal, CapacitySignal, DownshiftPolicy, DownshiftState, Inputs,
                                    ObservedModel, PolicyError, SpendObservation, decide, unapplied)
from healers.downshift.ladder import Ladder
from tests.downshift.test_budget import COMMON_ACTUAL, LEGACY

UTC = dt.timezone.utc
LADDER = Ladder(("gpt-4.1", "gpt-4o", "gpt-4o-mini", "gpt-35-turbo"), floor="gpt-4o-mini")
POLICY = DownshiftPolicy(LADDER, timezone="America/Los_Angeles")
T0 = dt.datetime(2025, 3, 20, 12, tzinfo=UTC)


def mins(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


class Run:
    """One (app, tenant) and the key-value it controls; Healer's writes always land."""

    def __init__(self, policy: DownshiftPolicy = POLICY, value: str = "gpt-4o"):
        self.policy, self.value, self.by, self.pinned = policy, value, "human", False
        self.state = DownshiftState(app="chat", tenant="t1")
        self.log: list = []

    def step(self, at: dt.datetime, *, spend: float | None = None, budget: float = 1000.0,
             forecast: float | None = None, age_min: float = 2, period_key: str | None = None, read: bool = True,
             **events):
        obs = None
        if spend is not None or "unknown" in events:
            events.pop("unknown", None)
            obs = SpendObservation(spend, budget, forecast, at - dt.timedelta(minutes=age_min), period_key)
        observed = ObservedModel(self.value, self.by, self.pinned) if read else None
        d, new = decide(Inputs(observed=observed, spend=obs, **events), self.state, self.policy, at)
        if d.writes:
            self.value, self.by = d.to_model, HEALER
        self.state = new
        self.log.append(d)
        return d


# ---------------------------------------------------------------------------------------------- budget

def test_budget_trip_hysteresis_and_restore_at_the_tenant_period_boundary():
    r = Run()
    assert r.step(mins(0), spend=790).action == "none"
    d = r.step(mins(10), spend=800)
    assert (d.action, d.from_model, d.to_model) == ("downshift", "gpt-4o", "gpt-4o-mini")
    assert r.state.status == "DOWNSHIFTED" and r.state.reason == "budget" and r.state.trips == 1
    assert "spend $800.00 of $1,000.00 (80.0%)" in d.reason and d.inputs["spend_pct"] == 80.0
    # Spend falls (a data correction) below the exit threshold in the same period: no restore.
    assert r.step(mins(60), spend=100).action == "none"
    assert r.state.status == "DOWNSHIFTED"
    # 2025-04-01T06:59Z is still March in Los Angeles: numbers for "April" are for another period (unknown).
    d = r.step(dt.datetime(2025, 4, 1, 6, 59, tzinfo=UTC), spend=5, period_key="2025-04")
    assert d.action == "none" and "for period 2025-04, not 2025-03" in d.reason
    assert r.state.status == "DOWNSHIFTED"
    # April starts at 07:00Z in Los Angeles (PDT): the timer clears the budget reason; the dwell then runs.
    april = dt.datetime(2025, 4, 1, 7, 0, tzinfo=UTC)
    d = r.step(april, spend=3)
    assert d.action == "hold" and r.state.status == "RESTORING" and "dwell" in d.reason
    assert "period reset" in d.reason
    d = r.step(april + dt.timedelta(minutes=15), spend=4)
    assert (d.action, d.to_model) == ("restore", "gpt-4o")
    assert r.state.status == "RESTORING"  # until the value is read back
    d = r.step(april + dt.timedelta(minutes=25), spend=5)
    assert d.action == "none" and r.state.status == "NORMAL" and "restore confirmed" in d.reason


def test_no_restore_in_a_new_period_while_spend_is_still_between_exit_and_enter():
    r = Run()
    r.step(mins(0), spend=850)
    april = dt.datetime(2025, 4, 2, tzinfo=UTC)
    d = r.step(april, spend=750, budget=1000)
    assert d.action == "none" and r.state.status == "DOWNSHIFTED"


def test_forecast_trips():
    r = Run()
    d = r.step(mins(0), spend=300, forecast=1000)
    assert d.action == "downshift" and "forecast $1,000.00 (100.0%)" in d.reason


def test_budget_raised_allows_restore_in_the_same_period():
    r = Run(dataclasses.replace(POLICY, min_dwell_s=60))
    r.step(mins(0), spend=850, budget=1000)
    assert r.step(mins(5), spend=860, budget=1000).action == "none"
    d = r.step(mins(10), spend=860, budget=2000)  # 43 %: budget raised and below 70 %
    assert d.action == "hold" and "budget raised" in d.reason and r.state.status == "RESTORING"
    d = r.step(mins(11), spend=861, budget=2000)  # the dwell counts from when the causes cleared
    assert d.action == "restore" and d.to_model == "gpt-4o"


@pytest.mark.parametrize("kwargs, why", [
    (dict(spend=None, unknown=True), "spend unknown"),
    (dict(spend=10, age_min=45), "stale"),
    (dict(spend=10, period_key="2025-03"), "period 2025-03"),  # last month's total, read in April
    (dict(spend=10, budget=0), "budget unknown"),
    (dict(spend=float("nan")), "spend unknown"),
    (dict(), "no spend data"),
])
def test_unknown_data_never_upshifts(kwargs, why):
    # Capacity downshift, resolved, dwell long over: only the spend data is missing for the restore.
    r = Run(dataclasses.replace(POLICY, min_dwell_s=0))
    r.step(mins(1), capacity=CapacitySignal("cap-1", "Fired", mins(1)))
    r.step(mins(2), capacity=CapacitySignal("cap-1", "Resolved", mins(2)))
    april = dt.datetime(2025, 4, 10, tzinfo=UTC)
    d = r.step(april, **{**kwargs, "period_key": kwargs.get("period_key", None)})
    assert d.action == "hold" and "never upshift on unknown data" in d.reason and why in d.reason
    assert r.value == "gpt-4o-mini"
    # Over budget in March, a new month but no data: the budget reason cannot clear.
    r = Run(dataclasses.replace(POLICY, min_dwell_s=0))
    r.step(mins(0), spend=900)
    d = r.step(april, **kwargs)
    assert not d.writes and r.state.status == "DOWNSHIFTED" and why in d.reason and r.value == "gpt-4o-mini"


def test_unknown_data_never_trips():
    r = Run()
    assert r.step(mins(0), spend=999, age_min=120).action == "none"
    assert r.step(mins(1), spend=999, budget=0).action == "none"
    assert r.value == "gpt-4o"


def test_budget_alert_backstop_both_shapes_and_idempotency():
    for payload in (LEGACY, COMMON_ACTUAL):
        alert = parse_budget_alert(payload)
        at = alert.fired_at or mins(0)
        policy = dataclasses.replace(POLICY, timezone="UTC")
        r = Run(policy)
        sig = BudgetSignal.from_alert(alert, received_at=at)
        d = r.step(at, budget_alert=sig)
        if payload is LEGACY:  # 11 % of budget: informational, below the enter threshold
            assert d.action == "none" and "below enter threshold" in d.reason
        else:
            assert d.action == "downshift" and r.state.budget_active
        before = r.state
        again = r.step(at + dt.timedelta(minutes=1), budget_alert=sig)
        assert again.duplicate and again.action == "none" and r.state == before


def test_budget_alert_from_a_previous_period_is_ignored():
    r = Run(dataclasses.replace(POLICY, timezone="UTC"))
    sig = BudgetSignal("b1", "Actual", 0.95, None, 1000.0, at=dt.datetime(2025, 2, 28, 23, tzinfo=UTC))
    d = r.step(mins(0), budget_alert=sig)
    assert d.action == "none" and "ignored" in d.reason and not r.state.budget_active


# ---------------------------------------------------------------------------------------------- capacity

def test_capacity_fired_resolved_with_dwell_and_probe():
    r = Run(dataclasses.replace(POLICY, require_probe=True))
    d = r.step(mins(0), capacity=CapacitySignal("429-ratio", "Fired", mins(0)))
    assert (d.action, d.to_model, r.state.reason) == ("downshift", "gpt-4o-mini", "capacity")
    d = r.step(mins(5), capacity=CapacitySignal("429-ratio", "Resolved", mins(5)))
    assert d.action == "hold" and r.state.status == "RESTORING"  # no spend data in a webhook: never upshift
    assert r.step(mins(10), spend=100).action == "hold"           # dwell (15 min from the clear)
    d = r.step(mins(21), spend=100)
    assert d.action == "hold" and "probe" in d.reason
    assert r.step(mins(22), spend=100, probe_ok=False).action == "hold"
    d = r.step(mins(23), spend=100, probe_ok=True)
    assert (d.action, d.to_model) == ("restore", "gpt-4o")


def test_budget_outranks_capacity():
    r = Run(dataclasses.replace(POLICY, min_dwell_s=0))
    r.step(mins(0), capacity=CapacitySignal("429", "Fired", mins(0)))
    r.step(mins(1), spend=900)  # now also over budget
    assert r.state.reason == "budget"
    d = r.step(mins(2), capacity=CapacitySignal("429", "Resolved", mins(2)))
    assert d.action == "none" and r.state.status == "DOWNSHIFTED"
    d = r.step(mins(30), spend=910)
    assert d.action == "none" and r.value == "gpt-4o-mini"


def test_capacity_restore_never_upshifts_an_over_budget_tenant_even_if_budget_was_not_yet_flagged():
    r = Run(dataclasses.replace(POLICY, min_dwell_s=0))
    r.step(mins(0), capacity=CapacitySignal("429", "Fired", mins(0)))
    r.step(mins(1), capacity=CapacitySignal("429", "Resolved", mins(1)))
    d = r.step(mins(20), spend=950)
    assert d.action == "none" and r.state.reason == "budget" and r.value == "gpt-4o-mini"


def test_alert_idempotency_and_ordering():
    r = Run()
    fired = CapacitySignal("a1", "Fired", mins(0))
    assert r.step(mins(0), capacity=fired).action == "downshift"
    before = r.state
    d = r.step(mins(1), capacity=fired)
    assert d.duplicate and d.action == "none" and r.state == before
    # A Resolved older than the Fired (delivered out of order) is ignored.
    d = r.step(mins(2), capacity=CapacitySignal("a1", "Resolved", mins(-1)))
    assert d.duplicate and r.state.capacity_active


def test_one_rung_per_trip_and_floor():
    r = Run(dataclasses.replace(POLICY, min_dwell_s=0), value="gpt-4o-mini")
    d = r.step(mins(0), capacity=CapacitySignal("a", "Fired", mins(0)))
    assert d.action == "hold" and "floor" in d.reason and r.value == "gpt-4o-mini"


def test_dwell_grows_with_trips_and_is_capped():
    p = dataclasses.replace(POLICY, min_dwell_s=600, dwell_backoff=3, max_dwell_s=3600)
    assert [p.dwell_s(n) for n in (0, 1, 2, 3, 4, 50)] == [600, 600, 1800, 3600, 3600, 3600]
    r = Run(dataclasses.replace(p, max_switches_per_hour=100))
    t = 0.0
    for trip in (1, 2, 3):
        r.step(mins(t), capacity=CapacitySignal(f"a{trip}", "Fired", mins(t)))
        assert r.state.trips == trip
        r.step(mins(t + 1), capacity=CapacitySignal(f"a{trip}", "Resolved", mins(t + 1)))
        wait = p.dwell_s(trip) / 60
        assert r.step(mins(t + wait), spend=10).action == "hold"
        assert r.step(mins(t + 1 + wait), spend=10).action == "restore"
        r.step(mins(t + 2 + wait), spend=10)
        assert r.state.status == "NORMAL"
        t += 2 + wait


def test_re_trip_while_restoring_extends_the_dwell_without_a_write():
    r = Run()
    r.step(mins(0), capacity=CapacitySignal("a", "Fired", mins(0)))
    r.step(mins(1), capacity=CapacitySignal("a", "Resolved", mins(1)))
    d = r.step(mins(3), capacity=CapacitySignal("b", "Fired", mins(3)))
    assert d.action == "none" and r.state.status == "DOWNSHIFTED" and r.state.trips == 2
    assert r.value == "gpt-4o-mini"


def test_hourly_switch_cap():
    p = dataclasses.replace(POLICY, min_dwell_s=0, max_switches_per_hour=2)
    r = Run(p)
    r.step(mins(0), capacity=CapacitySignal("a", "Fired", mins(0)))
    r.step(mins(1), capacity=CapacitySignal("a", "Resolved", mins(1)))
    assert r.step(mins(2), spend=1).action == "restore"
    r.step(mins(3), spend=1)
    d = r.step(mins(4), capacity=CapacitySignal("b", "Fired", mins(4)))
    assert d.action == "hold" and "switch cap" in d.reason and d.to_model == "gpt-4o-mini"
    assert r.step(mins(59), spend=1).action == "hold"
    assert r.step(mins(60), spend=1).action == "downshift"  # the first switch left the sliding hour


def test_app_wide_cap_across_tenants():
    p = dataclasses.replace(POLICY, max_app_switches_per_hour=3)
    r = Run(p)
    d = r.step(mins(0), capacity=CapacitySignal("a", "Fired", mins(0)), app_switches=(mins(-10),) * 3)
    assert d.action == "hold" and "app switch cap" in d.reason


# ---------------------------------------------------------------------------------------------- HELD

def test_human_pin_holds_and_unpin_releases():
    r = Run()
    r.pinned = True
    d = r.step(mins(0), spend=900)
    assert d.action == "hold" and r.state.status == "HELD" and r.state.held_reason == "pinned"
    assert r.step(mins(30), spend=950).action == "hold" and r.value == "gpt-4o"
    r.pinned = False
    d = r.step(mins(40), spend=950)
    assert d.action == "none" and r.state.status == "NORMAL" and "unpinned" in d.reason
    assert r.step(mins(50), spend=950).action == "downshift"


def test_change_behind_healers_back_holds_until_an_operator_releases():
    r = Run(dataclasses.replace(POLICY, min_dwell_s=0))
    r.step(mins(0), spend=900)
    r.value, r.by = "gpt-4.1", "someone@contoso.com"
    d = r.step(mins(5), spend=900)
    assert d.action == "hold" and r.state.status == "HELD" and r.state.held_reason == "external_change"
    assert "behind Healer's back" in d.reason
    for n in range(10, 200, 20):  # budget, capacity, a new month: Healer never writes while HELD
        assert not r.step(mins(n), spend=10, capacity=CapacitySignal(f"c{n}", "Fired", mins(n))).writes
    assert r.value == "gpt-4.1"
    d = r.step(mins(300), spend=10, release=True)
    assert d.action == "none" and r.state.status == "NORMAL" and r.state.baseline == "gpt-4.1"


def test_off_ladder_value_holds():
    r = Run(value="gpt-35-turbo")  # on the list but below the floor
    d = r.step(mins(0), spend=900)
    assert d.action == "hold" and r.state.held_reason == "off_ladder"
    r.value = "gpt-4o"
    assert r.step(mins(1), spend=900).action == "none" and r.state.status == "NORMAL"


def test_a_healer_tagged_value_healer_did_not_record_holds():
    r = Run()
    r.step(mins(0), spend=10)
    r.value, r.by = "gpt-4o-mini", HEALER  # e.g. the state save was lost after the write
    d = r.step(mins(10), spend=10)
    assert d.action == "hold" and r.state.held_reason == "unrecorded_write"


def test_missing_current_value():
    r = Run()
    d = r.step(mins(0), spend=900, read=False)
    assert d.action == "hold" and "unknown" in d.reason


# ---------------------------------------------------------------------------------------------- plumbing

def test_unapplied_keeps_the_event_but_not_the_switch():
    r = Run()
    before = r.state
    d, after = decide(Inputs(observed=ObservedModel("gpt-4o"), capacity=CapacitySignal("a", "Fired", mins(0))),
                      before, POLICY, mins(0))
    assert d.action == "downshift"
    kept = unapplied(before, after)
    assert kept.status == "NORMAL" and kept.switches == () and kept.capacity_active
    d2, _ = decide(Inputs(observed=ObservedModel("gpt-4o")), kept, POLICY, mins(1))
    assert d2.action == "downshift"  # level-triggered: the next tick retries


def test_state_round_trips_through_json():
    r = Run(dataclasses.replace(POLICY, min_dwell_s=0))
    r.step(mins(0), capacity=CapacitySignal("a" * 2000, "Fired", mins(0)))
    r.step(mins(1), budget_alert=BudgetSignal("b", "Actual", 0.9, None, 1000.0, mins(1)))
    data = json.loads(json.dumps(r.state.to_dict()))
    assert DownshiftState.from_dict(data) == r.state
    assert len(json.dumps(data)) < 16_000


@pytest.mark.parametrize("raw", [
    {"ladder": ["a", "b"], "enter_ratio": 0.7, "exit_ratio": 0.8},
    {"ladder": ["a", "b"], "timezone": "Nowhere/Land"},
    {"ladder": ["a", "b"], "period": "week"},
    {"ladder": ["a", "b"], "max_switches_per_hour": 0},
    {"ladder": ["a", "b"], "surprise": 1},
    {"enter_ratio": 0.8},
    {"ladder": ["a", "b"], "min_dwell_s": 100, "max_dwell_s": 10},
])
def test_invalid_policies(raw):
    with pytest.raises((PolicyError, ValueError)):
        DownshiftPolicy.from_config(raw)


def test_policy_config_round_trip():
    raw = {"ladder": {"models": ["gpt-4o", "gpt-4o-mini"], "floor": "gpt-4o-mini"}, "timezone": "Pacific/Auckland",
           "enter_ratio": 0.85, "exit_ratio": 0.6, "max_app_switches_per_hour": 20}
    p = DownshiftPolicy.from_config(raw)
    assert DownshiftPolicy.from_config(json.loads(json.dumps(p.to_config()))) == p


def test_a_budget_alerts_own_amount_is_not_taken_for_the_configured_budget():
    """A Cost Management budget (its own amount, e.g. the resource group's $500) fires at 90 %; the app's configured
    budget is $1,000 and its metric spend only 25 % of that. A larger configured budget is not a "budget raised":
    the backstop holds until the period resets."""
    r = Run(dataclasses.replace(POLICY, timezone="UTC", min_dwell_s=0))
    d = r.step(mins(0), budget_alert=BudgetSignal("cost:1", "Actual", 0.9, None, 500.0, at=mins(0)))
    assert d.action == "downshift" and r.state.budget_active
    for n in (10, 20, 30):
        d = r.step(mins(n), spend=250, budget=1000)
        assert not d.writes and r.state.status == "DOWNSHIFTED" and r.state.budget_active, d.reason
    d = r.step(dt.datetime(2025, 4, 1, 12, tzinfo=UTC), spend=10, budget=1000)  # a new month: cleared
    assert "period reset" in d.reason and not r.state.budget_active


def test_a_healer_tagged_value_with_no_record_at_all_holds_instead_of_stepping_down_again():
    """A crash after the first write and before the state was saved: the retry sees Healer's own tagged value and a
    fresh state. Adopting it as the baseline would step a second rung down and lose the way back."""
    r = Run(value="gpt-4o-mini")
    r.by = HEALER
    d = r.step(mins(0), capacity=CapacitySignal("cap-9", "Fired", mins(0)))
    assert d.action == "hold" and not d.writes and r.value == "gpt-4o-mini"
    assert r.state.status == "HELD" and r.state.held_reason == "unrecorded_write"
