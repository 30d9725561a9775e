"""Probe outcome states and pullability against real docker-registry replicas: a throttling / denying front on
loopback (standins.registry_front) in front of one replica, hosts under `.invalid` that never resolve, and a
multi-arch image index whose layers reach a replica after its manifests (blobs unlinked there, pushed later)."""
from __future__ import annotations

import time

import pytest

from healers.replication.core import BackoffPolicy, ReplicationPolicy, decide, intake, regions_to_probe
from healers.replication.registry_client import RegistryProber, regional_host
from standins.registries import Replicator, push_image, push_index
from standins.registry_front import set_rules, start_front, stats
from tests.replication.test_registry_probes import acr_event

pytestmark = pytest.mark.integration
REGIONS = ("eastus", "westus", "northeurope")


def policy(deadline=30.0, **kw):
    return ReplicationPolicy(required_regions={"myreg": REGIONS}, deadline_seconds=deadline,
                             backoff=BackoffPolicy(base_seconds=0.1, factor=1.5, max_seconds=0.3, min_seconds=0.05,
                                                   jitter=0.3), **kw)


def run_wait(prober, record, pol, timeout=20.0):
    """The shell's loop, compressed: probe what is due (throttled replicas wait out their Retry-After), decide."""
    deadline = time.monotonic() + timeout
    decisions = []
    while time.monotonic() < deadline:
        observations = prober.observe_all(record, regions_to_probe(record, time.time()))
        d = decide(record, observations, pol, time.time())
        decisions.append((d, observations))
        if d.action != "recheck":
            return d, decisions
        record = d.record
        time.sleep(min(d.delay_seconds, 0.3))  # stands in for the queue visibility timeout
    raise AssertionError(f"no outcome within {timeout}s: {decisions[-1][0].reason}")


@pytest.fixture()
def replicator(fleet):
    r = Replicator(fleet)
    yield r
    r.stop()


@pytest.fixture(scope="module")
def front(fleet, repl_workdir):
    """westus behind a front that can answer 429 / 403 on a schedule."""
    server, url = start_front(fleet.url("westus"), repl_workdir, "front-westus")
    yield url
    server.stop()


def prober_with(fleet, **overrides):
    return RegistryProber({**fleet.endpoint_map(), **{regional_host("myreg", r): u for r, u in overrides.items()}},
                          timeout=3.0)


def test_throttled_replica_honours_retry_after_and_is_ready_not_timed_out(fleet, front, replicator):
    image = push_image(fleet.url("eastus"), "team/throttle", "v1", seed="throttle")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/throttle", "v1")
    # westus answers 429 (Retry-After: 1) for 2.5 s: longer than the wait's whole deadline (1.5 s)
    set_rules(front, {"status": 429, "retryAfter": "1", "seconds": 2.5})
    prober = prober_with(fleet, westus=front)
    try:
        pol = policy(deadline=1.5, max_throttled_seconds=10)
        record = intake(None, acr_event(image), pol, time.time()).record
        outcome, decisions = run_wait(prober, record, pol)
    finally:
        prober.close()
        set_rules(front)
    assert outcome.action == "publish_ready", outcome.reason
    rec = outcome.record
    assert rec.first_seen["westus"] > rec.deadline_at          # served after the deadline: throttled time excluded
    assert rec.state_counts["westus"]["throttled"] >= 2 and rec.state_counts["westus"]["ready"] == 1
    assert rec.throttled_seconds["westus"] >= 1.5
    # Retry-After honoured per replica: westus is asked about once a second, the others on the normal schedule
    assert stats(front)["byStatus"]["429"] <= 4
    assert any(o.region != "westus" for _, obs in decisions for o in obs)
    view = outcome.record
    assert view.probe_states == {"eastus": "ready", "westus": "ready", "northeurope": "ready"}


def test_replica_still_throttled_when_the_wait_ends_reports_throttled(fleet, front, replicator):
    image = push_image(fleet.url("eastus"), "team/throttle2", "v1", seed="throttle2")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/throttle2", "v1")
    set_rules(front, {"status": 429, "retryAfter": "0"})   # throttled for good
    prober = prober_with(fleet, westus=front)
    try:
        pol = policy(deadline=0.6, max_throttled_seconds=0.8)
        record = intake(None, acr_event(image), pol, time.time()).record
        outcome, _ = run_wait(prober, record, pol)
    finally:
        prober.close()
        set_rules(front)
    assert outcome.action == "publish_throttled" and outcome.record.status == "throttled"
    assert "throttled" in outcome.reason and outcome.record.missing_regions() == ["westus"]


def test_forbidden_replica_is_named_as_a_network_rule_or_permission(fleet, front, replicator):
    image = push_image(fleet.url("eastus"), "team/deny", "v1", seed="deny")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/deny", "v1")
    set_rules(front, {"status": 403})
    prober = prober_with(fleet, westus=front)
    try:
        pol = policy(deadline=0.8)
        record = intake(None, acr_event(image), pol, time.time()).record
        outcome, _ = run_wait(prober, record, pol)
    finally:
        prober.close()
        set_rules(front)
    assert outcome.action == "publish_timed_out"
    rec = outcome.record
    assert rec.probe_states["westus"] == "forbidden" and "unauthorized" not in rec.state_counts["westus"]
    assert "network rule" in rec.last_errors["westus"] and "westus (forbidden)" in outcome.reason


def test_unresolvable_regional_endpoints_fail_fast_and_named(fleet, replicator):
    image = push_image(fleet.url("eastus"), "team/dns", "v1", seed="dns")
    # regional endpoints not enabled: no <registry>.<region>.geo.azurecr.io name resolves
    prober = prober_with(fleet, **{r: f"http://myreg-{r}.invalid:5000" for r in REGIONS})
    try:
        pol = policy(deadline=1800, unresolvable_confirm_seconds=0.3)
        record = intake(None, acr_event(image), pol, time.time()).record
        started = time.monotonic()
        outcome, decisions = run_wait(prober, record, pol)
        took = time.monotonic() - started
    finally:
        prober.close()
    assert outcome.action == "publish_failed" and outcome.record.status == "failed"
    assert outcome.reason.startswith("regional endpoints are not enabled for myreg")
    assert took < 10 and len(decisions) >= 2                  # confirmed over more than one probe, not 30 minutes
    assert outcome.record.state_counts["westus"]["unresolvable"] >= 2


def test_one_unresolvable_region_names_the_region_too(fleet, replicator):
    image = push_image(fleet.url("eastus"), "team/dns2", "v1", seed="dns2")
    replicator.copy_now("eastus", ["westus"], "team/dns2", "v1")
    prober = prober_with(fleet, northeurope="http://myreg-northeurope.invalid:5000")
    try:
        pol = policy(unresolvable_confirm_seconds=0.2)
        outcome, _ = run_wait(prober, intake(None, acr_event(image), pol, time.time()).record, pol)
    finally:
        prober.close()
    assert outcome.action == "publish_failed"
    assert "no replica in northeurope" in outcome.reason and outcome.record.first_seen.keys() == {"eastus", "westus"}


def test_multi_arch_index_is_not_ready_until_its_layers_arrive(fleet, replicator):
    image = push_index(fleet.url("eastus"), "team/multi", "v1", seeds=["multi-amd64", "multi-arm64"])
    layers = replicator.copy_lagging_layers("eastus", ["westus", "northeurope"], "team/multi", "v1",
                                            {"westus": 0.8, "northeurope": 1.6})
    assert len(layers) == 2
    manifest_only = RegistryProber(fleet.endpoint_map(), verify_blobs=False)
    prober = RegistryProber(fleet.endpoint_map())
    try:
        pol = policy()
        record = intake(None, acr_event(image), pol, time.time()).record
        early = decide(record, manifest_only.observe_all(record, REGIONS), pol, time.time())
        assert early.action == "publish_ready"           # what "manifest visible" would have said: wrong
        outcome, decisions = run_wait(prober, record, pol)
    finally:
        manifest_only.close()
        prober.close()
    assert outcome.action == "publish_ready", outcome.reason
    rec = outcome.record
    replicator.wait_idle(10)   # the job re-puts the manifests after the layers: it may finish after the decision
    done = {label.split()[-1].split("->")[1]: t for label, t in replicator.done if label.startswith("layers")}
    assert not replicator.errors and set(done) == {"westus", "northeurope"}
    first = decisions[0][0].record
    assert first.probe_states["westus"] == first.probe_states["northeurope"] == "incomplete"
    assert "blob unknown" in first.last_errors["westus"]
    # ready only once the layers were served (replicator clock is monotonic; compare durations from the start)
    assert rec.first_seen["northeurope"] - rec.created_at >= 1.5
    assert rec.state_counts["northeurope"]["incomplete"] >= 2
    # bounded: blobs and children already confirmed on a replica are not asked for again
    west = [o for _, obs in decisions for o in obs if o.region == "westus"]
    assert west[0].requests == 1 + 2 + 4                       # index + 2 children + 2 configs and 2 layers
    assert all(o.requests <= 2 + 1 for o in west[1:])          # then: only the two missing layers (+ the tag)
    assert decisions[0][0].record.pending_blobs["westus"] == layers
    assert rec.probe_requests["eastus"] == 1 + 2 + 4 + 1       # + the tag
    assert outcome.record.confirmed == {}                       # forgotten once a replica is satisfied
