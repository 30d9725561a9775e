"""What function_app.py registers for the replication healer: binding JSON, and the registered callables driven
with the objects the Python worker builds (EventGridEvent, CloudEvent, QueueMessage, HttpRequest); plus the
Functions host stand-in's Event Grid webhook (handshake, notification, failure → 500)."""
from __future__ import annotations

import json

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

from drill.replication import acr_event
from standins.funchost import decode_eventgrid, eventgrid_webhook
from tests.functions import bindings, call

pytestmark = pytest.mark.integration
DIGEST = "sha256:" + "b" * 64


@pytest.fixture
def env(storage_env, monkeypatch):
    monkeypatch.setenv("HEALER_REPLICATION_REGISTRIES", json.dumps({"myreg": ["eastus", "westus"]}))
    return storage_env


def audit_records(functions, **params) -> list[dict]:
    req = func.HttpRequest(method="GET", url="http://localhost/api/audit", headers={},
                           params={"healer": "replication", **params}, body=b"")
    return json.loads(call(functions, "audit_list", req).get_body())["records"]


def queued(env, name="healer-replication") -> list[dict]:
    import base64

    from azure.storage.queue import QueueClient
    q = QueueClient.from_connection_string(env["AzureWebJobsStorage"], name)
    return [json.loads(base64.b64decode(m.content)) for m in q.peek_messages(max_messages=32)]


def test_binding_json_of_replication_functions(functions):
    [eg] = bindings(functions["replication_events"])
    assert eg == {"direction": "IN", "type": "eventGridTrigger", "name": "event"}   # infra subscribes this name
    worker = bindings(functions["replication_worker"])[0]
    dead = bindings(functions["replication_dead_letter"])[0]
    assert (worker["type"], worker["queueName"], worker["connection"]) == \
        ("queueTrigger", "healer-replication", "AzureWebJobsStorage")
    assert (dead["queueName"], dead["connection"]) == ("healer-replication-poison", "AzureWebJobsStorage")
    http = bindings(functions["replication_status"])[0]
    assert (http["type"], http["route"], http["methods"], http["authLevel"].upper()) == \
        ("httpTrigger", "replication/status", ["GET"], "FUNCTION")


def test_infra_subscribes_the_registered_trigger_name(functions):
    from pathlib import Path
    bicep = (Path(__file__).resolve().parents[2] / "infra" / "main.bicep").read_text()
    assert "param replicationFunctionName string = 'replication_events'" in bicep
    assert "replication_events" in functions


def test_eventgrid_and_cloudevent_objects_open_one_wait_and_enqueue_one_check(functions, env):
    event = acr_event("myreg", "team/fn", DIGEST, tag="v1")
    call(functions, "replication_events", decode_eventgrid(event))
    cloud = {"specversion": "1.0", "id": event["id"], "source": event["topic"], "type": event["eventType"],
             "time": event["eventTime"], "subject": event["subject"], "data": event["data"]}
    obj = decode_eventgrid(cloud)
    assert isinstance(obj, func.CloudEvent)
    call(functions, "replication_events", obj)   # the same event in CloudEvents: a duplicate, not a new wait
    [check] = queued(env)
    assert (check["registry"], check["repository"], check["digest"], check["generation"], check["check"]) == \
        ("myreg", "team/fn", DIGEST, 0, 0)
    outcomes = [r["outcome"] for r in audit_records(functions)]
    assert sorted(outcomes) == ["duplicate", "recorded"]

    req = func.HttpRequest(method="GET", url="http://localhost/api/replication/status", headers={},
                           params={"registry": "myreg", "repository": "team/fn", "tag": "v1"}, body=b"")
    resp = call(functions, "replication_status", req)
    body = json.loads(resp.get_body())
    assert resp.status_code == 200 and body["status"] == "pending" and body["digest"] == DIGEST
    assert set(body["regions"]) == {"eastus", "westus"} and body["missingRegions"] == ["eastus", "westus"]
    bad = func.HttpRequest(method="GET", url="http://localhost/api/replication/status", headers={},
                           params={"registry": "myreg", "repository": "team/fn"}, body=b"")
    assert call(functions, "replication_status", bad).status_code == 400


def test_malformed_event_is_refused_and_audited_not_raised(functions, env):
    event = acr_event("myreg", "team/fn", DIGEST, tag="v1")
    event["data"]["target"]["repository"] = "UPPER/../case"
    call(functions, "replication_events", decode_eventgrid(event))
    [rec] = audit_records(functions, outcome="refused")
    assert "malformed repository" in rec["reason"] and rec["subject"] == event["id"]
    assert queued(env) == []


def test_worker_and_dead_letter_callables(functions, env):
    call(functions, "replication_worker", QueueMessage(id="m", body=b"[1,2]", dequeue_count=1))
    [dead] = queued(env, "healer-replication-poison")
    assert "malformed message" in dead["deadLetterReason"]
    call(functions, "replication_dead_letter", QueueMessage(id="d", body=json.dumps(dead).encode(), dequeue_count=1))
    [rec] = audit_records(functions, outcome="dead-letter")
    assert "malformed message" in rec["reason"]


def test_host_eventgrid_webhook_handshakes_and_notifications(env):
    seen = []
    fns = {"replication_events": seen.append, "boom": lambda e: (_ for _ in ()).throw(RuntimeError("x"))}
    validation = [{"id": "1", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "subject": "",
                   "eventTime": "2024-01-01T00:00:00Z", "dataVersion": "1", "data": {"validationCode": "abc"}}]
    h = {"aeg-event-type": "SubscriptionValidation"}
    status, body, _ = eventgrid_webhook(fns, "POST", {"functionName": "replication_events"}, h,
                                        json.dumps(validation).encode())
    assert (status, json.loads(body)) == (200, {"validationResponse": "abc"}) and seen == []
    events = [acr_event("myreg", "a/b", DIGEST, tag="v1"), acr_event("myreg", "a/b", DIGEST, tag="v2")]
    status, _, _ = eventgrid_webhook(fns, "POST", {"functionName": "replication_events"},
                                     {"aeg-event-type": "Notification"}, json.dumps(events).encode())
    assert status == 202 and [e.id for e in seen] == [e["id"] for e in events]
    assert isinstance(seen[0], func.EventGridEvent) and seen[0].get_json()["target"]["tag"] == "v1"
    assert eventgrid_webhook(fns, "POST", {"functionName": "boom"}, {"aeg-event-type": "Notification"},
                             json.dumps(events).encode())[0] == 500
    assert eventgrid_webhook(fns, "POST", {"functionName": "replication_events"}, {"aeg-event-type": "What"},
                             b"[]")[0] == 400
    assert eventgrid_webhook(fns, "POST", {"functionName": "nope"}, {}, b"[]")[0] == 404
    status, _, headers = eventgrid_webhook(fns, "OPTIONS", {"functionName": "replication_events"},
                                           {"WebHook-Request-Origin": "eventgrid.azure.net"}, b"")
    assert status == 200 and headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
