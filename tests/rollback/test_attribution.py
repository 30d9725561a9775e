"""Attribution before action: configuration changes and dependency hints keep the core from blaming the build."""
from __future__ import annotations

import datetime as dt

from hypothesis import given, settings as hsettings, strategies as st

from healers.rollback.attribution import (ConfigChange, changed_names, dependency_hint, fingerprint,
                                          fingerprint_changes, suspects)
from healers.rollback.core import AppState, decide
from shared.controls import Mode
from shared.policy import PolicyDecision
from tests.rollback.test_core import ALLOW, LIVE, T0, bad_in_prod

SWAP, FIRED, NOW = T0, T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(minutes=6)


def run(changes=(), dependency=None, approved=False, on_change="ask", policy=ALLOW, mode=LIVE):
    return decide(fired_at=FIRED, slot_name="staging", obs=bad_in_prod(), app=AppState(), mode=mode, policy=policy,
                  approved=approved, max_rollbacks=2, window=dt.timedelta(hours=24),
                  max_build_age=dt.timedelta(hours=24), now=NOW, changes=list(changes), dependency=dependency,
                  on_config_change=on_change)


def change(at: dt.datetime, after: dt.datetime | None = "same", **kw) -> ConfigChange:
    return ConfigChange(source=kw.pop("source", "activity-log"), what=kw.pop("what", "app setting PROMPT changed"),
                        before=at, after=at if after == "same" else after, by=kw.pop("by", "ana@contoso.com"))


def test_a_change_between_swap_and_alert_asks_with_what_when_and_who():
    d = run([change(SWAP + dt.timedelta(minutes=2))])
    assert d.action == "ask" and d.good == "v1-good" and d.suspects
    assert "suspect configuration change app setting PROMPT changed" in d.reason
    assert "ana@contoso.com" in d.reason and "2026-11-20T10:02:00Z" in d.reason


def test_skip_per_app_and_approval_overrides():
    assert run([change(SWAP + dt.timedelta(minutes=2))], on_change="skip").action == "skip"
    assert run([change(SWAP + dt.timedelta(minutes=2))], approved=True).action == "swap"


def test_changes_outside_the_window_do_not_count():
    assert run([change(SWAP - dt.timedelta(minutes=1)), change(FIRED + dt.timedelta(seconds=1))]).action == "swap"


def test_kill_and_deny_still_win_over_the_ask():
    c = [change(SWAP + dt.timedelta(minutes=2))]
    assert run(c, policy=PolicyDecision(effect="deny", reason="no")).action == "refuse"
    assert run(c, mode=Mode(killed=True, dry_run=False, reason="kill")).action == "killed"


def test_dependency_hint_prevents_the_swap():
    d = run(dependency="the alert names a dependency (DependencyTarget=sql-prod)")
    assert d.action == "skip" and d.tell_human and "dependency outage" in d.reason
    assert dependency_hint({"healer.dependencyDriven": "true"}, []) is not None
    assert "sql" in dependency_hint({}, [("Dependency target", "sql-prod")])
    assert dependency_hint({}, [("tenant", "acme"), ("Instance", "x")]) is None


def test_fingerprints_hold_no_values_and_show_what_changed():
    old = fingerprint({"PROMPT_VERSION": "3", "API_KEY": "s3cr3t-value", "BUILD_ID": "v1"}, "app")
    new = fingerprint({"PROMPT_VERSION": "4", "API_KEY": "s3cr3t-value", "NEW": "x", "BUILD_ID": "v2"}, "app")
    assert "s3cr3t" not in repr(old) and all(len(h) == 20 for h in old.values())
    assert changed_names(old, new) == [("BUILD_ID", "changed"), ("NEW", "added"), ("PROMPT_VERSION", "changed")]
    stored = {"at": (SWAP + dt.timedelta(minutes=1)).isoformat(), "app-settings": old}
    found = fingerprint_changes(stored, {"app-settings": new}, now=NOW, swap_at=SWAP, ignore={"BUILD_ID"})
    assert [c.what for c in found] == ["app setting NEW added on production",
                                       "app setting PROMPT_VERSION changed on production"]
    assert fingerprint_changes({**stored, "at": (SWAP - dt.timedelta(minutes=1)).isoformat()},
                               {"app-settings": new}, now=NOW, swap_at=SWAP, ignore=set()) == [], \
        "a fingerprint older than the swap would blame the swap itself"


minutes = st.integers(-30, 30)


@hsettings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(minutes, st.one_of(st.none(), st.integers(0, 20))), max_size=6), st.booleans(),
       st.sampled_from(["ask", "skip"]))
def test_never_a_swap_when_a_change_sits_between_swap_and_alert_unless_approved(timeline, approved, on_change):
    """Random change timelines around a swap at T0 and an alert at T0+5 min: a change that may lie between the
    two never lets the core swap without a human's approval."""
    changes = []
    for start, width in timeline:
        at = SWAP + dt.timedelta(minutes=start)
        changes.append(change(at + dt.timedelta(minutes=width or 0), after=None if width is None else at))
    d = run(changes, approved=approved, on_change=on_change)
    between = [c for c in changes if c.before > SWAP and (c.after is None or c.after <= FIRED)]
    assert bool(between) == bool(suspects(changes, SWAP, FIRED))
    if between and not approved:
        assert d.action == on_change and d.action != "swap" and d.suspects
    else:
        assert d.action == "swap"
