"""Topology from the registry: the pure rules, and the shell reading Registries - Get / Replications - List with
azure-mgmt-containerregistry from the ARM Microsoft.ContainerRegistry stand-in (bearer token from the identity
stand-in), with real docker-registry replicas, Azurite and the Event Grid topic stand-in."""
from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings, strategies as st

from healers.replication.core import decide
from healers.replication.topology import Replica, Topology, TopologyView, required_without_replica, view_for
from shared.config import ConfigError, Settings
from tests.replication.test_core import D1, POLICY, REGIONS, T0, new_wait, obs

SUB = "11111111-1111-1111-1111-111111111111"
RID = f"/subscriptions/{SUB}/resourceGroups/registries/providers/Microsoft.ContainerRegistry/registries/myreg"


def topo(**replicas) -> Topology:
    return Topology(registry="myreg", home_region="eastus", fetched_at=T0,
                    replicas={r: Replica(region=r, provisioning_state=p, display_status=s)
                              for r, (p, s) in replicas.items()})


ONLINE = ("Succeeded", "Ready")


# ---------------------------------------------------------------------------------------------- pure

def test_required_region_without_replica_and_views():
    t = topo(eastus=ONLINE, westus=("Succeeded", "Syncing"))
    assert required_without_replica(REGIONS, t) == ["northeurope"]
    view = view_for(REGIONS, t, "exclude")
    assert view.regions["eastus"] == "online" and view.regions["northeurope"] == "absent"
    assert view.regions["westus"].startswith("degraded (Syncing")


def test_degraded_replica_excluded_or_waited_for_by_setting_and_named_in_the_event():
    t = topo(eastus=ONLINE, westus=("Succeeded", "Unavailable"), northeurope=ONLINE)
    served = [obs("eastus", tags={"v1": D1}), obs("northeurope", tags={"v1": D1})]
    excluded = decide(new_wait(), served, POLICY, T0 + 5, topology=view_for(REGIONS, t, "exclude"))
    assert excluded.action == "publish_ready" and "1 excluded: westus" in excluded.reason
    from healers.replication.core import status_view
    view = status_view(excluded.record)
    assert "degraded (Unavailable" in view["excludedRegions"]["westus"]
    assert view["degradedRegions"]["westus"].startswith("degraded")
    waited = decide(new_wait(), served, POLICY, T0 + 5, topology=view_for(REGIONS, t, "wait"))
    assert waited.action == "recheck" and waited.probe_regions == ["westus"]
    assert waited.record.degraded == {"westus": view["degradedRegions"]["westus"]} and not waited.record.excluded


def test_replica_removed_mid_wait_is_no_longer_waited_for_and_one_back_online_is_again():
    d = decide(new_wait(), [obs("eastus", tags={"v1": D1})], POLICY, T0 + 5,
               topology=view_for(REGIONS, topo(eastus=ONLINE, westus=ONLINE, northeurope=ONLINE), "wait"))
    assert d.action == "recheck"
    gone = view_for(REGIONS, topo(eastus=ONLINE, westus=ONLINE), "wait")
    d2 = decide(d.record, [obs("westus", tags={"v1": D1})], POLICY, T0 + 9, topology=gone)
    assert d2.action == "publish_ready" and d2.record.excluded == {"northeurope": "replica removed from the registry"}
    back = decide(d.record, [], POLICY, T0 + 9, topology=gone)
    assert back.record.missing_regions() == ["westus"]
    again = decide(back.record, [], POLICY, T0 + 12, topology=view_for(REGIONS, topo(
        eastus=ONLINE, westus=ONLINE, northeurope=ONLINE), "wait"))
    assert again.record.missing_regions() == ["westus", "northeurope"] and not again.record.excluded


def test_regional_endpoints_off_in_the_topology_fail_at_once_and_nothing_left_is_a_failure():
    t = topo(eastus=ONLINE, westus=ONLINE, northeurope=ONLINE).model_copy(update={"regional_endpoints": False})
    d = decide(new_wait(), [], POLICY, T0 + 2, topology=view_for(REGIONS, t, "wait"))
    assert d.action == "publish_failed" and d.reason.startswith("regional endpoints are not enabled for myreg")
    none = TopologyView(regions={r: "absent" for r in REGIONS})
    d = decide(new_wait(), [], POLICY, T0 + 2, topology=none)
    assert d.action == "publish_failed" and "no replica left to wait for" in d.reason


statuses = st.sampled_from(["online", "degraded (Syncing, provisioning Succeeded)", "absent"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.fixed_dictionaries({r: statuses for r in REGIONS}), st.sampled_from(["exclude", "wait"]),
                          st.lists(st.sampled_from(REGIONS), max_size=3)), min_size=1, max_size=8))
def test_topology_invariants(rounds):
    """Excluded regions are never waited for or probed; ready means every region the topology still wants was
    seen serving the image; a region is excluded only when the topology says removed, or degraded with exclude."""
    rec, now = new_wait(), T0 + 1
    served: set[str] = set()
    for regions, mode, serving in rounds:
        view = TopologyView(regions=regions, degraded=mode)
        d = decide(rec, [obs(r, tags={"v1": D1}, at=now) for r in serving], POLICY, now, topology=view)
        served |= set(serving)
        after = d.record
        for r, why in after.excluded.items():
            assert regions[r] == "absent" or (regions[r] != "online" and mode == "exclude"), why
            assert r not in d.probe_regions
        if d.action == "publish_ready":
            assert all(r in served for r in REGIONS if r not in after.excluded)
        if d.action != "recheck":
            break
        rec, now = after, now + 5


# ---------------------------------------------------------------------------------------------- shell + ARM stand-in

@pytest.fixture(scope="module")
def arm_acr(local_azure):
    from standins.arm_acr import start_arm_acr
    server, url, control = start_arm_acr(local_azure, "arm-acr-tests")
    yield url, control
    control.close()
    server.stop()


@pytest.fixture
def topo_env(env, arm_acr, monkeypatch):
    url, control = arm_acr
    monkeypatch.setenv("HEALER_ARM_ENDPOINT", url)
    monkeypatch.setenv("HEALER_REPLICATION_TOPOLOGY_TTL_SECONDS", "0")   # every check reads it again
    monkeypatch.setenv("HEALER_REPLICATION_REGISTRIES", json.dumps(
        {"myreg": {"regions": list(REGIONS), "resourceId": RID, "degraded": "exclude"}}))
    return control


from tests.replication.test_shell import (  # noqa: E402  (fixtures and drivers shared with the shell tests)
    deliver, env, pump, push, queue_empty, records, replicator, status, topic, topic_events,
)
from drill.replication import acr_event  # noqa: E402

__all__ = ["env", "topic", "topic_events", "replicator"]


def test_required_region_without_a_replica_is_a_configuration_error(topo_env, fleet):
    topo_env.put_registry(RID, "eastus", ["eastus", "westus"])
    image = push(fleet, "team/topo-missing", "v1")
    with pytest.raises(ConfigError, match="requires northeurope but the registry has no replica there"):
        deliver(acr_event("myreg", "team/topo-missing", image.digest, tag="v1"))
    assert any("no replica there" in r["reason"] for r in records("refused"))
    from healers.replication.shell import StatusError
    with pytest.raises(StatusError):                                        # no wait was opened
        status("team/topo-missing", tag="v1")


def test_degraded_replica_is_excluded_and_the_event_says_so(topo_env, fleet, replicator, topic_events):
    topo_env.put_registry(RID, "eastus", {"eastus": {}, "westus": {"displayStatus": "Unavailable"},
                                          "northeurope": {}})
    image = push(fleet, "team/topo-degraded", "v1")
    replicator.copy_now("eastus", ["northeurope"], "team/topo-degraded", "v1")
    deliver(acr_event("myreg", "team/topo-degraded", image.digest, tag="v1"))
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    [event] = topic_events()
    assert event["eventType"] == "Healer.ImageReplicated"
    assert "Unavailable" in event["data"]["excludedRegions"]["westus"] and "westus" in event["data"]["degradedRegions"]
    assert event["data"]["regions"]["westus"]["state"] is None        # never probed


def test_replica_removed_from_the_topology_mid_wait_is_handled(topo_env, fleet, replicator, topic_events):
    topo_env.put_registry(RID, "eastus", ["eastus", "westus", "northeurope"])
    image = push(fleet, "team/topo-removed", "v1")
    replicator.copy_now("eastus", ["westus"], "team/topo-removed", "v1")   # northeurope never gets it
    deliver(acr_event("myreg", "team/topo-removed", image.digest, tag="v1"))
    pump(lambda: status("team/topo-removed", tag="v1")["attempts"] >= 2)
    assert status("team/topo-removed", tag="v1")["status"] == "pending"
    topo_env.remove_replication(RID, "northeurope")                        # someone deletes the replica
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    [event] = topic_events()
    assert event["eventType"] == "Healer.ImageReplicated"
    assert event["data"]["excludedRegions"] == {"northeurope": "replica removed from the registry"}
    assert topo_env.stats()["lists"] >= 3


def test_regional_endpoints_disabled_in_the_registry_fail_before_any_probe(topo_env, fleet, topic_events,
                                                                           monkeypatch):
    topo_env.put_registry(RID, "eastus", ["eastus", "westus", "northeurope"], regional_endpoints=False)
    image = push(fleet, "team/topo-noregional", "v1")
    started = time.monotonic()
    deliver(acr_event("myreg", "team/topo-noregional", image.digest, tag="v1"))
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    assert time.monotonic() - started < 10
    [event] = topic_events()
    assert event["eventType"] == "Healer.ImageReplicationFailed" and event["data"]["requests"] == 0
    assert "regional endpoints are not enabled for myreg" in event["data"]["failure"]
    assert Settings().get("HEALER_REPLICATION_TOPOLOGY_TTL_SECONDS") == "0"
