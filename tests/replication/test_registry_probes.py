"""Probes and the decision loop against real docker-registry instances (one per region)."""
from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest

from healers.replication.core import BackoffPolicy, ReplicationPolicy, decide, intake, regions_to_probe
from healers.replication.events import AcrImageEvent
from healers.replication.registry_client import RegistryProber, regional_host
from standins.harness import free_port
from standins.registries import Replicator, copy_image, delete_manifest, push_image

pytestmark = pytest.mark.integration
REGIONS = ("eastus", "westus", "northeurope")


def policy(deadline=30.0):
    return ReplicationPolicy(required_regions={"myreg": REGIONS}, deadline_seconds=deadline,
                             backoff=BackoffPolicy(base_seconds=0.1, factor=1.5, max_seconds=0.5, min_seconds=0.05,
                                                   jitter=0.3))


def acr_event(image, action="push", event_id="e1"):
    return AcrImageEvent(event_id=event_id, event_type="x", action=action, schema_name="eventgrid", registry="myreg",
                         login_server="myreg.azurecr.io", repository=image.repository,
                         tag=image.tag if action == "push" else None, digest=image.digest, media_type=image.media_type,
                         location="eastus", request_id=None, event_time=dt.datetime.now(dt.timezone.utc))


def run_wait(prober, record, pol, timeout=20.0, history=None):
    """The shell's loop, compressed: probe what the core asks for, decide, repeat (polling, bounded)."""
    deadline = time.monotonic() + timeout
    decisions = []
    while time.monotonic() < deadline:
        observations = prober.observe_all(record, regions_to_probe(record))
        d = decide(record, observations, pol, time.time(), history)
        decisions.append(d)
        if d.action != "recheck":
            return d, decisions
        record = d.record
        time.sleep(min(d.delay_seconds, 0.2))  # stands in for the queue visibility timeout
    raise AssertionError(f"no outcome within {timeout}s: {decisions[-1].reason}")


@pytest.fixture()
def prober(fleet):
    p = RegistryProber(fleet.endpoint_map())
    yield p
    p.close()


@pytest.fixture()
def replicator(fleet):
    r = Replicator(fleet)
    yield r
    r.stop()


def test_probe_results_change_as_replicas_catch_up(fleet, prober, replicator):
    image = push_image(fleet.url("eastus"), "team/app", "v1", seed="probe-change")
    host = regional_host("myreg", "westus")
    assert prober.head_manifest(regional_host("myreg", "eastus"), "team/app", image.digest, image.digest).status == "present"
    before = prober.head_manifest(host, "team/app", image.digest, image.digest)
    assert (before.status, before.http_status) == ("absent", 404)
    replicator.copy_now("eastus", ["westus"], "team/app", "v1")
    after = prober.head_manifest(host, "team/app", image.digest, image.digest)
    assert (after.status, after.digest) == ("present", image.digest)
    tag = prober.head_manifest(host, "team/app", "v1")
    assert tag.digest == image.digest


def test_push_with_lagging_replicas_becomes_ready(fleet, prober, replicator):
    image = push_image(fleet.url("eastus"), "team/lag", "v1", seed="lagging")
    pol = policy()
    record = intake(None, acr_event(image), pol, time.time()).record
    replicator.schedule_copy("eastus", "team/lag", "v1", {"westus": 0.4, "northeurope": 0.9})
    outcome, decisions = run_wait(prober, record, pol)
    assert outcome.action == "publish_ready", outcome.reason
    assert len(decisions) >= 2 and decisions[0].action == "recheck"
    first = outcome.record.first_seen
    assert first["eastus"] <= first["westus"] <= first["northeurope"]
    assert not replicator.errors


def test_tag_overwritten_during_replication_is_a_race(fleet, prober, replicator):
    a = push_image(fleet.url("eastus"), "team/race", "v1", seed="race-a")
    pol = policy()
    record = intake(None, acr_event(a), pol, time.time()).record
    replicator.copy_now("eastus", ["westus"], "team/race", "v1")
    b = push_image(fleet.url("eastus"), "team/race", "v1", seed="race-b")   # overwrite before the others catch up
    replicator.copy_now("eastus", ["northeurope"], "team/race", a.digest)   # digest arrives, tag too late
    # Healer saw v1 pushed again (b) after a: a replica naming b lost the race (no grace needed)
    outcome, _ = run_wait(prober, record, pol, history={"v1": {a.digest: record.event_time,
                                                                b.digest: record.event_time + 1}})
    assert outcome.action == "publish_tag_race"
    assert outcome.record.tag_conflicts == {"eastus:v1": b.digest}


def test_replica_that_never_catches_up_times_out(fleet, prober, replicator):
    image = push_image(fleet.url("eastus"), "team/stuck", "v2", seed="stuck")
    pol = policy(deadline=1.5)
    record = intake(None, acr_event(image), pol, time.time()).record
    replicator.copy_now("eastus", ["westus"], "team/stuck", "v2")
    outcome, decisions = run_wait(prober, record, pol)
    assert outcome.action == "publish_timed_out"
    assert outcome.record.missing_regions() == ["northeurope"]
    # satisfied regions are not probed again: probe cost stays low
    assert all(set(d.probe_regions) == {"northeurope"} for d in decisions[:-1])


def test_delete_waits_for_404_everywhere(fleet, prober, replicator):
    image = push_image(fleet.url("eastus"), "team/del", "v1", seed="delete-me")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/del", "v1")
    assert delete_manifest(fleet.url("eastus"), "team/del", image.digest)
    pol = policy()
    record = intake(None, acr_event(image, action="delete"), pol, time.time()).record
    first = decide(record, prober.observe_all(record, REGIONS), pol, time.time())
    assert first.action == "recheck" and first.probe_regions == ["westus", "northeurope"]
    replicator.schedule_delete("team/del", image.digest, {"westus": 0.2, "northeurope": 0.5})
    outcome, _ = run_wait(prober, first.record, pol)
    assert outcome.action == "publish_ready" and outcome.record.action == "delete"


def test_unreachable_replica_is_an_error_not_absent(fleet):
    endpoints = {**fleet.endpoint_map(), regional_host("myreg", "westus"): f"http://127.0.0.1:{free_port()}"}
    prober = RegistryProber(endpoints, timeout=2.0)
    try:
        image = push_image(fleet.url("eastus"), "team/net", "v1", seed="net")
        record = intake(None, acr_event(image), policy(), time.time()).record
        obs = {o.region: o for o in prober.observe_all(record, REGIONS)}
        assert obs["eastus"].manifest == "present" and obs["eastus"].tags == {"v1": image.digest}
        assert obs["westus"].manifest == "error" and "network" in obs["westus"].detail
        assert obs["northeurope"].manifest == "absent"
        assert prober.requests == 4   # 3 digest HEADs + 1 tag HEAD where the manifest is present
    finally:
        prober.close()


def test_copy_preserves_digest_and_blobs(fleet):
    image = push_image(fleet.url("eastus"), "team/copy", None, seed="copy")
    digest = copy_image(fleet.url("eastus"), fleet.url("northeurope"), "team/copy", image.digest)
    assert digest == image.digest
    r = httpx.get(f"{fleet.url('northeurope')}/v2/team/copy/manifests/{digest}",
                  headers={"Accept": image.media_type})
    assert r.status_code == 200 and r.content == image.manifest


def test_registry_with_notifications_config_starts(repl_workdir):
    """The notifications block (ignore.actions only works alongside ignore.mediatypes) is accepted by 2.8."""
    from standins.registries import start_registry

    instance = start_registry("notify", repl_workdir / "notify", notify_url=f"http://127.0.0.1:{free_port()}/events")
    try:
        image = push_image(instance.base_url, "team/n", "v1", seed="notify")
        assert httpx.head(f"{instance.base_url}/v2/team/n/manifests/{image.digest}",
                          headers={"Accept": image.media_type}).status_code == 200
    finally:
        instance.stop()
