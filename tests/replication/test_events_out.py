"""Outcome events through the real EventGridPublisherClient to the stand-in topic over HTTPS (test CA)."""
from __future__ import annotations

import datetime as dt
import ssl

import httpx
import pytest

from healers.replication.core import RegionObservation, ReplicationPolicy, decide, intake
from healers.replication.events import AcrImageEvent
from healers.replication.events_out import (
    IMAGE_REPLICATED, IMAGE_REPLICATION_TIMED_OUT, TAG_RACE_DETECTED, OutcomePublisher, build_outcome_event,
    publish_outcome, publish_stored, stored_outcome_event,
)
from standins.harness import free_port, start_python_server

pytestmark = pytest.mark.integration
KEY = "topic-key-for-tests-only"
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
T0 = 1_700_000_000.0
POLICY = ReplicationPolicy(required_regions={"myreg": ("eastus", "westus")}, deadline_seconds=60)


@pytest.fixture(scope="module")
def topic(repl_workdir, test_ca):
    port = free_port()
    server = start_python_server("eventgrid-topic", "standins.eventgrid_topic", [
        "--port", str(port), "--cert", str(test_ca.cert_path), "--key", str(test_ca.key_path), "--topic-key", KEY],
        port, repl_workdir)
    yield f"https://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def control(topic, test_ca):
    client = httpx.Client(base_url=topic, verify=ssl.create_default_context(cafile=str(test_ca.ca_path)))
    client.delete("/_standin/events")
    yield client
    client.close()


@pytest.fixture()
def trust_ca(monkeypatch, test_ca):
    for name, value in test_ca.env.items():
        monkeypatch.setenv(name, value)


def finished(kind: str):
    ev = AcrImageEvent(event_id="e1", event_type="x", action="push", schema_name="eventgrid", registry="myreg",
                       login_server=None, repository="team/app", tag="v1", digest=D1, media_type=None, location=None,
                       request_id=None, event_time=dt.datetime.fromtimestamp(T0, dt.timezone.utc))
    rec = intake(None, ev, POLICY, T0).record
    if kind == "ready":
        obs = [RegionObservation(region=r, manifest="present", tags={"v1": D1}, observed_at=T0 + 3) for r in ("eastus", "westus")]
        return decide(rec, obs, POLICY, T0 + 4)
    if kind == "race":
        obs = [RegionObservation(region="westus", manifest="present", tags={"v1": D2}, observed_at=T0 + 3)]
        return decide(rec, obs, POLICY, T0 + 4, {"v1": {D1: T0, D2: T0 + 2}})   # v1 re-pushed after ours
    obs = [RegionObservation(region="eastus", manifest="present", tags={"v1": D1}, observed_at=T0 + 3)]
    return decide(rec, obs, POLICY, T0 + 61)


def test_outcome_events_published_with_key_over_https(topic, control, trust_ca):
    from azure.core.credentials import AzureKeyCredential
    publisher = OutcomePublisher(f"{topic}/api/events", AzureKeyCredential(KEY))
    try:
        ids = {kind: publish_outcome(publisher, finished(kind)) for kind in ("ready", "race", "timeout")}
        # a retry after a crash re-sends the same id: subscribers see one outcome per wait
        assert publish_outcome(publisher, finished("ready")) == ids["ready"]
    finally:
        publisher.close()
    body = control.get("/_standin/events").json()
    events = body["events"]
    assert [e["eventType"] for e in events] == [IMAGE_REPLICATED, TAG_RACE_DETECTED, IMAGE_REPLICATION_TIMED_OUT,
                                                IMAGE_REPLICATED]
    assert all(r["apiVersion"] == "2018-01-01" and r["schema"] == "eventgrid" for r in body["requests"])
    assert events[0]["id"] == events[3]["id"] == ids["ready"]
    ready = events[0]
    assert ready["subject"] == f"registries/myreg/repositories/team/app/manifests/{D1}"
    assert ready["data"]["regions"]["westus"]["lagSeconds"] == 3.0 and ready["data"]["totalLagSeconds"] == 3.0
    assert events[1]["data"]["tagConflicts"] == [{"region": "westus", "tag": "v1", "resolvedDigest": D2}]
    assert events[2]["data"]["missingRegions"] == ["westus"]


def test_stored_outcome_event_is_sent_byte_for_byte_as_decided(topic, control, trust_ca):
    """The event saved with the wait before publishing survives Table storage (JSON) and is what goes out."""
    import json

    from azure.core.credentials import AzureKeyCredential
    record = finished("timeout").record
    stored = json.loads(json.dumps(stored_outcome_event(record)))
    publisher = OutcomePublisher(f"{topic}/api/events", AzureKeyCredential(KEY))
    try:
        assert publish_stored(publisher, stored) == record.outcome_event_id
        publisher.publish([build_outcome_event(record)])
    finally:
        publisher.close()
    first, second = control.get("/_standin/events").json()["events"]
    assert first == second and first["eventType"] == IMAGE_REPLICATION_TIMED_OUT
    assert first["data"] == stored["data"] and first["eventTime"].startswith(stored["eventTime"][:19])


def test_wrong_key_is_rejected(topic, control, trust_ca):
    from azure.core.credentials import AzureKeyCredential
    from azure.core.exceptions import ClientAuthenticationError
    publisher = OutcomePublisher(f"{topic}/api/events", AzureKeyCredential("wrong"))
    with pytest.raises(ClientAuthenticationError):
        publisher.publish([build_outcome_event(finished("ready").record)])
    assert control.get("/_standin/events").json()["events"] == []


def test_topic_validates_schema(topic, control):
    good = {"id": "1", "subject": "s", "eventType": "t", "eventTime": "2024-01-01T00:00:00Z", "data": {}, "dataVersion": "1"}
    post = lambda body, **h: control.post("/api/events?api-version=2018-01-01", json=body, headers={"aeg-sas-key": KEY, **h})
    assert post([good]).status_code == 200
    for bad in ([dict(good, eventTime="nope")], [{k: v for k, v in good.items() if k != "subject"}], {"not": "a list"}, []):
        r = post(bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "BadRequest"
    assert control.post("/api/events", json=[good], headers={"aeg-sas-key": KEY}).status_code == 400   # no api-version
    assert len(control.get("/_standin/events").json()["events"]) == 1


def test_unfinished_wait_has_no_outcome():
    d = decide(intake(None, AcrImageEvent(
        event_id="e", event_type="x", action="push", schema_name="eventgrid", registry="myreg", login_server=None,
        repository="r", tag=None, digest=D1, media_type=None, location=None, request_id=None,
        event_time=dt.datetime.fromtimestamp(T0, dt.timezone.utc)), POLICY, T0).record, [], POLICY, T0 + 1)
    assert d.action == "recheck"
    with pytest.raises(ValueError, match="pending"):
        build_outcome_event(d.record)
