"""Properties of the shell's pure restore-guard plan (`healers.downshift.guard`) and of write intents
(`healers.downshift.intent`), over random tenants, states, spend and current values."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healers.downshift import guard, intent, shell
from healers.downshift import spend as spend_mod
from healers.downshift.actuators import Current
from healers.downshift.core import HEALER, DownshiftState, Inputs, ObservedModel, decide
from healers.downshift.periods import period_at
from shared.config import Settings
from tests.downshift.test_shell_env import AI_APP, LADDER, OPS_APP

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
CURRENT = period_at(NOW, "UTC", "month")
PREVIOUS = period_at(CURRENT.start_utc - dt.timedelta(days=1), "UTC", "month")
TENANTS = [f"t{i}" for i in range(6)]
VALUE, TARGET = "gpt-4o-mini", "gpt-4o"        # the app-wide value now, and where its restore goes
SETTINGS = settings(max_examples=int(os.environ.get("HEALER_HYPOTHESIS_EXAMPLES", "300")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def load(app_wide: bool, track: bool):
    policy = {"ladder": LADDER, "track_budget": track}
    if app_wide:
        cfg = {"resourceId": OPS_APP, "actuator": "appSetting", "key": "AI_MODEL", "role": "r", "policy": policy,
               "tenants": {"*": {"budget": 1e6}}, "defaultBudget": 100.0}
    else:
        cfg = {"resourceId": AI_APP, "appConfigEndpoint": "https://store.azconfig.io", "key": "ai:model",
               "role": "r", "policy": policy, "tenants": {"*": {"budget": 1e6}, **{t: {"budget": 100.0}
                                                                                  for t in TENANTS}}}
    [app] = shell.load_apps(Settings({"HEALER_DOWNSHIFT_APPS": json.dumps([cfg])})).values()
    return app


state_kinds = st.sampled_from(["none", "NORMAL", "DOWNSHIFTED-budget", "DOWNSHIFTED-capacity", "RESTORING", "HELD"])
tenant_strategy = st.tuples(
    state_kinds,
    st.sampled_from([None, "current", "previous"]),                  # budget_active, and in which period
    st.one_of(st.none(), st.floats(0, 1.5)),                          # spend ratio (None: no rows)
    st.floats(0, 1.0),                                                # share of it in the last 24 h
    st.sampled_from([None, None, None, "gpt-4o", "gpt-4o-mini"]),     # own value (None: inherits)
)
worlds = st.tuples(
    st.booleans(),                                                    # app-setting (app-wide only) actuator
    st.booleans(),                                                    # track_budget
    st.sampled_from(["ok", "ok", "ok", "failed", "partial", "stale"]),
    st.lists(tenant_strategy, min_size=len(TENANTS), max_size=len(TENANTS)),
    st.sets(st.sampled_from(TENANTS), max_size=2),                    # tenants with a pending write
)


def build(world):
    app_wide, track, data, tenants, pending = world
    app = load(app_wide, track)
    states: dict[str, DownshiftState] = {}
    currents: dict[str, Current] = {"*": Current(VALUE, HEALER, False, "e", True)}
    cells = {}
    newest = NOW - dt.timedelta(hours=2 if data == "stale" else 0, minutes=5)
    for name, (kind, active, ratio, recent_share, own) in zip(TENANTS, tenants):
        if kind != "none":
            status = kind.split("-")[0]
            states[name] = DownshiftState(
                app=app.resource_id, tenant=name, status=status, model=VALUE, baseline=TARGET,
                reason=kind.split("-")[1] if "-" in kind else "",
                budget_active=active is not None,
                budget_period=None if active is None else (CURRENT if active == "current" else PREVIOUS).key,
                held_reason="pinned" if status == "HELD" else "")
        if own is not None and not app_wide:
            currents[name] = Current(own, HEALER, False, "e", True)
        if ratio is not None:
            amount = ratio * 100.0
            cells[("r", name)] = spend_mod.Cell([amount], [amount * recent_share], newest)
    result = None
    if data != "failed":
        cells[("r", "canary")] = spend_mod.Cell([0.0], [0.0], newest)             # the app's newest row
        result = spend_mod.SpendResult([CURRENT.start_utc], NOW, cells,
                                       unknown="partial" if data == "partial" else "")
    return app, states, currents, result, set(pending), app_wide, track, data


def oracle_over(app, state: DownshiftState | None, result, tenant: str, track: bool, data: str) -> bool:
    """Over budget, by the issue's words (independent of the core): DOWNSHIFTED for budget, budget reason active
    and not cleared by a reset with spend below the exit threshold, or known spend/forecast at/over the thresholds."""
    policy = app.policy(tenant)
    if state is not None and state.status == "HELD":
        return False
    known = ratio = f_ratio = None
    if track and data == "ok" and result is not None and ("r", tenant) in result.cells:
        cell = result.cells[("r", tenant)]
        known = True
        ratio = cell.spend[0] / 100.0
        fc = spend_mod.forecast(cell.spend[0], cell.recent[0], CURRENT, NOW)
        f_ratio = None if fc is None else fc / 100.0
    spend_over = bool(known) and (ratio >= policy.enter_ratio
                                  or (f_ratio is not None and f_ratio >= policy.forecast_enter_ratio))
    flag = state is not None and state.budget_active and not (
        known and state.budget_period != CURRENT.key and ratio < policy.exit_ratio and not spend_over)
    downshifted = state is not None and state.status == "DOWNSHIFTED" and state.reason == "budget"
    return downshifted or spend_over or flag


@SETTINGS
@given(worlds)
def test_an_app_wide_restore_never_upshifts_an_over_budget_tenant(world):
    app, states, currents, result, pending, app_wide, track, data = build(world)
    plan = guard.plan(app, states, currents, result, NOW, VALUE, app_wide_only=app_wide, pending=pending)
    inheriting = [t for t in TENANTS if app_wide or t not in currents]
    over = {t for t in inheriting if oracle_over(app, states.get(t), result, t, track, data)}
    # Safety: if the restore goes ahead, every over-budget tenant that inherits is held at its value.
    if not plan.blocked:
        after = {t: (VALUE if t in plan.hold else currents[t].value if t in currents else TARGET)
                 for t in inheriting}
        assert all(after[t] == VALUE for t in over), (plan, over)
    # Only tenants that inherit and are not the operator's are ever written; the app-wide actuator writes none.
    assert set(plan.hold) <= {t for t in inheriting if t not in states or states[t].status != "HELD"}
    if app_wide:
        assert plan.hold == ()
    # Precision: nobody under budget is held; a known, fresh, quiet world does not block.
    assert set(plan.hold) <= over
    live = [t for t in inheriting if t not in states or states[t].status != "HELD"]
    if live and data != "ok" and track:
        assert plan.blocked
    if data == "ok" and not (pending & set(live)) and not over:
        assert not plan.blocked and plan.hold == ()


@SETTINGS
@given(worlds, st.sampled_from(TENANTS))
def test_a_held_tenant_is_recorded_so_drift_detection_and_its_own_restore_work(world, tenant):
    app, states, currents, result, _, _, _, _ = build(world)
    prev = states.get(tenant) or DownshiftState(app=app.resource_id, tenant=tenant)
    if prev.status == "HELD":
        return
    policy = app.policy(tenant)
    obs = spend_mod.observation(result, "r", tenant, CURRENT, 100.0)
    new = guard.held_state(prev, obs, policy, VALUE, TARGET, NOW, "test")
    assert (new.status, new.reason, new.model) == ("DOWNSHIFTED", "budget", VALUE)
    assert policy.ladder.allowed(new.baseline)
    assert policy.ladder.tier(new.baseline) <= policy.ladder.tier(VALUE)        # a restore only ever goes up
    assert new.switches == prev.switches                                         # not a switch: nothing moved
    # The tenant's next evaluation reads its own, Healer-tagged value: no drift, no HELD, no write up while over.
    later = NOW + dt.timedelta(minutes=1)
    decision, after = decide(Inputs(observed=ObservedModel(VALUE, HEALER), spend=obs), new, policy, later)
    assert after.status != "HELD"
    assert decision.action != "restore"
    # Round trip through storage.
    assert DownshiftState.from_dict(json.loads(json.dumps(new.to_dict()))) == new


# ---------------------------------------------------------------------------------------------- intents

def pending(action="downshift", frm="gpt-4o", from_own=False, to="gpt-4o-mini", to_own=True):
    return intent.PendingWrite(action, frm, from_own, to, to_own, NOW, DownshiftState(app="a", tenant="t").to_dict(),
                               True, "why")


@pytest.mark.parametrize("p, value, by, own, expected", [
    (pending(), "gpt-4o-mini", HEALER, True, "landed"),
    (pending(), "gpt-4o-mini", None, True, "unknown"),            # right value, not Healer's tag: someone else
    (pending(), "gpt-4o", None, False, "not_landed"),             # still inherits the old value
    (pending(), "gpt-4o", HEALER, True, "unknown"),               # an own value, but not the one Healer wrote
    (pending(), "gpt-35-turbo", HEALER, True, "unknown"),
    (pending("restore", "gpt-4o-mini", True, "gpt-4o", False), "gpt-4o", None, False, "landed"),   # removal
    (pending("restore", "gpt-4o-mini", True, "gpt-4o", False), "gpt-4o-mini", HEALER, True, "not_landed"),
    (pending("hold", "gpt-4o-mini", False, "gpt-4o-mini", True), "gpt-4o-mini", HEALER, True, "landed"),
    (pending("hold", "gpt-4o-mini", False, "gpt-4o-mini", True), "gpt-4o-mini", None, False, "not_landed"),
    (pending("hold", "gpt-4o-mini", False, "gpt-4o-mini", True), "gpt-4o", None, False, "unknown"),
])
def test_intent_outcome(p, value, by, own, expected):
    assert intent.outcome(p, value, by, own) == expected


def test_intent_round_trip_and_rejects_garbage():
    p = pending()
    assert intent.PendingWrite.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert intent.load(None) is None
    for bad in ({"action": "rm -rf"}, {"action": "downshift", "at": 5}, "x", {"action": "hold", "at": "2026-01-01",
                                                                          "after": {"status": "NOPE"}}):
        with pytest.raises(ValueError):
            intent.load(bad)


def test_held_after_an_unknown_outcome():
    s = intent.held(DownshiftState(app="a", tenant="t", model="gpt-4o"), "gpt-35-turbo", NOW, "why")
    assert (s.status, s.held_reason, s.held_value) == ("HELD", "unrecorded_write", "gpt-35-turbo")
    assert dataclasses.replace(s, last_reason="").model == "gpt-4o"
