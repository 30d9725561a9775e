"""The replication shell over the real wire: real docker-registry replicas, Azurite (state, queues, audit), the
stand-in Event Grid topic receiving what EventGridPublisherClient sends (Entra token from the identity stand-in,
or a key), driven through the registered function callables with the objects the Python worker builds."""
from __future__ import annotations

import datetime as dt
import json
import ssl
import sys
import time
import uuid
from typing import Callable

import httpx
import pytest
from azure.functions.queue import QueueMessage

from drill.replication import acr_event
from healers.replication import api, shell
from healers.replication.core import wait_keys
from shared import audit
from shared.config import Settings
from shared.state import Store
from standins.funchost import decode_eventgrid
from standins.harness import free_port, start_process
from standins.registries import Replicator, delete_manifest, push_image

pytestmark = pytest.mark.integration
REGIONS = ("eastus", "westus", "northeurope")
KEY = "shell-test-topic-key"
BACKOFF = {"baseSeconds": 0.5, "factor": 1.5, "maxSeconds": 1, "minSeconds": 0.2, "jitter": 0.3}


@pytest.fixture(scope="module")
def topic(local_azure):
    port = free_port()
    server = start_process("eventgrid-topic-shell", [
        sys.executable, "-m", "standins.eventgrid_topic", "--port", str(port), "--cert",
        str(local_azure.ca.cert_path), "--key", str(local_azure.ca.key_path), "--topic-key", KEY],
        {"https": port}, local_azure.workdir)
    yield f"https://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def topic_events(topic, local_azure):
    client = httpx.Client(base_url=topic, verify=ssl.create_default_context(cafile=str(local_azure.ca.ca_path)))
    client.delete("/_standin/events")
    yield lambda: client.get("/_standin/events").json()["events"]
    client.close()


@pytest.fixture
def env(local_azure, storage_env, fleet, topic, topic_events, monkeypatch):
    values = {**local_azure.env(), **storage_env,
              "HEALER_REPLICATION_REGISTRIES": json.dumps({"myreg": list(REGIONS)}),
              "HEALER_REPLICATION_ENDPOINTS": json.dumps(fleet.endpoint_map()),
              "HEALER_REPLICATION_BACKOFF": json.dumps(BACKOFF),
              "HEALER_REPLICATION_DEADLINE_SECONDS": "20",
              "HEALER_REPLICATION_TOPIC_ENDPOINT": f"{topic}/api/events"}   # no key: Entra token, as in Azure
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    from shared.identity import credential
    credential.cache_clear()
    return values


@pytest.fixture
def replicator(fleet):
    r = Replicator(fleet)
    yield r
    r.stop()


# ---------------------------------------------------------------------------------------------- drivers

def deliver(event: dict) -> str:
    """What the host does for one Event Grid delivery: build the worker's event object, call the function."""
    return api.on_event(decode_eventgrid(event))


def queue_client(name: str = shell.QUEUE):
    from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient
    return QueueClient.from_connection_string(Settings().require("AzureWebJobsStorage"), name,
                                              message_encode_policy=BinaryBase64EncodePolicy(),
                                              message_decode_policy=BinaryBase64DecodePolicy())


def pump(until: Callable[[], bool], timeout: float = 25.0, handler=api.process) -> list[str]:
    """Run the queue like the host (visible messages only, delete on success) until `until()` holds."""
    q = queue_client()
    results: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until():
            return results
        got = False
        for m in q.receive_messages(max_messages=16, visibility_timeout=30):
            got = True
            results.append(handler(QueueMessage(id=m.id, body=m.content, dequeue_count=m.dequeue_count)))
            q.delete_message(m)
        if not got:
            time.sleep(0.1)
    raise AssertionError(f"condition not reached in {timeout}s; results so far: {results}")


def queue_empty() -> bool:
    return queue_client().get_queue_properties().approximate_message_count == 0


def records(outcome: str | None = None) -> list[dict]:
    return list(audit.list_records(Settings(), day=dt.datetime.now(dt.timezone.utc).date(), healer="replication",
                                   outcome=outcome, limit=500))


def status(repository: str, **kw) -> dict:
    return shell.status(Settings(), registry="myreg", repository=repository, **kw)


def push(fleet, repository: str, tag: str | None, seed: str | None = None):
    return push_image(fleet.url("eastus"), repository, tag, seed=seed or f"{repository}-{uuid.uuid4()}")


# ---------------------------------------------------------------------------------------------- scenarios

def test_lagging_replicas_ready_once_despite_duplicate_and_per_replica_deliveries(env, fleet, replicator,
                                                                                  topic_events):
    image = push(fleet, "team/lag", "v1")
    replicator.schedule_copy("eastus", "team/lag", "v1", {"westus": 0.6, "northeurope": 1.5})
    first = acr_event("myreg", "team/lag", image.digest, tag="v1")
    outcomes = [deliver(first), deliver(first),
                deliver(acr_event("myreg", "team/lag", image.digest, tag="v1", location="westus")),
                deliver(first)]
    assert outcomes == ["recorded", "duplicate", "duplicate", "duplicate"]
    assert status("team/lag", tag="v1")["status"] == "pending"

    results = pump(lambda: len(topic_events()) >= 1 and queue_empty())
    assert results.count("recheck") >= 1 and results[-1] == "published"
    assert "stale-check" not in results   # one live chain of checks
    [event] = topic_events()
    view = status("team/lag", digest=image.digest)
    assert event["eventType"] == "Healer.ImageReplicated" and event["id"] == view["outcomeEventId"]
    regions = event["data"]["regions"]
    assert regions["northeurope"]["lagSeconds"] >= 1.4 and event["data"]["totalLagSeconds"] < 5
    assert view["status"] == "ready" and view["missingRegions"] == [] and view["regions"]["westus"]["firstSeen"]
    assert status("team/lag", tag="v1")["digest"] == image.digest
    acted = records("acted")
    assert len(acted) == 1 and "Healer.ImageReplicated" in acted[0]["reason"]
    assert len(records("duplicate")) == 3
    # a late re-delivery after the outcome changes nothing and publishes nothing
    assert deliver(first) == "duplicate" and queue_empty() and len(topic_events()) == 1


def test_region_that_never_catches_up_times_out_naming_it(env, fleet, replicator, topic_events, monkeypatch):
    monkeypatch.setenv("HEALER_REPLICATION_DEADLINE_SECONDS", "3")
    image = push(fleet, "team/stuck", "v2")
    replicator.copy_now("eastus", ["westus"], "team/stuck", "v2")
    deliver(acr_event("myreg", "team/stuck", image.digest, tag="v2"))
    results = pump(lambda: len(topic_events()) >= 1 and queue_empty())
    [event] = topic_events()
    assert event["eventType"] == "Healer.ImageReplicationTimedOut"
    assert event["data"]["missingRegions"] == ["northeurope"] and results[-1] == "published"
    assert status("team/stuck", tag="v2")["status"] == "timed-out"


def test_tag_overwritten_during_replication_is_reported_as_a_race(env, fleet, replicator, topic_events):
    """The default grace (60 s) does not delay it: Healer saw v1 pushed again, so the tag names a NEWER push."""
    a_at = dt.datetime.now(dt.timezone.utc)
    a = push(fleet, "team/race", "v1")
    replicator.copy_now("eastus", ["westus"], "team/race", "v1")
    b = push(fleet, "team/race", "v1")                                      # overwrite before the others catch up
    replicator.copy_now("eastus", ["northeurope"], "team/race", a.digest)   # digest arrives, the tag moved on
    deliver(acr_event("myreg", "team/race", a.digest, tag="v1", at=a_at))
    deliver(acr_event("myreg", "team/race", b.digest, tag="v1", at=a_at + dt.timedelta(seconds=1)))
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/race", "v1")   # the overwrite replicates
    pump(lambda: len(topic_events()) >= 2 and queue_empty())
    by_digest = {e["data"]["digest"]: e for e in topic_events()}
    assert len(topic_events()) == 2
    race = by_digest[a.digest]
    assert race["eventType"] == "Healer.TagRaceDetected"
    assert race["data"]["tagConflicts"][0] == {"region": "eastus", "tag": "v1", "resolvedDigest": b.digest}
    assert status("team/race", digest=a.digest)["status"] == "tag-race"
    assert by_digest[b.digest]["eventType"] == "Healer.ImageReplicated"   # the later push itself is fine
    assert status("team/race", tag="v1")["digest"] == b.digest


def test_routine_re_push_whose_replicas_move_the_tag_late_is_lag_not_a_race(env, fleet, replicator, topic_events,
                                                                            monkeypatch):
    """Even with no grace at all: a replica serving the new manifest while its tag still names the EARLIER push
    Healer saw is lagging; the wait is ready once the tags move."""
    monkeypatch.setenv("HEALER_REPLICATION_TAG_RACE_GRACE_SECONDS", "0")
    old = push(fleet, "team/repush", "v1")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/repush", "v1")
    deliver(acr_event("myreg", "team/repush", old.digest, tag="v1",
                      at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)))
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    new = push(fleet, "team/repush", "v1")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/repush", new.digest)   # manifest, not the tag
    deliver(acr_event("myreg", "team/repush", new.digest, tag="v1"))
    q = queue_client()
    [m] = list(q.receive_messages(max_messages=1, visibility_timeout=30))
    assert api.process(QueueMessage(id=m.id, body=m.content, dequeue_count=1)) == "recheck"
    q.delete_message(m)
    view = status("team/repush", tag="v1")
    assert view["status"] == "pending" and view["digest"] == new.digest and "tagConflicts" not in view
    assert {(t["region"], t["olderDigest"]) for t in view["tagLagging"]} == {("westus", old.digest),
                                                                             ("northeurope", old.digest)}
    replicator.schedule_copy("eastus", "team/repush", "v1", {"westus": 0.5, "northeurope": 1.0})   # tags move
    pump(lambda: len(topic_events()) >= 2 and queue_empty())
    events = topic_events()
    assert [e["eventType"] for e in events] == ["Healer.ImageReplicated"] * 2
    assert events[1]["data"]["digest"] == new.digest and "tagLagging" not in events[1]["data"]


def test_delete_is_ready_when_every_replica_answers_404_and_a_reordered_push_is_stale(env, fleet, replicator,
                                                                                       topic_events):
    image = push(fleet, "team/del", "v1")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/del", "v1")
    pushed_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=30)
    assert delete_manifest(fleet.url("eastus"), "team/del", image.digest)
    replicator.schedule_delete("team/del", image.digest, {"westus": 0.4, "northeurope": 1.0})
    assert deliver(acr_event("myreg", "team/del", image.digest, action="delete")) == "recorded"
    # the push event, delivered late (Event Grid does not order deliveries), must not reopen a push wait
    assert deliver(acr_event("myreg", "team/del", image.digest, tag="v1", at=pushed_at)) == "skipped"
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    [event] = topic_events()
    assert event["eventType"] == "Healer.ImageReplicated" and event["data"]["action"] == "delete"
    assert status("team/del", digest=image.digest)["status"] == "ready"
    assert any("older push delivered after a newer action" in r["reason"] for r in records("skipped"))


def test_unknown_registry_malformed_event_and_other_types_are_audited_not_dropped(env, fleet):
    digest = "sha256:" + "a" * 64
    assert deliver(acr_event("otherreg", "team/x", digest, tag="v1")) == "refused"
    assert deliver(acr_event("myreg", "team/x", "sha256:XYZ", tag="v1")) == "refused"
    chart = dict(acr_event("myreg", "team/x", digest), eventType="Microsoft.ContainerRegistry.ChartPushed")
    assert deliver(chart) == "ignored"
    reasons = " | ".join(r["reason"] for r in records())
    assert "'otherreg' is not configured" in reasons and "malformed digest" in reasons and "ChartPushed" in reasons
    assert queue_empty()


def test_unreachable_replica_is_audited_and_named_in_the_timeout(env, fleet, replicator, topic_events,
                                                                  monkeypatch):
    endpoints = {**fleet.endpoint_map(), "myreg.westus.geo.azurecr.io": f"http://127.0.0.1:{free_port()}"}
    monkeypatch.setenv("HEALER_REPLICATION_ENDPOINTS", json.dumps(endpoints))
    monkeypatch.setenv("HEALER_REPLICATION_DEADLINE_SECONDS", "2")
    image = push(fleet, "team/net", "v1")
    replicator.copy_now("eastus", ["northeurope"], "team/net", "v1")
    deliver(acr_event("myreg", "team/net", image.digest, tag="v1"))
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    [event] = topic_events()
    assert event["eventType"] == "Healer.ImageReplicationTimedOut"
    assert event["data"]["missingRegions"] == ["westus"]
    assert "network" in event["data"]["regions"]["westus"]["lastError"]
    [pending] = records("pending")
    assert "westus: error: network" in pending["reason"]


def test_dry_run_and_kill_switch_wait_but_do_not_publish(env, fleet, replicator, topic_events, monkeypatch):
    monkeypatch.setenv("HEALER_DRY_RUN", "true")
    image = push(fleet, "team/dry", "v1")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/dry", "v1")
    deliver(acr_event("myreg", "team/dry", image.digest, tag="v1"))
    assert pump(lambda: queue_empty() and bool(records("dry-run")))[-1] == "dry-run"
    assert topic_events() == [] and status("team/dry", tag="v1")["status"] == "ready"
    assert "would publish Healer.ImageReplicated" in records("dry-run")[0]["reason"]

    monkeypatch.setenv("HEALER_DRY_RUN", "false")
    monkeypatch.setenv("HEALER_KILL_SWITCH", "true")
    other = push(fleet, "team/killed", "v1")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/killed", "v1")
    deliver(acr_event("myreg", "team/killed", other.digest, tag="v1"))
    assert pump(lambda: queue_empty() and bool(records("skipped")))[-1] == "killed"
    assert topic_events() == [] and "not published" in records("skipped")[0]["reason"]


def test_topic_down_retries_then_publishes_the_same_event_id_once(env, fleet, replicator, topic, topic_events,
                                                                  monkeypatch):
    monkeypatch.setenv("HEALER_REPLICATION_TOPIC_ENDPOINT", f"https://127.0.0.1:{free_port()}/api/events")
    image = push(fleet, "team/topicdown", "v1")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/topicdown", "v1")
    deliver(acr_event("myreg", "team/topicdown", image.digest, tag="v1"))
    q = queue_client()
    [m] = list(q.receive_messages(max_messages=1, visibility_timeout=30))
    assert api.process(QueueMessage(id=m.id, body=m.content, dequeue_count=1)) == "retry"
    q.delete_message(m)
    view = status("team/topicdown", tag="v1")   # decided and saved with its event before publishing: final
    assert view["status"] == "ready" and view["outcomeDelivery"] == "publishing"
    # the topic comes back (and this time with a key: the local/test credential)
    monkeypatch.setenv("HEALER_REPLICATION_TOPIC_ENDPOINT", f"{topic}/api/events")
    monkeypatch.setenv("HEALER_REPLICATION_TOPIC_KEY", KEY)
    results = pump(lambda: len(topic_events()) >= 1 and queue_empty())
    assert results[-1] == "published"
    [event] = topic_events()
    assert event["id"] == status("team/topicdown", tag="v1")["outcomeEventId"]
    assert status("team/topicdown", tag="v1")["outcomeDelivery"] == "published" and len(records("acted")) == 1


def test_duplicate_check_chain_and_stale_generation_are_dropped(env, fleet, replicator, topic_events):
    image = push(fleet, "team/chain", "v1")
    deliver(acr_event("myreg", "team/chain", image.digest, tag="v1"))
    q = queue_client()
    [m] = list(q.receive_messages(max_messages=1, visibility_timeout=30))
    body = json.loads(m.content)
    # the host redelivers the same check after a crash: only one of the copies may continue the chain
    assert api.process(QueueMessage(id="a", body=m.content, dequeue_count=1)) == "recheck"
    assert api.process(QueueMessage(id="b", body=m.content, dequeue_count=2)) == "stale-check"
    q.delete_message(m)
    stale = json.dumps({**body, "generation": body["generation"] + 5, "check": 1}).encode()
    assert api.process(QueueMessage(id="c", body=stale, dequeue_count=1)) == "stale-generation"
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/chain", "v1")
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    assert len(topic_events()) == 1


def test_poison_check_messages_are_dead_lettered_and_audited(env):
    for body in (b"\xff not json", json.dumps({"registry": "myreg", "repository": "../x", "digest": "sha256:1",
                                               "generation": 0}).encode()):
        assert api.process(QueueMessage(id="p", body=body, dequeue_count=1)) == "dead-letter"
    poison = queue_client(shell.QUEUE + "-poison")
    dead = list(poison.receive_messages(max_messages=10))
    assert len(dead) == 2
    for m in dead:
        api.dead_letter(QueueMessage(id=m.id, body=m.content, dequeue_count=m.dequeue_count))
    reasons = [r["reason"] for r in records("dead-letter")]
    assert any("malformed message" in r for r in reasons)
    assert any("malformed replication check message" in r for r in reasons)


def test_status_validation_and_unknowns(env):
    for kw, code in ((dict(registry="myreg", repository="Bad Repo", tag="v1"), 400),
                     (dict(registry="myreg", repository="team/x", digest="sha256:1"), 400),
                     (dict(registry="myreg", repository="team/x"), 400),
                     (dict(registry="nope", repository="team/x", tag="v1"), 404),
                     (dict(registry="myreg", repository="team/none", tag="v1"), 404)):
        with pytest.raises(shell.StatusError) as err:
            shell.status(Settings(), **kw)
        assert err.value.status == code, kw


def test_bad_replication_settings_fail_loudly_with_the_setting_name(env, monkeypatch):
    from shared.config import ConfigError
    monkeypatch.setenv("HEALER_REPLICATION_REGISTRIES", json.dumps({"myreg": "eastus"}))
    with pytest.raises(ConfigError, match="replication settings are invalid"):
        shell.load_config(Settings())
    monkeypatch.setenv("HEALER_REPLICATION_REGISTRIES", "{not json")
    with pytest.raises(ConfigError, match="HEALER_REPLICATION_REGISTRIES"):
        shell.load_config(Settings())
    monkeypatch.setenv("HEALER_REPLICATION_REGISTRIES", json.dumps({"myreg": ["eastus"]}))
    monkeypatch.setenv("HEALER_REPLICATION_BACKOFF", json.dumps({"base": 1}))
    with pytest.raises(ConfigError, match="unknown keys"):
        shell.load_config(Settings())


def test_wait_is_stored_as_flat_entity_with_etag(env, fleet):
    image = push(fleet, "team/flat", "v1")
    deliver(acr_event("myreg", "team/flat", image.digest, tag="v1"))
    pk, rk = wait_keys("myreg", "team/flat", image.digest)
    rec = Store(Settings(), shell.TABLE).get(pk, rk)
    assert rec is not None and rec.etag and rec.columns["status"] == "pending"
    assert json.loads(rec.columns["tags"]) == ["v1"] and rk == f"team|flat@{image.digest}"


def patch_wait(repository: str, digest: str, **columns) -> None:
    """Rewrite stored columns of a wait (to move it in time, as if minutes had passed)."""
    store = Store(Settings(), shell.TABLE)
    rec = store.get(*wait_keys("myreg", repository, digest))
    rec.columns.update(columns)
    store.replace(rec)


def queued_checks() -> list[dict]:
    return [json.loads(m.content) for m in queue_client().peek_messages(max_messages=32)]


def test_a_lost_check_chain_is_restarted_by_the_next_delivery(env, fleet, replicator, topic_events):
    image = push(fleet, "team/stall", "v1")
    deliver(acr_event("myreg", "team/stall", image.digest, tag="v1"))
    queue_client().clear_messages()             # the check chain was lost (e.g. a crash between write and send)
    patch_wait("team/stall", image.digest, next_check_at=time.time() - shell.STALL_SECONDS - 60)
    assert deliver(acr_event("myreg", "team/stall", image.digest, tag="v1", location="westus")) == "duplicate"
    assert not queue_empty() and "stalled" in records("duplicate")[0]["reason"]
    # the restarted chain carries on to the real outcome
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/stall", "v1")
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    assert [e["eventType"] for e in topic_events()] == ["Healer.ImageReplicated"]


def test_a_lost_chain_past_its_deadline_restarted_by_the_next_delivery_times_out_once(env, fleet, replicator,
                                                                                    topic_events):
    image = push(fleet, "team/stall2", "v1")
    deliver(acr_event("myreg", "team/stall2", image.digest, tag="v1"))
    queue_client().clear_messages()
    past = time.time() - 600
    patch_wait("team/stall2", image.digest, deadline_at=past, next_check_at=past - 10)
    # the replicas caught up long after the deadline: too late to count
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/stall2", "v1")
    assert deliver(acr_event("myreg", "team/stall2", image.digest, tag="v1", location="westus")) == "duplicate"
    assert len(queued_checks()) == 1
    # a second delivery within the restart cooldown does not start a second chain
    assert deliver(acr_event("myreg", "team/stall2", image.digest, tag="v1", location="northeurope")) == "duplicate"
    assert len(queued_checks()) == 1
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    [event] = topic_events()
    assert event["eventType"] == "Healer.ImageReplicationTimedOut"
    assert event["data"]["missingRegions"] == list(REGIONS)
    assert status("team/stall2", tag="v1")["status"] == "timed-out"
    assert "check chain had stalled" in records("acted")[0]["reason"]


def test_status_reports_a_stalled_wait_past_its_deadline_and_restarts_it_once(env, fleet, replicator,
                                                                            topic_events):
    image = push(fleet, "team/stall3", "v1")
    deliver(acr_event("myreg", "team/stall3", image.digest, tag="v1"))
    q = queue_client()
    [m] = list(q.receive_messages(max_messages=1, visibility_timeout=30))
    assert api.process(QueueMessage(id=m.id, body=m.content, dequeue_count=1)) == "recheck"   # one check ran
    q.delete_message(m)
    q.clear_messages()                                  # then the chain was lost
    past = time.time() - 600
    patch_wait("team/stall3", image.digest, deadline_at=past)
    view = status("team/stall3", tag="v1")
    assert view["status"] == "stalled" and view["stalled"]["checkRestarted"] is True
    assert "deadline passed" in view["stalled"]["reason"] and view["stalled"]["lastCheckAt"]
    assert len(queued_checks()) == 1
    again = status("team/stall3", tag="v1")            # a pipeline polling again: reported, not restarted again
    assert again["status"] == "stalled" and again["stalled"]["checkRestarted"] is False
    assert len(queued_checks()) == 1
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    [event] = topic_events()
    assert event["eventType"] == "Healer.ImageReplicationTimedOut"
    assert status("team/stall3", tag="v1")["status"] == "timed-out"
    assert any("a status request restarted its check chain" in r["reason"] for r in records("pending"))


def test_a_dead_lettered_check_chain_is_reported_stalled_and_restarted(env, fleet, replicator, topic_events):
    from shared.work import dead_letter
    image = push(fleet, "team/dead", "v1")
    deliver(acr_event("myreg", "team/dead", image.digest, tag="v1"))
    q = queue_client()
    [m] = list(q.receive_messages(max_messages=1, visibility_timeout=30))
    dead_letter(Settings(), shell.QUEUE, {**json.loads(m.content), "attempt": 10},
                "gave up after 10 attempts: storage unavailable")
    q.delete_message(m)
    poison = queue_client(shell.QUEUE + "-poison")
    [p] = list(poison.receive_messages(max_messages=1))
    assert api.dead_letter(QueueMessage(id=p.id, body=p.content, dequeue_count=1)) == "dead-letter"
    poison.delete_message(p)
    assert queue_empty()
    view = status("team/dead", digest=image.digest)     # before its deadline, but nothing will ever check it
    assert view["status"] == "stalled" and "dead-lettered" in view["stalled"]["reason"]
    assert "gave up after 10 attempts" in view["stalled"]["reason"] and view["stalled"]["checkRestarted"]
    assert status("team/dead", digest=image.digest)["status"] == "pending"   # its chain runs again
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/dead", "v1")
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    assert [e["eventType"] for e in topic_events()] == ["Healer.ImageReplicated"]


# ---------------------------------------------------------------------------------------------- one outcome

class Crash(BaseException):
    """The worker process dies here (nothing catches it); the host redelivers the queue message."""


class CrashingPublisher:
    def __init__(self, after_publish: bool):
        self.real = shell.publisher_for(shell.load_config(Settings()))
        self.after_publish = after_publish

    def publish(self, events):
        if self.after_publish:
            self.real.publish(events)
        raise Crash()


def first_check() -> tuple[QueueMessage, Callable[[], None]]:
    q = queue_client()
    [m] = list(q.receive_messages(max_messages=1, visibility_timeout=60))
    return m, lambda: q.delete_message(m)


def redeliver(m) -> str:
    return api.process(QueueMessage(id=m.id, body=m.content, dequeue_count=2))


def test_crash_after_the_marker_is_saved_publishes_the_decided_outcome_not_a_new_one(env, fleet, replicator,
                                                                                   topic_events):
    """Decided timed-out at the deadline, crashed before publishing; by the retry every replica serves it. A retry
    that decided again would now say ready under the same event id: it must send the stored timeout."""
    image = push(fleet, "team/final", "v1")
    deliver(acr_event("myreg", "team/final", image.digest, tag="v1"))
    m, done = first_check()
    deadline = shell._load(Store(Settings(), shell.TABLE), "myreg", "team/final", image.digest)[0].deadline_at
    with pytest.raises(Crash):
        shell.handle_check(Settings(), json.loads(m.content), publisher=CrashingPublisher(after_publish=False),
                           now=lambda: deadline + 1)
    view = status("team/final", tag="v1")
    assert view["status"] == "timed-out" and view["outcomeDelivery"] == "publishing" and topic_events() == []
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/final", "v1")
    assert redeliver(m) == "published"
    done()
    [event] = topic_events()
    assert event["eventType"] == "Healer.ImageReplicationTimedOut" and event["id"] == view["outcomeEventId"]
    assert event["data"]["missingRegions"] == ["westus", "northeurope"]
    assert status("team/final", tag="v1")["outcomeDelivery"] == "published" and len(records("acted")) == 1
    assert redeliver(m) == "done" and len(topic_events()) == 1 and queue_empty()


def test_crash_after_publishing_before_the_final_save_resends_the_identical_event(env, fleet, replicator,
                                                                                 topic_events):
    image = push(fleet, "team/final2", "v1")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/final2", "v1")
    deliver(acr_event("myreg", "team/final2", image.digest, tag="v1"))
    m, done = first_check()
    with pytest.raises(Crash):
        shell.handle_check(Settings(), json.loads(m.content), publisher=CrashingPublisher(after_publish=True))
    assert status("team/final2", tag="v1")["outcomeDelivery"] == "publishing" and len(topic_events()) == 1
    assert redeliver(m) == "published"
    done()
    first, second = topic_events()
    assert first == second and first["eventType"] == "Healer.ImageReplicated"   # same id, same data: deduped
    view = status("team/final2", tag="v1")
    assert view["status"] == "ready" and view["outcomeDelivery"] == "published" and len(records("acted")) == 1


def test_a_delivery_merged_between_publish_and_final_save_neither_re_decides_nor_re_publishes(
        env, fleet, replicator, topic_events):
    image = push(fleet, "team/final3", "v1")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/final3", "v1")
    deliver(acr_event("myreg", "team/final3", image.digest, tag="v1"))
    m, done = first_check()
    real = shell.publisher_for(shell.load_config(Settings()))
    late = acr_event("myreg", "team/final3", image.digest, tag="v1", location="northeurope")

    class MergeDuringPublish:
        def publish(self, events):
            real.publish(events)
            assert deliver(late) == "duplicate"        # evidence merged: the wait's ETag changes

    assert shell.handle_check(Settings(), json.loads(m.content), publisher=MergeDuringPublish()) == "published"
    done()
    assert len(topic_events()) == 1 and queue_empty()
    rec, _ = shell._load(Store(Settings(), shell.TABLE), "myreg", "team/final3", image.digest)
    assert rec.outcome_delivery == "published" and late["id"] in rec.event_ids and len(records("acted")) == 1


def test_an_unpublished_outcome_is_sent_before_a_new_generation_replaces_it(env, fleet, replicator, topic_events):
    image = push(fleet, "team/final4", "v1")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/final4", "v1")
    deliver(acr_event("myreg", "team/final4", image.digest, tag="v1"))
    m, done = first_check()
    with pytest.raises(Crash):
        shell.handle_check(Settings(), json.loads(m.content), publisher=CrashingPublisher(after_publish=False))
    done()
    assert topic_events() == []
    assert deliver(acr_event("myreg", "team/final4", image.digest, action="delete")) == "recorded"
    [event] = topic_events()
    assert event["eventType"] == "Healer.ImageReplicated" and event["data"]["action"] == "push"
    assert status("team/final4", digest=image.digest)["action"] == "delete"
    queue_client().clear_messages()   # the delete's wait would otherwise time out into a later test


def test_event_grid_retry_after_a_failed_first_check_send_resends_it(env, fleet, replicator, topic_events,
                                                                     monkeypatch):
    """The wait was saved but its first check never reached the queue (queue outage, host killed), so the
    invocation failed and Event Grid retries the delivery (~10 s later). That retry is a duplicate of a merged
    event: it must send the missing check, or the wait stays pending forever with nothing to move it."""
    image = push(fleet, "team/resend", "v1")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/resend", "v1")
    event = acr_event("myreg", "team/resend", image.digest, tag="v1")
    sent = shell._send_check

    def queue_down(*args, **kwargs):
        raise RuntimeError("queue unavailable")
    monkeypatch.setattr(shell, "_send_check", queue_down)
    with pytest.raises(RuntimeError):
        deliver(event)
    monkeypatch.setattr(shell, "_send_check", sent)
    from azure.core.exceptions import ResourceExistsError
    try:
        queue_client().create_queue()   # it exists in Azure (infra); here the first send would have created it
    except ResourceExistsError:
        pass
    assert queue_empty() and status("team/resend", tag="v1")["status"] == "pending"
    parsed = api.parse_function_event(decode_eventgrid(event))
    assert shell.accept(Settings(), parsed) == "duplicate" and queue_empty()   # an immediate duplicate: no resend
    retry_at = time.time() + 10
    assert shell.accept(Settings(), parsed, now=lambda: retry_at) == "duplicate"
    assert not queue_empty() and "first check was (re)sent" in records("duplicate")[0]["reason"]
    results = pump(lambda: len(topic_events()) >= 1 and queue_empty())
    assert results[-1] == "published" and topic_events()[0]["eventType"] == "Healer.ImageReplicated"


# ---------------------------------------------------------------------------------------------- probe states

@pytest.fixture(scope="module")
def west_front(fleet, repl_workdir):
    from standins.registry_front import start_front
    server, url = start_front(fleet.url("westus"), repl_workdir, "front-shell-westus")
    yield url
    server.stop()


def test_throttled_replica_is_ready_not_timed_out_and_states_are_in_the_event(env, fleet, replicator, topic_events,
                                                                              west_front, monkeypatch):
    from standins.registry_front import set_rules, stats
    monkeypatch.setenv("HEALER_REPLICATION_ENDPOINTS", json.dumps({**fleet.endpoint_map(),
                                                                   "myreg.westus.geo.azurecr.io": west_front}))
    monkeypatch.setenv("HEALER_REPLICATION_DEADLINE_SECONDS", "2")
    image = push(fleet, "team/throttled", "v1")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/throttled", "v1")
    set_rules(west_front, {"status": 429, "retryAfter": "1", "seconds": 3})   # longer than the whole deadline
    try:
        deliver(acr_event("myreg", "team/throttled", image.digest, tag="v1"))
        pump(lambda: len(topic_events()) >= 1 and queue_empty())
    finally:
        set_rules(west_front)
    [event] = topic_events()
    data = event["data"]
    assert event["eventType"] == "Healer.ImageReplicated", data
    assert data["regions"]["westus"]["probeCounts"]["throttled"] >= 2
    assert data["regions"]["westus"]["throttledSeconds"] >= 2 and data["probeStates"]["ready"] == 3
    assert data["requests"] >= 3 * 4 and stats(west_front)["byStatus"]["429"] <= 5
    view = status("team/throttled", tag="v1")
    assert view["regions"]["westus"]["state"] == "ready" and view["probeStates"] == data["probeStates"]
    assert any("westus: throttled" in r["reason"] for r in records("pending"))


def test_regional_endpoints_disabled_fail_fast_with_a_named_failure(env, fleet, topic_events, monkeypatch):
    monkeypatch.setenv("HEALER_REPLICATION_ENDPOINTS", json.dumps(
        {f"myreg.{r}.geo.azurecr.io": f"http://myreg-{r}.invalid" for r in REGIONS}))
    monkeypatch.setenv("HEALER_REPLICATION_DEADLINE_SECONDS", "1800")
    monkeypatch.setenv("HEALER_REPLICATION_FAIL_FAST_SECONDS", "1")
    image = push(fleet, "team/noregional", "v1")
    started = time.monotonic()
    deliver(acr_event("myreg", "team/noregional", image.digest, tag="v1"))
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    assert time.monotonic() - started < 15
    [event] = topic_events()
    assert event["eventType"] == "Healer.ImageReplicationFailed"
    assert event["data"]["failure"].startswith("regional endpoints are not enabled for myreg")
    assert event["data"]["status"] == "failed" and event["data"]["probeStates"]["unresolvable"] >= 6
    assert status("team/noregional", tag="v1")["status"] == "failed"
