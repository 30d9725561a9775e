"""Every reproduced class of hostile input, through the registered functions with real azure.functions objects:
a 4xx naming the limit (HTTP), a dead-letter record naming it (queues), an audited refusal (Event Grid); never a 500
or an uncaught exception. Plus the catch-all wrapper and storage fail-fast on intake."""
from __future__ import annotations

import base64
import copy
import json
import socket
import time

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage

from tests.conftest import alert_payload
from tests.functions import call, http

pytestmark = pytest.mark.integration

DEEP = b'{"schemaId": "azureMonitorCommonAlertSchema", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}"
BIG_INT = b'{"schemaId": "azureMonitorCommonAlertSchema", "n": ' + b"7" * 5000 + b"}"
HTTP_POSTS = [("rollback_alert", "alerts/rollback"), ("downshift_alert", "alerts/downshift"),
              ("downshift_budget", "alerts/budget"), ("rollback_rearm", "rollback/rearm"),
              ("downshift_release", "downshift/release"), ("errors_run", "errors/run"),
              ("controls_set", "controls"), ("approvals_decide", "approvals/rollback/x")]


def queued(env, name: str) -> list[dict]:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueClient
    q = QueueClient.from_connection_string(env["AzureWebJobsStorage"], name)
    try:
        return [json.loads(base64.b64decode(m.content)) for m in q.peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []


def error_of(resp: func.HttpResponse) -> str:
    return json.loads(resp.get_body())["error"]


@pytest.mark.parametrize("name,route", HTTP_POSTS)
@pytest.mark.parametrize("raw,fragment", [
    (DEEP, "nested deeper than 32 levels"), (BIG_INT, "number literal is longer than 64"),
    (b'{"hours": 1e309, "by": "x"}', "out of range"), (b'{"by": "\\ud800"}', "lone UTF-16 surrogate")])
def test_hostile_bodies_are_a_400_naming_the_limit(functions, storage_env, name, route, raw, fragment):
    route_params = {"healer": "rollback", "id": "x"} if name == "approvals_decide" else None
    resp = call(functions, name, http("POST", route, raw, route_params=route_params))
    assert resp.status_code == 400 and fragment in error_of(resp)


def test_surrogates_in_ids_that_are_hashed_are_refused_not_crashed(functions, storage_env):
    legacy = alert_payload("legacy_metric_activated.json")
    legacy["data"]["context"]["id"] = "/subscriptions/x/metricAlerts/\ud800"
    budget = {"schemaId": "AIP Budget Notification", "data": {"BudgetName": "b", "SubscriptionId": "\udbff",
                                                              "Budget": "10", "SpendingAmount": "9"}}
    for name, route, body in (("rollback_alert", "alerts/rollback", legacy), ("downshift_alert", "alerts/downshift",
                                                                              legacy),
                              ("downshift_budget", "alerts/budget", budget)):
        raw = json.dumps(body).encode()          # json.dumps escapes the lone surrogate as \udxxx
        resp = call(functions, name, http("POST", route, raw))
        assert resp.status_code == 400 and "surrogate" in error_of(resp)


@pytest.mark.parametrize("body,fragment", [
    ({"hours": 1e308, "by": "x"}, "hours"), ({"hours": True, "by": "x"}, "hours"), ({"hours": "9" * 40, "by": "x"},
                                                                                      "hours"),
    ({"start": "0001-01-01T00:00:00+14:00", "end": "0001-01-02T00:00:00+14:00", "by": "x"}, "2000 and 2999"),
    ({"start": "9999-12-31T23:00:00-14:00", "end": "9999-12-31T23:59:00-14:00", "by": "x"}, "2000 and 2999"),
    ({"start": ["x"], "end": 5, "by": "x"}, "ISO 8601"),
])
def test_errors_run_windows_that_overflowed_are_a_400(functions, storage_env, body, fragment):
    resp = call(functions, "errors_run", http("POST", "errors/run", body))
    assert resp.status_code == 400 and fragment in error_of(resp)
    assert queued(storage_env, "healer-errors") == []


def test_an_unexpected_exception_is_an_audited_500_with_a_correlation_id(functions, storage_env, monkeypatch, caplog):
    from healers.rollback import api as rollback_api

    def explode(*args, **kwargs):
        raise KeyError("internal detail that must not reach the caller")
    monkeypatch.setattr(rollback_api, "parse_alert", explode)
    resp = call(functions, "rollback_alert", http("POST", "alerts/rollback", alert_payload("metric_fired.json")))
    assert resp.status_code == 500
    body = json.loads(resp.get_body())
    assert "internal detail" not in resp.get_body().decode() and "Traceback" not in resp.get_body().decode()
    assert len(body["correlationId"]) == 32 and resp.headers["x-correlation-id"] == body["correlationId"]
    assert any(body["correlationId"] in r.getMessage() and r.exc_info for r in caplog.records)
    listing = json.loads(call(functions, "audit_list", http("GET", "audit", params={"healer": "api"})).get_body())
    [record] = listing["records"]
    assert record["outcome"] == "failed" and record["subject"] == body["correlationId"]
    assert "KeyError" in record["reason"] and "/api/alerts/rollback" in record["reason"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name,route,body", [
    ("rollback_alert", "alerts/rollback", alert_payload("metric_fired.json")),
    ("downshift_alert", "alerts/downshift", alert_payload("metric_fired.json")),
    ("errors_run", "errors/run", {"hours": 24, "by": "oncall"}),
])
def test_intake_answers_503_within_5_s_when_storage_is_down(functions, storage_env, monkeypatch, name, route, body):
    port = _closed_port()
    dead = ";".join(part if not part.endswith("Endpoint") and "Endpoint=" not in part
                    else part.split("=", 1)[0] + f"=http://127.0.0.1:{port}/devstoreaccount1"
                    for part in storage_env["AzureWebJobsStorage"].split(";"))
    monkeypatch.setenv("AzureWebJobsStorage", dead)
    monkeypatch.setenv("HEALER_DOWNSHIFT_APPS", "[]")
    started = time.monotonic()
    resp = call(functions, name, http("POST", route, body))
    elapsed = time.monotonic() - started
    assert resp.status_code == 503 and "retry" in error_of(resp)
    assert elapsed < 5.0


@pytest.mark.parametrize("worker,queue_name", [
    ("rollback_worker", "healer-rollback"), ("downshift_worker", "healer-downshift"),
    ("replication_worker", "healer-replication"), ("errors_worker", "healer-errors")])
@pytest.mark.parametrize("raw,fragment", [
    (b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}", "nested deeper"), (b'{"n": ' + b"1" * 5000 + b"}", "number"),
    (b'{"kind": "alert", "id": "\\udfff"}', "surrogate"), (b'{"x": NaN}', "NaN")])
def test_hostile_queue_messages_are_dead_lettered_naming_the_limit(functions, storage_env, worker, queue_name, raw,
                                                                   fragment):
    call(functions, worker, QueueMessage(id="m", body=raw, dequeue_count=1))
    [dead] = queued(storage_env, f"{queue_name}-poison")
    assert "malformed message" in dead["deadLetterReason"] and fragment in dead["deadLetterReason"]


@pytest.mark.parametrize("dead_letter", ["rollback_dead_letter", "downshift_dead_letter", "replication_dead_letter",
                                         "errors_dead_letter"])
def test_hostile_poison_messages_are_still_audited(functions, storage_env, dead_letter):
    raw = b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b', "id": "\\ud800"}'
    call(functions, dead_letter, QueueMessage(id="p", body=raw, dequeue_count=5))
    listing = json.loads(call(functions, "audit_list", http("GET", "audit", params={"outcome": "dead-letter"}))
                         .get_body())
    [record] = listing["records"]
    assert record["details"]["message"]["raw"].startswith('{"a": [[[')


def test_event_grid_data_breaking_a_limit_is_refused_and_audited(functions, storage_env, monkeypatch):
    from standins.funchost import decode_eventgrid
    monkeypatch.setenv("HEALER_REPLICATION_REGISTRIES", json.dumps({"myreg": ["eastus"]}))
    deep: dict = {}
    cur = deep
    for _ in range(200):
        cur["a"] = {}
        cur = cur["a"]
    for data in (deep, {"target": {"digest": "\ud800"}}, {"size": 10 ** 300}):
        event = decode_eventgrid({"id": "e1", "eventType": "Microsoft.ContainerRegistry.ImagePushed",
                                  "subject": "repo:tag", "eventTime": "2026-11-20T10:00:00Z", "dataVersion": "1.0",
                                  "topic": "/subscriptions/x/resourceGroups/r/providers/"
                                           "Microsoft.ContainerRegistry/registries/myreg",
                                  "data": copy.deepcopy(data)})
        call(functions, "replication_events", event)
    listing = json.loads(call(functions, "audit_list", http("GET", "audit", params={"healer": "replication"}))
                         .get_body())
    reasons = [r["reason"] for r in listing["records"]]
    assert any("nested deeper" in r for r in reasons) and any("surrogate" in r for r in reasons)
    assert any("longer than" in r for r in reasons)
