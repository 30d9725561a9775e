from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings, strategies as st

from healers.replication.core import (
    BackoffPolicy, RegionObservation, ReplicationPolicy, backoff_delay, check_message, decide,
    from_entity, intake, nominal_delay, parse_check_message, regions_to_probe, status_view, to_entity,
)
from healers.replication.events import AcrImageEvent

REGIONS = ("eastus", "westus", "northeurope")
D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
T0 = 1_700_000_000.0
POLICY = ReplicationPolicy(required_regions={"myreg": REGIONS}, deadline_seconds=600,
                           backoff=BackoffPolicy(base_seconds=2, factor=1.5, max_seconds=30, jitter=0.3))


def event(action="push", digest=D1, tag="v1", event_id="e1", at=T0, location=None, registry="myreg"):
    return AcrImageEvent(event_id=event_id, event_type=f"Microsoft.ContainerRegistry.Image{'Pushed' if action == 'push' else 'Deleted'}",
                         action=action, schema_name="eventgrid", registry=registry, login_server=f"{registry}.azurecr.io",
                         repository="team/app", tag=tag if action == "push" else None, digest=digest,
                         media_type=None, location=location, request_id="r-" + event_id,
                         event_time=dt.datetime.fromtimestamp(at, dt.timezone.utc))


def new_wait(**kw):
    return intake(None, event(**kw), POLICY, T0 + 1).record


def obs(region, manifest="present", tags=None, at=T0 + 5):
    return RegionObservation(region=region, manifest=manifest, tags=tags if tags is not None else {}, observed_at=at)


# ---------------------------------------------------------------------------------------------- intake

def test_intake_new_duplicate_evidence_unknown():
    first = intake(None, event(), POLICY, T0 + 1)
    assert first.reason == "new-wait" and first.enqueue_check
    rec = first.record
    assert rec.required_regions == list(REGIONS) and rec.tags == ["v1"] and rec.deadline_at == T0 + 601
    dup = intake(rec, event(), POLICY, T0 + 2)
    assert dup.reason == "duplicate-delivery" and not dup.enqueue_check and dup.record == rec
    more = intake(rec, event(event_id="e2", location="westus", at=T0 - 1), POLICY, T0 + 3)
    assert more.reason == "evidence-added" and not more.enqueue_check
    assert more.record.event_ids == ["e1", "e2"] and more.record.reported_locations == ["westus"]
    assert more.record.event_time == T0 - 1
    assert intake(None, event(registry="other"), POLICY, T0).reason == "unknown-registry"


def test_intake_new_tag_pending_and_after_completion():
    rec = new_wait()
    d = decide(rec, [obs(r, tags={"v1": D1}) for r in REGIONS], POLICY, T0 + 5)
    assert d.action == "publish_ready"
    again = intake(d.record, event(event_id="e9", tag="v2"), POLICY, T0 + 10)
    assert again.reason == "restarted" and again.enqueue_check and again.record.generation == 1
    assert again.record.tags == ["v2"]
    pending = intake(rec, event(event_id="e3", tag="v2"), POLICY, T0 + 2)
    assert pending.reason == "tag-added" and pending.record.tags == ["v1", "v2"]


def test_intake_delete_supersedes_push_but_reordered_old_push_does_not():
    rec = new_wait()
    deleted = intake(rec, event(action="delete", event_id="d1", at=T0 + 50), POLICY, T0 + 51)
    assert deleted.reason == "superseded" and deleted.enqueue_check
    assert deleted.record.action == "delete" and deleted.record.generation == 1
    late_push = intake(deleted.record, event(event_id="e-late", at=T0), POLICY, T0 + 52)
    assert late_push.reason == "stale-event" and not late_push.enqueue_check
    assert late_push.record.action == "delete"


# ---------------------------------------------------------------------------------------------- decide

def test_ready_only_when_every_region_serves_it_and_payload():
    rec = new_wait()
    d1 = decide(rec, [obs("eastus", tags={"v1": D1}, at=T0 + 2), obs("westus", "absent")], POLICY, T0 + 3)
    assert d1.action == "recheck" and d1.probe_regions == ["westus", "northeurope"]
    assert regions_to_probe(d1.record) == ["westus", "northeurope"]
    d2 = decide(d1.record, [obs("westus", tags={"v1": D1}, at=T0 + 6), obs("northeurope", tags={"v1": D1}, at=T0 + 9)],
                POLICY, T0 + 10)
    assert d2.action == "publish_ready"
    view = status_view(d2.record)
    assert view["status"] == "ready" and view["missingRegions"] == []
    assert view["regions"]["northeurope"]["lagSeconds"] == 9.0 and view["totalLagSeconds"] == 9.0
    assert decide(d2.record, [], POLICY, T0 + 11).action == "done"


def test_tag_missing_keeps_waiting_tag_naming_a_newer_push_is_a_race_at_once():
    rec = new_wait()
    d = decide(rec, [obs(r, tags={"v1": None}) for r in REGIONS], POLICY, T0 + 5)
    assert d.action == "recheck"
    later = {"v1": {D1: T0, D2: T0 + 2}}   # Healer saw v1 pushed again (D2) after our push
    d = decide(rec, [obs("eastus", tags={"v1": D1}), obs("westus", tags={"v1": D2}), obs("northeurope", "absent")],
               POLICY, T0 + 5, later)
    assert POLICY.tag_race_grace_seconds == 60   # no grace needed for a known later push
    assert d.action == "publish_tag_race" and "westus:v1 -> " + D2 in d.reason
    assert d.record.status == "tag_race"
    assert status_view(d.record)["tagConflicts"] == [{"region": "westus", "tag": "v1", "resolvedDigest": D2}]


def test_tag_still_naming_an_older_push_is_lag_not_a_race():
    """A routine re-push: the replica serves the new manifest before moving the tag off the previous push."""
    earlier = {"v1": {D2: T0 - 3600, D1: T0}}
    rec = new_wait()
    d = decide(rec, [obs("eastus", tags={"v1": D1}), obs("westus", tags={"v1": D2}, at=T0 + 5)], POLICY, T0 + 5,
               earlier)
    assert d.action == "recheck" and d.probe_regions == ["westus", "northeurope"]
    assert d.record.tag_lagging == {"westus:v1": D2} and d.record.tag_conflicts == {}
    # long past any grace it is still lag, never a race
    d = decide(d.record, [obs("westus", tags={"v1": D2}, at=T0 + 500)], POLICY, T0 + 500, earlier)
    assert d.action == "recheck"
    assert status_view(d.record)["tagLagging"] == [{"region": "westus", "tag": "v1", "olderDigest": D2}]
    d = decide(d.record, [obs("westus", tags={"v1": D1}, at=T0 + 510), obs("northeurope", tags={"v1": D1})],
               POLICY, T0 + 510, earlier)
    assert d.action == "publish_ready" and d.record.tag_lagging == {}
    # a tag that never moves: the timeout names the region and the tag left behind
    stuck = decide(new_wait(), [obs("eastus", tags={"v1": D1}), obs("westus", tags={"v1": D2}),
                                obs("northeurope", tags={"v1": D1})], POLICY, T0 + 5, earlier)
    late = decide(stuck.record, [obs("westus", tags={"v1": D2}, at=T0 + 601)], POLICY, T0 + 601, earlier)
    assert late.action == "publish_timed_out" and "tags not yet moved: westus:v1" in late.reason
    assert "tagConflicts" not in status_view(late.record)


def test_tag_naming_an_unknown_digest_is_a_race_after_the_grace():
    rec = new_wait()
    d = decide(rec, [obs("westus", tags={"v1": D2}, at=T0 + 5)], POLICY, T0 + 5)
    assert d.action == "recheck" and d.record.tag_conflicts == {"westus:v1": D2}
    d = decide(d.record, [obs("westus", tags={"v1": D2}, at=T0 + 30)], POLICY, T0 + 30)
    assert d.action == "recheck"
    d = decide(d.record, [obs("westus", tags={"v1": D2}, at=T0 + 66)], POLICY, T0 + 66)
    assert d.action == "publish_tag_race"
    # the event of the later push arrives meanwhile: no need to wait out the grace
    d = decide(rec, [obs("westus", tags={"v1": D2}, at=T0 + 5)], POLICY, T0 + 5)
    d = decide(d.record, [obs("westus", tags={"v1": D2}, at=T0 + 8)], POLICY, T0 + 8, {"v1": {D2: T0 + 4}})
    assert d.action == "publish_tag_race"


def test_tag_race_grace_zero_reports_unknown_digests_at_once():
    policy = POLICY.model_copy(update={"tag_race_grace_seconds": 0})
    d = decide(new_wait(), [obs("westus", tags={"v1": D2}, at=T0 + 5)], policy, T0 + 5)
    assert d.action == "publish_tag_race"


def test_tag_conflict_in_region_without_manifest_is_just_lag():
    rec = new_wait()
    d = decide(rec, [obs("westus", "absent", tags={"v1": D2})], POLICY, T0 + 5)
    assert d.action == "recheck"


def test_delete_waits_for_404_everywhere():
    rec = new_wait(action="delete")
    d = decide(rec, [obs("eastus", "absent"), obs("westus", "present"), obs("northeurope", "error")], POLICY, T0 + 5)
    assert d.action == "recheck" and d.probe_regions == ["westus", "northeurope"]
    assert d.record.last_errors["northeurope"].startswith("error")
    d = decide(d.record, [obs("westus", "absent"), obs("northeurope", "absent")], POLICY, T0 + 9)
    assert d.action == "publish_ready" and d.record.last_errors == {}


def test_timeout_names_missing_regions():
    rec = new_wait()
    d = decide(rec, [obs("eastus", tags={"v1": D1}), obs("westus", "unauthorized")], POLICY, rec.deadline_at)
    assert d.action == "publish_timed_out" and "westus" in d.reason and "northeurope" in d.reason
    view = status_view(d.record)
    assert view["status"] == "timed-out" and view["missingRegions"] == ["westus", "northeurope"]
    assert view["regions"]["westus"]["lastError"] == "unauthorized"


def test_check_message_and_entity_roundtrip():
    from healers.replication.events_out import stored_outcome_event
    rec = decide(new_wait(), [obs("eastus", tags={"v1": D2})], POLICY.model_copy(update={"tag_race_grace_seconds": 99}),
                 T0 + 5).record
    done = decide(rec, [obs("eastus", tags={"v1": D2})], POLICY, rec.deadline_at).record
    done.outcome_event, done.outcome_delivery, done.outcome_reason = stored_outcome_event(done), "publishing", "x"
    assert from_entity(json.loads(json.dumps(to_entity(done)))) == done
    ref = parse_check_message(check_message(rec))
    assert (ref.registry, ref.repository, ref.digest, ref.generation) == ("myreg", "team/app", D1, 0)
    entity = to_entity(rec)
    assert entity["PartitionKey"] == "myreg" and "/" not in entity["RowKey"]
    assert all(isinstance(v, (str, int, float, bool)) for v in entity.values())
    assert from_entity(json.loads(json.dumps(entity))) == rec
    for poison in ['{"registry": "myreg"}', "not json", '{"registry":"myreg","repository":"A","digest":"x","generation":0}']:
        with pytest.raises(ValueError):
            parse_check_message(poison)


# ---------------------------------------------------------------------------------------------- stalls

def test_a_check_running_long_after_the_deadline_times_out_without_counting_what_it_sees():
    rec = new_wait()
    everywhere = [obs(r, tags={"v1": D1}, at=rec.deadline_at + 61) for r in REGIONS]
    d = decide(rec, everywhere, POLICY, rec.deadline_at + 61)
    assert d.action == "publish_timed_out" and "check chain had stalled" in d.reason
    assert d.record.first_seen == {} and d.record.missing_regions() == list(REGIONS)
    # a check that is merely a little late (queue latency, whole-second visibility) still counts
    assert decide(rec, everywhere, POLICY, rec.deadline_at + 3).action == "publish_ready"


def test_stalled_reason_restart_and_status_view():
    from healers.replication.core import restart_due, restarted, stalled_reason
    rec = decide(new_wait(), [obs("eastus", tags={"v1": D1})], POLICY, T0 + 2).record
    assert stalled_reason(rec, POLICY, T0 + 10) is None and not restart_due(rec, POLICY, T0 + 10)
    overdue = stalled_reason(rec, POLICY, rec.next_check_at + 301)
    assert overdue and "has not run" in overdue
    past = stalled_reason(rec, POLICY, rec.deadline_at + 61)
    assert past and "deadline passed" in past and "last check" in past
    noted = rec.model_copy(update={"chain_note": "dead-lettered at X: gave up after 10 attempts"})
    assert "dead-lettered" in stalled_reason(noted, POLICY, T0 + 10)
    assert restart_due(noted, POLICY, T0 + 10)
    again = restarted(noted, T0 + 10)
    assert again.chain_note is None and again.next_check_at == T0 + 10 and again.restarted_at == T0 + 10
    # past the deadline it stays stalled until a check finishes it, but is restarted at most once per cooldown
    late = rec.deadline_at + 100
    fresh = restarted(rec, late)
    assert stalled_reason(fresh, POLICY, late + 1) and not restart_due(fresh, POLICY, late + 1)
    assert restart_due(fresh, POLICY, late + 31)
    view = status_view(rec, stalled=past, restarted=True)
    assert view["status"] == "stalled" and view["stalled"]["checkRestarted"] is True
    assert view["stalled"]["lastCheckAt"] == view["lastCheck"] is not None and view["missingRegions"]
    # a decided outcome whose event was never confirmed published is stalled too; its status stays the decision
    done = decide(rec, [], POLICY, rec.deadline_at).record.model_copy(update={"outcome_delivery": "publishing"})
    assert stalled_reason(done, POLICY, done.completed_at + 5) is None
    assert "not published yet" in stalled_reason(done, POLICY, done.completed_at + 61)
    assert status_view(done, stalled="x")["status"] == "timed-out"


def test_outcome_event_id_is_per_wait():
    a, b = new_wait(), new_wait()
    assert a.outcome_event_id == b.outcome_event_id
    assert new_wait(digest=D2).outcome_event_id != a.outcome_event_id


def test_backoff_policy_rejects_shrinking_jitter():
    with pytest.raises(ValueError):
        BackoffPolicy(base_seconds=1, factor=1.2, max_seconds=10, jitter=0.5)


# ---------------------------------------------------------------------------------------------- properties

backoffs = st.builds(
    lambda base, factor, span, jit: BackoffPolicy(base_seconds=base, factor=factor, max_seconds=base * span,
                                                  min_seconds=min(0.5, base), jitter=jit * (1 - 1 / factor)),
    st.floats(0.1, 10), st.floats(1.0, 3.0), st.floats(1.0, 100.0), st.floats(0.0, 1.0))


@settings(max_examples=200, deadline=None)
@given(backoffs, st.integers(0, 60), st.text(min_size=1, max_size=20))
def test_backoff_bounded_and_growing(backoff, attempt, seed):
    d = backoff_delay(attempt, backoff, seed)
    assert backoff.min_seconds <= d <= backoff.max_seconds + 1e-9
    assert d >= nominal_delay(attempt, backoff) * (1 - backoff.jitter) - 1e-9
    assert backoff_delay(attempt, backoff, seed) == d           # deterministic
    if nominal_delay(attempt, backoff) * backoff.factor <= backoff.max_seconds:   # not yet capped
        assert backoff_delay(attempt + 1, backoff, seed) >= d - 1e-9
    assert nominal_delay(attempt + 1, backoff) >= nominal_delay(attempt, backoff)


region_obs = st.builds(
    lambda region, manifest, tag, at: RegionObservation(region=region, manifest=manifest, tags=tag, observed_at=at),
    st.sampled_from(REGIONS + ("elsewhere",)),
    st.sampled_from(["present", "absent", "unauthorized", "error"]),
    st.one_of(st.just({}), st.fixed_dictionaries({"v1": st.sampled_from([D1, D2, None])})),
    st.floats(T0, T0 + 700))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["push", "delete"]), st.lists(st.lists(region_obs, max_size=5), min_size=1, max_size=12),
       st.lists(st.floats(0, 80), min_size=12, max_size=12), st.floats(0, 30))
def test_decision_invariants(action, rounds, steps, grace):
    policy = POLICY.model_copy(update={"tag_race_grace_seconds": grace})
    rec = new_wait(action=action)
    now = T0 + 1
    seen_ok: dict[str, bool] = {}
    for batch, step in zip(rounds, steps):
        d = decide(rec, batch, policy, now)
        for o in batch:
            if o.region in REGIONS:
                good = (o.manifest == "absent") if action == "delete" else (
                    o.manifest == "present" and o.tags.get("v1") == D1)
                seen_ok[o.region] = seen_ok.get(o.region, False) or good
        if d.action == "publish_ready":
            # never ready while a required region has not been observed satisfying the wait
            assert all(seen_ok.get(r) for r in REGIONS)
        if d.action == "recheck":
            assert now < rec.deadline_at                             # deadline respected
            assert 0 < d.delay_seconds <= policy.backoff.max_seconds
            assert now + d.delay_seconds <= max(rec.deadline_at, now + policy.backoff.min_seconds) + 1e-6
            assert set(d.probe_regions) == {r for r in REGIONS if not seen_ok.get(r)}
        if d.action == "publish_tag_race":
            assert action == "push"
            assert any(o.manifest == "present" and o.tags.get("v1") == D2 for b in rounds for o in b)
        if d.action == "publish_timed_out":
            assert now >= rec.deadline_at and not all(seen_ok.get(r) for r in REGIONS)
        if action == "delete":
            assert d.action != "publish_tag_race"
        if d.action != "recheck":
            assert d.record.status != "pending"
            assert decide(d.record, batch, policy, now + 1).action == "done"
            break
        rec, now = d.record, now + step


# ---------------------------------------------------------------------------------------------- probe states

def sobs(region, state, at, retry_after=None):
    return RegionObservation(region=region, manifest=state, tags={"v1": D1} if state == "present" else {},
                             observed_at=at, retry_after=retry_after, requests=1)


def test_throttled_region_waits_out_retry_after_and_its_throttled_time_is_not_counted():
    from healers.replication.core import region_deadline
    rec = new_wait()
    d = decide(rec, [sobs("eastus", "present", T0 + 2), sobs("westus", "throttled", T0 + 2, retry_after=20),
                     sobs("northeurope", "present", T0 + 2)], POLICY, T0 + 2)
    assert d.action == "recheck" and d.delay_seconds == pytest.approx(20)   # only westus left: its Retry-After
    assert regions_to_probe(d.record, T0 + 10) == [] and regions_to_probe(d.record, T0 + 22) == ["westus"]
    # still answering 429 at and past the deadline: not timed out, the region's deadline moves with it
    d = decide(d.record, [sobs("westus", "throttled", T0 + 601, retry_after=30)], POLICY, T0 + 601)
    assert d.action == "recheck" and region_deadline(d.record, "westus", T0 + 601, POLICY) > T0 + 601
    d = decide(d.record, [sobs("westus", "present", T0 + 640)], POLICY, T0 + 640)
    assert d.action == "publish_ready"
    view = status_view(d.record)
    assert view["regions"]["westus"]["probeCounts"] == {"ready": 1, "throttled": 2}
    assert view["regions"]["westus"]["throttledSeconds"] == pytest.approx(638)
    assert view["probeStates"] == {"ready": 3, "throttled": 2} and view["requests"] == 5


def test_throttled_until_the_cap_ends_throttled_and_a_mixed_end_is_a_timeout_naming_states():
    policy = POLICY.model_copy(update={"max_throttled_seconds": 100})
    rec = new_wait()
    d = decide(rec, [sobs("eastus", "present", T0 + 2), sobs("northeurope", "present", T0 + 2),
                     sobs("westus", "throttled", T0 + 2)], policy, T0 + 2)
    d = decide(d.record, [sobs("westus", "throttled", T0 + 650)], policy, T0 + 650)
    assert d.action == "recheck"          # throttled longer than the cap, but its deadline moved out by the cap
    d = decide(d.record, [sobs("westus", "throttled", T0 + 702)], policy, T0 + 702)
    assert d.action == "publish_throttled" and d.record.status == "throttled"
    assert status_view(d.record)["status"] == "throttled"
    mixed = decide(rec, [sobs("eastus", "present", T0 + 2), sobs("westus", "forbidden", T0 + 2),
                         sobs("northeurope", "throttled", T0 + 2)], policy, T0 + 2)
    mixed = decide(mixed.record, [sobs("northeurope", "throttled", T0 + 800)], policy, T0 + 800)
    assert mixed.action == "publish_timed_out"
    assert "westus (forbidden)" in mixed.reason and "northeurope (throttled)" in mixed.reason
    assert "network rule" in mixed.record.last_errors["westus"]


def test_unresolvable_fails_fast_only_after_confirmation():
    rec = new_wait()
    d = decide(rec, [sobs(r, "unresolvable", T0 + 2) for r in REGIONS], POLICY, T0 + 2)
    assert d.action == "recheck"                                   # one failed lookup is not yet a verdict
    d = decide(d.record, [sobs(r, "unresolvable", T0 + 10) for r in REGIONS], POLICY, T0 + 10)
    assert d.action == "recheck"
    d = decide(d.record, [sobs(r, "unresolvable", T0 + 18) for r in REGIONS], POLICY, T0 + 18)
    assert d.action == "publish_failed" and d.record.status == "failed"
    assert d.reason.startswith("regional endpoints are not enabled for myreg")
    assert "--regional-endpoints enabled" in d.reason and status_view(d.record)["failure"] == d.reason
    # a run broken by any other answer starts over
    d = decide(rec, [sobs("westus", "unresolvable", T0 + 2)], POLICY, T0 + 2)
    d = decide(d.record, [sobs("westus", "error", T0 + 10)], POLICY, T0 + 10)
    d = decide(d.record, [sobs("westus", "unresolvable", T0 + 20)], POLICY, T0 + 20)
    assert d.action == "recheck" and d.record.unresolvable_span["westus"] == [T0 + 20, T0 + 20]


def test_retry_after_parsing_and_throttle_wait():
    from healers.replication.acr_auth import parse_retry_after
    from healers.replication.probe_states import throttle_wait
    assert parse_retry_after("7") == 7.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("99999999") == 86400.0
    assert throttle_wait(7, 1, base=2, cap=60, max_retry_after=300) == 7
    assert throttle_wait(9999, 1, base=2, cap=60, max_retry_after=300) == 300
    assert [throttle_wait(None, n, base=2, cap=60, max_retry_after=300) for n in (1, 2, 3, 9)] == [2, 4, 8, 60]


states_obs = st.builds(
    lambda region, state, ra, at: RegionObservation(region=region, manifest=state,
                                                    tags={"v1": D1} if state == "present" else {},
                                                    retry_after=ra, observed_at=at),
    st.sampled_from(REGIONS),
    st.sampled_from(["present", "absent", "incomplete", "throttled", "forbidden", "unresolvable", "error"]),
    st.one_of(st.none(), st.floats(0, 400)), st.floats(T0, T0 + 2000))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(states_obs, max_size=4), min_size=1, max_size=15),
       st.lists(st.floats(0, 300), min_size=15, max_size=15), st.floats(1, 900), st.floats(0, 60))
def test_probe_state_invariants(rounds, steps, cap, confirm):
    """Never timed out while a missing replica answers 429 within its cap; ending while every missing replica is
    throttled says throttled; a failure needs a confirmed unresolvable replica; Retry-After is never cut short."""
    from healers.replication.core import region_deadline
    policy = POLICY.model_copy(update={"max_throttled_seconds": cap, "unresolvable_confirm_seconds": confirm})
    rec = new_wait()
    now = T0 + 1
    for batch, step in zip(rounds, steps):
        batch = [o.model_copy(update={"observed_at": now}) for o in batch]
        d = decide(rec, batch, policy, now)
        after, missing = d.record, d.record.missing_regions()
        if d.action in ("publish_timed_out", "publish_throttled"):
            assert now >= rec.deadline_at
            for r in missing:
                assert now >= region_deadline(after, r, now, policy) \
                    or now > rec.deadline_at + policy.stall_grace_seconds
                assert region_deadline(after, r, now, policy) <= rec.deadline_at + cap + 1e-6
            throttled_all = all(after.probe_states.get(r) == "throttled" for r in missing)
            assert (d.action == "publish_throttled") == throttled_all
        if d.action == "publish_failed":
            assert any(after.unresolvable_span.get(r) and
                       after.unresolvable_span[r][1] - after.unresolvable_span[r][0] >= confirm for r in missing)
        if d.action == "recheck":
            waiting = [r for r in missing if r in after.not_before]
            if waiting and len(waiting) == len(missing):
                earliest = min(after.not_before[r] for r in waiting)
                limit = max(max(region_deadline(after, r, now, policy) for r in missing) - now,
                            policy.backoff.min_seconds)
                assert now + d.delay_seconds >= min(earliest, now + limit) - 1e-6
            assert set(regions_to_probe(after, now + d.delay_seconds)) <= set(missing)
        if d.action != "recheck":
            assert d.record.status != "pending"
            break
        rec, now = after, now + step
