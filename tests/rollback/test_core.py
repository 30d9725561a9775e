"""The rollback decision core over real sample payloads, and its properties over random delivery orders."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from healers.rollback.core import (AppState, DeploymentNote, Latch, Observed, SlotView, SwapStatus, decide,
                                   deployment_history, forget_bad_build, new_deployment_since_latch,
                                   remember_rollback, verify)
from shared.alerts import PayloadError, parse_alert
from shared.controls import Mode
from shared.policy import PolicyDecision

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "alerts"
T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.timezone.utc)
LIVE = Mode(killed=False, dry_run=False, reason="live")
ALLOW = PolicyDecision(effect="allow", reason="test allows")


def payload(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def bad_in_prod(swap_at: dt.datetime = T0, **overrides) -> Observed:
    obs = Observed(
        production=SlotView(build="v2-bad", last_deployed_at=swap_at - dt.timedelta(minutes=20)),
        slot=SlotView(build="v1-good", last_deployed_at=swap_at - dt.timedelta(days=2)),
        last_swap=SwapStatus(at=swap_at, source="staging", destination="production"))
    return obs.model_copy(update=overrides)


def run(obs: Observed, *, fired=T0 + dt.timedelta(minutes=5), app: AppState | None = None, mode=LIVE,
        policy=ALLOW, approved=False, now=None):
    return decide(fired_at=fired, slot_name="staging", obs=obs, app=app or AppState(), mode=mode, policy=policy,
                  approved=approved, max_rollbacks=2, window=dt.timedelta(hours=24),
                  max_build_age=dt.timedelta(hours=24), now=now or T0 + dt.timedelta(minutes=6))


# ---------------------------------------------------------------------------------------------- payloads

@pytest.mark.parametrize("name,condition,signal", [
    ("metric_fired.json", "Fired", "Metric"),
    ("metric_resolved.json", "Resolved", "Metric"),
    ("log_search_fired.json", "Fired", "Log"),
    ("activity_log_fired.json", "Fired", "Activity Log"),
    ("smart_detection_fired.json", "Fired", "Log"),
    ("legacy_metric_activated.json", "Fired", "Metric"),
])
def test_sample_payloads_parse(name, condition, signal):
    alert = parse_alert(payload(name))
    assert alert.monitor_condition == condition
    assert alert.signal_type == signal
    assert alert.fired_at.tzinfo is not None


def test_alert_id_is_the_guid_ending_essentials_alert_id():
    fired, resolved = parse_alert(payload("metric_fired.json")), parse_alert(payload("metric_resolved.json"))
    assert fired.alert_id == resolved.alert_id == "12345678-1234-1234-1234-1234567890ab"
    assert fired.fired_at == dt.datetime(2026, 11, 20, 10, 5, 0, 123456, tzinfo=dt.timezone.utc)


def test_log_alert_target_is_a_workspace_but_mapping_comes_from_custom_properties():
    alert = parse_alert(payload("log_search_fired.json"))
    assert "workspaces" in alert.target_ids[0]
    assert alert.custom_properties["healer.target"].endswith("/sites/shop-web")


def test_legacy_schema_gets_a_stable_derived_id():
    a, b = parse_alert(payload("legacy_metric_activated.json")), parse_alert(payload("legacy_metric_activated.json"))
    assert a.alert_id == b.alert_id and a.schema_id == "legacy-metric"


@pytest.mark.parametrize("body,fragment", [
    ([], "JSON object"),
    ({"schemaId": "Microsoft.Insights/activityLogs", "data": {}}, "unsupported schemaId"),
    ({"schemaId": "azureMonitorCommonAlertSchema"}, "data must be an object"),
    ({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {}}}, "essentials.alertId"),
    ({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {
        "alertId": "/x/alerts/not-a-guid", "alertRule": "r", "monitorCondition": "Fired",
        "firedDateTime": "2026-11-20T10:00:00Z"}}}, "GUID"),
    ({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {
        "alertId": "/x/alerts/12345678-1234-1234-1234-1234567890ab", "alertRule": "r",
        "monitorCondition": "Maybe", "firedDateTime": "2026-11-20T10:00:00Z"}}}, "monitorCondition"),
    ({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {
        "alertId": "/x/alerts/12345678-1234-1234-1234-1234567890ab", "alertRule": "r",
        "monitorCondition": "Fired", "firedDateTime": "yesterday"}}}, "firedDateTime"),
])
def test_bad_payloads_name_what_is_wrong(body, fragment):
    with pytest.raises(PayloadError, match=fragment):
        parse_alert(body)


def test_custom_properties_are_bounded():
    body = payload("metric_fired.json")
    body["data"]["customProperties"] = {f"k{i}": "v" for i in range(100)}
    with pytest.raises(PayloadError, match="more than"):
        parse_alert(body)


# ---------------------------------------------------------------------------------------------- decisions

def test_bad_build_that_arrived_by_swap_is_rolled_back():
    d = run(bad_in_prod())
    assert d.action == "swap" and d.good == "v1-good" and d.bad == "v2-bad"


@pytest.mark.parametrize("obs,fragment", [
    (bad_in_prod(slot=SlotView(exists=False, state="Missing")), "does not exist"),
    (bad_in_prod(slot=SlotView(state="Stopped", build="v1-good")), "Stopped"),
    (bad_in_prod(slot=SlotView(build="v2-bad")), "change nothing"),
    (bad_in_prod(last_swap=None), "did not arrive by a swap"),
    (bad_in_prod(last_swap=SwapStatus(at=T0, source="canary", destination="production")), "did not arrive"),
    (bad_in_prod(slot=SlotView(build="v3-new", last_deployed_at=T0 + dt.timedelta(minutes=1))), "newer build"),
    (bad_in_prod(production=SlotView(build="v2-bad", last_deployed_at=T0 + dt.timedelta(minutes=2))),
     "deployed directly"),
    (bad_in_prod(production=SlotView(build="v2-bad", target_swap_slot="staging")), "swap with preview"),
    (bad_in_prod(production=SlotView(build=None)), "build marker"),
])
def test_never_swap_when_state_does_not_prove_a_known_good(obs, fragment):
    d = run(obs)
    assert d.action == "skip" and fragment in d.reason


def test_a_swap_after_the_alert_fired_means_reevaluate_not_act():
    d = run(bad_in_prod(swap_at=T0 + dt.timedelta(minutes=10)), fired=T0 + dt.timedelta(minutes=5),
            now=T0 + dt.timedelta(minutes=11))
    assert d.action == "skip" and "superseded" in d.reason


def test_old_builds_are_beyond_the_rollback_horizon():
    d = run(bad_in_prod(), fired=T0 + dt.timedelta(days=2), now=T0 + dt.timedelta(days=2))
    assert d.action == "skip" and "horizon" in d.reason


def test_latched_app_is_not_swapped_until_a_new_deployment():
    latch = Latch(good="v1-good", bad="v2-bad", at=T0 + dt.timedelta(minutes=7), incident="a")
    rolled_back = Observed(production=SlotView(build="v1-good", last_deployed_at=T0 - dt.timedelta(days=2)),
                           slot=SlotView(build="v2-bad", last_deployed_at=T0 - dt.timedelta(minutes=20)),
                           last_swap=SwapStatus(at=T0 + dt.timedelta(minutes=7), source="staging",
                                                destination="production"))
    d = run(rolled_back, app=AppState(latch=latch, rollbacks=[latch.at]), fired=T0 + dt.timedelta(minutes=8),
            now=T0 + dt.timedelta(minutes=9))
    assert d.action == "skip" and "latched" in d.reason
    # A new build deployed to staging and swapped in releases the latch; this new build can be judged again.
    t = T0 + dt.timedelta(hours=2)
    fresh = Observed(production=SlotView(build="v3", last_deployed_at=t - dt.timedelta(minutes=10)),
                     slot=SlotView(build="v1-good", last_deployed_at=T0 - dt.timedelta(days=2)),
                     last_swap=SwapStatus(at=t, source="staging", destination="production"))
    d2 = run(fresh, app=AppState(latch=latch, rollbacks=[latch.at]), fired=t + dt.timedelta(minutes=3),
             now=t + dt.timedelta(minutes=4))
    assert d2.clear_latch and d2.action == "swap" and d2.good == "v1-good"


def test_never_swaps_back_to_a_build_it_rolled_back_from():
    latch = Latch(good="v1", bad="v2-bad", at=T0 - dt.timedelta(hours=1), incident="a")
    obs = bad_in_prod(production=SlotView(build="v3", last_deployed_at=T0 - dt.timedelta(minutes=20)),
                      slot=SlotView(build="v2-bad", last_deployed_at=T0 - dt.timedelta(hours=3)))
    d = run(obs, app=AppState(latch=latch))
    assert d.action == "skip" and "already rolled back from" in d.reason


def test_rollback_budget_per_window():
    app = AppState(rollbacks=[T0 - dt.timedelta(hours=3), T0 - dt.timedelta(hours=1)])
    d = run(bad_in_prod(), app=app)
    assert d.action == "skip" and "budget" in d.reason


def test_escalated_app_never_swaps():
    d = run(bad_in_prod(), app=AppState(escalated="verification failed"))
    assert d.action == "skip" and "escalated" in d.reason


@pytest.mark.parametrize("mode,policy,approved,action", [
    (Mode(killed=True, dry_run=False, reason="kill"), ALLOW, False, "killed"),
    (LIVE, PolicyDecision(effect="deny", reason="no"), False, "refuse"),
    (LIVE, PolicyDecision(effect="ask", reason="ask"), False, "ask"),
    (LIVE, PolicyDecision(effect="ask", reason="ask"), True, "swap"),
    (LIVE, PolicyDecision(effect="deny", reason="no"), True, "refuse"),
    (Mode(killed=False, dry_run=True, reason="dry"), ALLOW, False, "dry-run"),
])
def test_safety_gates(mode, policy, approved, action):
    assert run(bad_in_prod(), mode=mode, policy=policy, approved=approved).action == action


def test_verify():
    good = Observed(production=SlotView(build="v1"), slot=SlotView(build="v2"))
    assert verify(obs=good, good="v1", health=None) is None
    assert verify(obs=good, good="v1", health="ok") is None
    assert "health" in verify(obs=good, good="v1", health="HTTP 503")
    assert "expected v1" in verify(obs=good.model_copy(update={"production": SlotView(build="v2")}), good="v1",
                                   health="ok")


# ---------------------------------------------------------------------------------------------- properties

class World:
    """A pure model of one app with two slots, Healer's records, and what happened."""

    def __init__(self):
        self.prod, self.slot = "v2-bad", "v1-good"
        self.prod_deployed, self.slot_deployed = T0 - dt.timedelta(minutes=20), T0 - dt.timedelta(days=2)
        self.swap_at = T0
        self.app = AppState()
        self.decided: set[str] = set()
        self.swaps_by_incident: dict[str, int] = {}
        self.rolled_from: set[str] = set()
        self.now = T0 + dt.timedelta(minutes=5)

    def observed(self) -> Observed:
        return Observed(production=SlotView(build=self.prod, last_deployed_at=self.prod_deployed),
                        slot=SlotView(build=self.slot, last_deployed_at=self.slot_deployed),
                        last_swap=SwapStatus(at=self.swap_at, source="staging", destination="production"))

    def swap(self) -> None:
        self.prod, self.slot = self.slot, self.prod
        self.prod_deployed, self.slot_deployed = self.slot_deployed, self.prod_deployed
        self.swap_at = self.now

    def deliver(self, incident: str, condition: str, fired: dt.datetime) -> None:
        self.now += dt.timedelta(seconds=30)
        if condition == "Resolved" or incident in self.decided:   # the shell records, never acts
            return
        d = decide(fired_at=fired, slot_name="staging", obs=self.observed(), app=self.app, mode=LIVE, policy=ALLOW,
                   approved=False, max_rollbacks=3, window=dt.timedelta(hours=24),
                   max_build_age=dt.timedelta(hours=24), now=self.now)
        if d.clear_latch:
            self.app.latch = None
        if d.action == "swap":
            assert d.good not in self.rolled_from, f"Healer swapped {d.good} back in after rolling away from it"
            self.rolled_from.add(d.bad)
            self.swap()
            self.swaps_by_incident[incident] = self.swaps_by_incident.get(incident, 0) + 1
            self.app = remember_rollback(self.app, good=d.good, bad=d.bad, at=self.now, incident=incident,
                                         reason="test")
        self.decided.add(incident)

    def rearm(self) -> None:
        """POST /api/rollback/rearm without forgetting any build: the latch and escalation go, the memory stays."""
        self.app = self.app.model_copy(update={"latch": None, "escalated": None})

    def forget(self, build: str) -> None:
        """An operator explicitly clears one remembered bad build: from then on it may be judged again."""
        self.app = forget_bad_build(self.app, build)
        self.rolled_from.discard(build)

    def deliver_ignoring_dedupe(self, incident: str, fired: dt.datetime) -> None:
        """A delivery whose dedupe record was lost (crash before it was written): only the core protects."""
        self.decided.discard(incident)
        self.deliver(incident, "Fired", fired)


deliveries = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["Fired", "Fired", "Resolved"]),
                                st.booleans()), min_size=1, max_size=30)


@hsettings(max_examples=300, deadline=None)
@given(deliveries)
def test_never_more_than_one_swap_per_incident_and_never_on_resolved(events):
    world = World()
    fired = {"a": T0 + dt.timedelta(minutes=2), "b": T0 + dt.timedelta(minutes=3), "c": T0 + dt.timedelta(minutes=4)}
    for incident, condition, lose_dedupe in events:
        if lose_dedupe and condition == "Fired":
            world.deliver_ignoring_dedupe(incident, fired[incident])
        else:
            world.deliver(incident, condition, fired[incident])
    assert sum(world.swaps_by_incident.values()) <= 1, "one storm, one rollback"
    assert all(n <= 1 for n in world.swaps_by_incident.values())
    if world.swaps_by_incident:
        assert world.prod == "v1-good", "a rollback sticks: the bad build never comes back"


@hsettings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["deploy", "alert", "dup", "resolved"]), min_size=1, max_size=25))
def test_rollback_never_reinstates_a_build_it_rolled_back_from(ops):
    """Pipeline deploys interleaved with alerts, duplicates and resolutions (World.deliver asserts on each swap)."""
    world = World()
    n = 0
    incident = "i0"
    for op in ops:
        if op == "deploy":  # a new build goes to staging and the pipeline swaps it in
            n += 1
            world.now += dt.timedelta(minutes=30)
            world.slot, world.slot_deployed = f"v{n + 10}", world.now - dt.timedelta(minutes=5)
            world.swap()
            incident = f"i{n}"
        elif op == "alert":
            incident += "+"
            world.deliver(incident, "Fired", world.now)
        elif op == "dup":
            world.deliver(incident, "Fired", world.now)
        else:
            world.deliver(incident, "Resolved", world.now)
    assert all(count <= 1 for count in world.swaps_by_incident.values())


def test_busy_retries_outlast_a_dead_workers_lease():
    """A worker that died mid-swap holds the app's lease until it expires; the redelivered message must still be
    trying when it does, however the jitter falls."""
    from healers.rollback.shell import MAX_ATTEMPTS
    from shared.config import Settings
    from shared.work import busy_delay
    lowest = sum(min(120.0, 2.0 * 1.6 ** a) * 0.75 for a in range(MAX_ATTEMPTS))
    assert lowest > Settings({}).lease_seconds
    assert all(busy_delay(a) <= 120 * 1.25 for a in range(50))
    assert busy_delay(0) < 3, "a live holder finishes soon: the first retry comes quickly"


def test_waiting_on_a_long_swap_renews_the_lease():
    from healers.rollback import arm

    class SlowOperation:  # the LROPoller protocol arm.wait relies on: wait(timeout), done(), result()
        def __init__(self, rounds: int):
            self.rounds = rounds

        def wait(self, timeout=None):
            self.rounds -= 1

        def done(self):
            return self.rounds <= 0

        def result(self):
            return None

    beats = []
    arm.wait(SlowOperation(4), heartbeat=lambda: beats.append(1), every=0)
    assert len(beats) == 3


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["deploy", "deploy-prod", "alert", "dup", "resolved", "rearm", "pipeline-swap",
                                 "forget"]), min_size=1, max_size=30))
def test_remembered_bad_builds_survive_rearm_and_latch_release(ops):
    """Re-arms, latch releases by new deployments and the pipeline swapping staging back in between alerts:
    Healer never swaps a build it rolled away from into production (World.deliver asserts it on every swap)
    unless an operator forgot that build explicitly."""
    world = World()
    n, incident = 0, "i0"
    for op in ops:
        world.now += dt.timedelta(minutes=1)
        if op == "deploy":          # a new build to staging, swapped in by the pipeline
            n += 1
            world.now += dt.timedelta(minutes=30)
            world.slot, world.slot_deployed = f"v{n + 10}", world.now - dt.timedelta(minutes=5)
            world.swap()
            incident = f"i{n}"
        elif op == "deploy-prod":   # a hotfix deployed straight to production releases a latch
            n += 1
            world.prod, world.prod_deployed = f"v{n + 10}", world.now
        elif op == "pipeline-swap":  # someone swaps staging back in (e.g. the bad build, by hand)
            world.swap()
        elif op == "rearm":
            world.rearm()
        elif op == "forget" and world.app.bad_builds:
            world.forget(sorted(world.app.bad_builds)[0])
        elif op == "alert":
            incident += "+"
            world.deliver(incident, "Fired", world.now)
        elif op == "dup":
            world.deliver(incident, "Fired", world.now)
        elif op == "resolved":
            world.deliver(incident, "Resolved", world.now)
    assert set(world.app.bad_builds) == world.rolled_from, "the memory is exactly what Healer rolled away from"


def test_rearm_keeps_the_bad_build_remembered_until_forgotten():
    """The trial from issue 14: rollback, re-arm (no new deployment), a new alert must not swap the bad build back."""
    world = World()
    world.deliver("a", "Fired", T0 + dt.timedelta(minutes=2))
    assert world.prod == "v1-good" and world.app.bad_builds.keys() == {"v2-bad"}
    world.rearm()
    world.now += dt.timedelta(minutes=5)
    d = decide(fired_at=world.now, slot_name="staging", obs=world.observed().model_copy(
        update={"last_swap": SwapStatus(at=world.now - dt.timedelta(minutes=1), source="staging",
                                        destination="production")}),
        app=world.app, mode=LIVE, policy=ALLOW, approved=False, max_rollbacks=5, window=dt.timedelta(hours=24),
        max_build_age=dt.timedelta(hours=24), now=world.now)
    assert d.action == "skip" and "already rolled back from" in d.reason and "forgetBuild" in d.reason
    forgotten = forget_bad_build(world.app, "v2-bad")
    assert "v2-bad" not in forgotten.bad_builds and "v2-bad" in world.app.bad_builds


def test_bad_build_memory_is_bounded_to_the_newest():
    app = AppState()
    for i in range(60):
        app = remember_rollback(app, good="g", bad=f"b{i}", at=T0 + dt.timedelta(minutes=i), incident=str(i),
                                reason="r")
    assert len(app.bad_builds) == 50 and "b59" in app.bad_builds and "b0" not in app.bad_builds


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(-120, 120)), max_size=12))
def test_only_a_successful_deployment_releases_the_latch(deployments):
    """Random deployment histories around a latch: the latch is released iff a successful (status 4) deployment
    came after it; failed and in-progress ones are listed to be audited, never counted."""
    latch = Latch(good="v1", bad="v2", at=T0, incident="a")
    notes = [DeploymentNote(id=f"d{i}", status=status, at=T0 + dt.timedelta(minutes=m))
             for i, (status, m) in enumerate(deployments)]
    for slot_side in ("production", "slot"):
        views = {"production": SlotView(build="v1"), "slot": SlotView(build="v2")}
        views[slot_side] = views[slot_side].model_copy(update=deployment_history(notes))
        released = new_deployment_since_latch(latch, Observed(**views))
        assert bool(released) == any(s == 4 and m > 0 for s, m in deployments)
        assert all(n.status != 4 for n in views[slot_side].not_counted)


def test_freeze_instead_of_rollback_never_swaps_and_a_frozen_app_stays_put():
    d = decide(fired_at=T0 + dt.timedelta(minutes=5), slot_name="staging", obs=bad_in_prod(), app=AppState(),
               mode=LIVE, policy=ALLOW, approved=True, max_rollbacks=2, window=dt.timedelta(hours=24),
               max_build_age=dt.timedelta(hours=24), now=T0 + dt.timedelta(minutes=6), freeze=True)
    assert d.action == "freeze" and d.tell_human and "irreversible" in d.reason
    assert run(bad_in_prod(), app=AppState(frozen="migrations")).action == "skip"


def test_freeze_in_dry_run_only_says_what_it_would_do():
    d = decide(fired_at=T0 + dt.timedelta(minutes=5), slot_name="staging", obs=bad_in_prod(), app=AppState(),
               mode=Mode(killed=False, dry_run=True, reason="dry-run on"), policy=ALLOW, approved=False,
               max_rollbacks=2, window=dt.timedelta(hours=24), max_build_age=dt.timedelta(hours=24),
               now=T0 + dt.timedelta(minutes=6), freeze=True)
    assert d.action == "dry-run" and "would freeze" in d.reason, "a dry run froze the app (state and controls)"
