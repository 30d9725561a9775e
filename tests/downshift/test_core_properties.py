"""Property-based tests of the downshift state machine over random event sequences and clocks.

A small world holds, per tenant of one app, the model value the app reads (with who wrote it and whether it is
pinned). Healer's writes land (or, at random, fail and are not persisted, as the shell would do); humans pin,
unpin, change values and release holds; alerts fire, resolve, repeat and arrive out of order; spend data is
sometimes missing, stale or for another period.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healers.downshift.core import (HEALER, BudgetSignal, CapacitySignal, Decision, DownshiftPolicy, DownshiftState,
                                    Inputs, ObservedModel, SpendObservation, decide, unapplied)
from healers.downshift.ladder import Ladder
from healers.downshift.periods import period_at

UTC = dt.timezone.utc
LADDER = Ladder(("gpt-4.1", "gpt-4o", "gpt-4o-mini", "gpt-35-turbo"), floor="gpt-4o-mini")
HOUR = dt.timedelta(hours=1)
ZONES = ["Pacific/Auckland", "America/Los_Angeles", "UTC", "Asia/Kolkata"]
# HEALER_HYPOTHESIS_EXAMPLES=5000 for a deeper run.
SETTINGS = settings(max_examples=int(os.environ.get("HEALER_HYPOTHESIS_EXAMPLES", "300")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

policies = st.builds(
    lambda cap, app_cap, dwell, backoff, probe, track, tz, enter, gap: DownshiftPolicy(
        LADDER, enter_ratio=enter, exit_ratio=enter - gap, min_dwell_s=dwell, dwell_backoff=backoff,
        max_dwell_s=max(dwell, 4 * 3600), max_switches_per_hour=cap, max_app_switches_per_hour=app_cap,
        require_probe=probe, track_budget=track, timezone=tz),
    st.integers(1, 5), st.one_of(st.none(), st.integers(1, 6)), st.sampled_from([0, 60, 600, 900]),
    st.sampled_from([1.0, 2.0, 3.0]), st.booleans(), st.booleans(), st.sampled_from(ZONES),
    st.sampled_from([0.8, 0.9]), st.sampled_from([0.1, 0.2]))

spend_obs = st.tuples(
    # spend ratio: mostly low, sometimes anything, sometimes unknown
    st.integers(0, 9).flatmap(lambda n: st.floats(0, 0.6) if n < 6 else st.floats(0, 1.6) if n < 9
                              else st.none()),
    st.one_of(st.none(), st.floats(0, 0.9), st.floats(0, 2.5)),     # forecast ratio
    st.sampled_from([1000.0] * 5 + [2000.0, 2000.0, 0.0]),          # budget (0 = unknown; 2000 = raised)
    st.sampled_from([1, 2, 5, 10, 20, 1, 2, 5, 90, None]),          # data age in minutes (None = unknown)
    st.sampled_from(["current"] * 7 + ["previous"]))

tick = st.tuples(st.just("tick"), spend_obs, st.one_of(st.none(), st.just(True), st.booleans()))
capacity = st.tuples(st.just("capacity"), st.sampled_from(["a1", "a2", "a3"]), st.sampled_from(["Fired", "Resolved"]),
                     st.integers(-30, 0))
budget = st.tuples(st.just("budget"), st.sampled_from(["b1", "b2"]), st.one_of(st.none(), st.floats(0, 2.0)))
human = st.tuples(st.just("human"), st.sampled_from(["pin", "unpin", "change", "off_ladder", "release", "delete"]),
                  st.sampled_from(LADDER.models))
# Mostly timer ticks and alerts; humans now and then.
events = st.integers(0, 19).flatmap(lambda n: tick if n < 12 else capacity if n < 16 else budget if n < 18 else human)
advances = st.sampled_from([0, 1, 5, 10, 10, 10, 30, 60, 240, 1440, 15000])  # minutes; 15000 crosses periods
steps = st.lists(st.tuples(st.sampled_from([0, 0, 1, 2]), advances, events,
                           st.integers(0, 9).map(lambda n: n > 0), st.integers(0, 19)),
                 min_size=15, max_size=80)
starts = st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2027, 12, 31), timezones=st.just(UTC))


@dataclass
class Tenant:
    value: str | None = "gpt-4.1"
    by: str = "human"
    pinned: bool = False
    state: DownshiftState = field(default_factory=lambda: DownshiftState(app="chat"))
    switches: list[dt.datetime] = field(default_factory=list)


def _known(obs: SpendObservation | None, now: dt.datetime, policy: DownshiftPolicy) -> bool:
    if obs is None or obs.spend is None or not obs.budget or obs.as_of is None:
        return False
    if (now - obs.as_of).total_seconds() > policy.stale_after_s:
        return False
    return obs.period_key in (None, period_at(now, policy.timezone, policy.period).key)


def simulate(policy: DownshiftPolicy, start: dt.datetime, script, check=None):
    tenants = [Tenant(state=DownshiftState(app="chat", tenant=f"t{i}")) for i in range(3)]
    app_switches: list[dt.datetime] = []
    now = start
    history: list[tuple[int, Inputs, DownshiftState, Decision, DownshiftState, Tenant]] = []
    for who, advance, event, write_ok, salt in script:
        now = now + dt.timedelta(minutes=advance)
        t = tenants[who]
        kind = event[0]
        spend = capacity = budget_alert = None
        probe = None
        release = False
        if kind == "tick":
            (ratio, f_ratio, budget, age, which), probe = event[1], event[2]
            period = period_at(now, policy.timezone, policy.period)
            key = period.key if which == "current" else period_at(period.start_utc - HOUR, policy.timezone).key
            spend = SpendObservation(None if ratio is None else ratio * (budget or 1000.0), budget,
                                     None if f_ratio is None else f_ratio * (budget or 1000.0),
                                     None if age is None else now - dt.timedelta(minutes=age), key)
        elif kind == "capacity":
            capacity = CapacitySignal(event[1], event[2], now + dt.timedelta(minutes=event[3]))
        elif kind == "budget":
            budget_alert = BudgetSignal(f"{event[1]}-{salt % 3}", "Actual", event[2], None, 1000.0, now)
        else:
            action, model = event[1], event[2]
            if action == "pin":
                t.pinned = True
            elif action == "unpin":
                t.pinned = False
            elif action == "change":
                t.value, t.by = model, "human"
            elif action == "off_ladder":
                t.value, t.by = "gpt-5-preview", "human"
            elif action == "delete":
                t.value, t.by = None, "human"
            else:
                release = True
        inputs = Inputs(observed=ObservedModel(t.value, t.by, t.pinned), spend=spend, capacity=capacity,
                        budget_alert=budget_alert, probe_ok=probe, release=release,
                        app_switches=tuple(s for s in app_switches if now - s < HOUR))
        before = t.state
        world_before = dataclasses.replace(t)
        d, after = decide(inputs, before, policy, now)
        if d.writes and write_ok:
            t.value, t.by = d.to_model, HEALER
            t.switches.append(now)
            app_switches.append(now)
            t.state = after
        elif d.writes:
            t.state = unapplied(before, after)  # the ETag write lost, or the policy said no
        else:
            t.state = after
        history.append((who, inputs, before, d, t.state, world_before))
        if check:
            check(policy, now, inputs, before, d, after, world_before)
    return tenants, app_switches, history


def max_in_any_hour(times: list[dt.datetime]) -> int:
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u - t < HOUR) for i, t in enumerate(times)), default=0)


@SETTINGS
@given(policies, starts, steps)
def test_switch_caps_hold_for_any_sequence(policy, start, script):
    tenants, app_switches, _ = simulate(policy, start, script)
    for t in tenants:
        assert max_in_any_hour(t.switches) <= policy.max_switches_per_hour
    if policy.max_app_switches_per_hour is not None:
        assert max_in_any_hour(app_switches) <= policy.max_app_switches_per_hour


def _invariants(policy, now, inputs, before, d: Decision, after, world):
    # The model is always on the ladder, never below the floor; one rung per write.
    if d.writes:
        assert LADDER.allowed(d.to_model) and LADDER.allowed(d.from_model)
        step = LADDER.models.index(d.to_model) - LADDER.models.index(d.from_model)
        assert step == (1 if d.action == "downshift" else -1)
        # Never while HELD, never over a pin, never over a value Healer did not expect.
        assert before.status != "HELD" and not world.pinned
        assert before.status == "NORMAL" or world.value == before.model
    for s in (before, after):
        assert s.model is None or LADDER.allowed(s.model) or s.status == "HELD" or s.model == world.value
    # Never an upshift on unknown data, and never one for an over-budget tenant.
    if d.action == "restore":
        if policy.track_budget:
            assert _known(inputs.spend, now, policy)
            obs = inputs.spend
            assert obs.spend / obs.budget < policy.enter_ratio
            assert obs.forecast is None or obs.forecast / obs.budget < policy.forecast_enter_ratio
        assert not after.budget_active and not after.capacity_active
        if policy.require_probe:
            assert inputs.probe_ok is True
    # A human pin or a change behind Healer's back → HELD, without a write.
    if world.pinned and before.status != "HELD":
        assert after.status == "HELD" and not d.writes
    if before.status in ("DOWNSHIFTED", "RESTORING") and world.value != before.model:
        assert after.status == "HELD" and not d.writes
    # DOWNSHIFTED always means below the baseline.
    if after.status == "DOWNSHIFTED":
        assert LADDER.models.index(after.model) > LADDER.models.index(after.baseline)
    # The record survives Table storage (JSON) unchanged, and stays small.
    text = json.dumps(after.to_dict())
    assert len(text) < 30_000
    assert DownshiftState.from_dict(json.loads(text)) == after


@SETTINGS
@given(policies, starts, steps)
def test_ladder_unknown_data_held_and_storage_invariants(policy, start, script):
    simulate(policy, start, script, check=_invariants)


@SETTINGS
@given(policies, starts, steps)
def test_idempotent_on_alert_id_and_condition(policy, start, script):
    """Delivering any alert a second time (same id and condition) changes nothing."""
    def check(policy, now, inputs, before, d, after, world):
        if inputs.capacity is None and inputs.budget_alert is None:
            return
        d2, after2 = decide(inputs, after, policy, now)
        assert d2.duplicate and d2.action == "none" and after2 == after
    simulate(policy, start, script, check=check)


band_steps = st.lists(st.tuples(st.integers(0, 3 * 24 * 60), st.floats(0, 1), st.sampled_from([1, 5, 20]),
                                st.one_of(st.none(), st.floats(0, 0.99)), st.booleans()), min_size=1, max_size=80)


@SETTINGS
@given(policies, starts, band_steps, st.sampled_from(["NORMAL", "DOWNSHIFTED"]), st.sampled_from(LADDER.models[:3]))
def test_hysteresis_no_switch_while_spend_stays_between_exit_and_enter(policy, start, series, initial, model):
    """Spend anywhere in [exit, enter) — across days and period boundaries — never switches, whatever the state."""
    policy = dataclasses.replace(policy, require_probe=False, track_budget=True)
    value = model
    if initial == "DOWNSHIFTED":
        if LADDER.step_up(model) is None:
            model = value = "gpt-4o"
        state = DownshiftState(app="chat", tenant="t", status="DOWNSHIFTED", model=model,
                               baseline=LADDER.step_up(model), reason="budget", since=start, trips=1,
                               last_trip_at=start, last_switch_at=start, budget_active=True,
                               budget_period=period_at(start, policy.timezone).key, budget_at_trip=1000.0)
    else:
        state = DownshiftState(app="chat", tenant="t")
    now = start
    for advance, where, age, f_ratio, _ in series:
        now += dt.timedelta(minutes=advance)
        ratio = policy.exit_ratio + where * (policy.enter_ratio - policy.exit_ratio) * 0.999
        obs = SpendObservation(ratio * 1000.0, 1000.0, None if f_ratio is None else f_ratio * 1000.0,
                               now - dt.timedelta(minutes=age))
        d, state = decide(Inputs(observed=ObservedModel(value, HEALER), spend=obs), state, policy, now)
        assert not d.writes, d.reason


@SETTINGS
@given(policies, st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2025, 12, 31),
                              timezones=st.just(UTC)),
       st.lists(st.tuples(st.integers(0, 120), st.floats(0, 1.6), st.one_of(st.none(), st.floats(0, 2))),
                min_size=1, max_size=60))
def test_within_one_period_budget_alone_downshifts_at_most_once_and_never_restores(policy, start, series):
    """No downshift → restore → downshift oscillation on any spend series with a fixed budget in one period."""
    policy = dataclasses.replace(policy, track_budget=True)
    period = period_at(start, policy.timezone)
    state, value, now, writes = DownshiftState(app="chat", tenant="t"), "gpt-4.1", start, []
    for advance, ratio, f_ratio in series:
        candidate = now + dt.timedelta(minutes=advance)
        if not period.contains(candidate):
            break
        now = candidate
        obs = SpendObservation(ratio * 1000.0, 1000.0, None if f_ratio is None else f_ratio * 1000.0,
                               now - dt.timedelta(minutes=1))
        d, state = decide(Inputs(observed=ObservedModel(value, HEALER), spend=obs), state, policy, now)
        if d.writes:
            writes.append(d.action)
            value = d.to_model
    assert writes in ([], ["downshift"])


flaps = st.lists(st.tuples(st.integers(0, 12), st.sampled_from(["Fired", "Resolved", "tick", "tick"]),
                           st.integers(0, 5)), min_size=10, max_size=120)


@SETTINGS
@given(st.integers(1, 3), st.sampled_from([0, 30, 120]), st.sampled_from([1.0, 2.0]), starts, flaps)
def test_flapping_alert_never_exceeds_the_switch_cap(cap, dwell, backoff, start, script):
    """A flapping 429 alert with fresh low spend, no probe and short dwell: the cap is what bounds switching."""
    policy = DownshiftPolicy(LADDER, min_dwell_s=dwell, dwell_backoff=backoff, max_dwell_s=max(dwell, 600),
                             max_switches_per_hour=cap, trip_memory_s=0)
    state, value, now, switches = DownshiftState(app="chat", tenant="t"), "gpt-4.1", start, []
    for n, (advance, what, alert) in enumerate(script):
        now += dt.timedelta(minutes=advance)
        capacity = None if what == "tick" else CapacitySignal(f"a{alert}", what, now)
        obs = SpendObservation(10.0, 1000.0, None, now - dt.timedelta(minutes=1))
        d, state = decide(Inputs(observed=ObservedModel(value, HEALER), spend=obs, capacity=capacity),
                          state, policy, now)
        if d.writes:
            value = d.to_model
            switches.append(now)
    assert max_in_any_hour(switches) <= cap
