"""The downshift healer's registered functions, called through function_app's callables with real azure.functions
objects: binding JSON, both budget-alert schemas and split-by-tenant 429 alerts through the webhooks → queue →
worker, the timer, release, dead letters."""
from __future__ import annotations

import base64
import copy
import datetime as dt
import json

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from tests.conftest import alert_payload
from tests.downshift.test_budget import COMMON_ACTUAL, LEGACY
from tests.downshift.test_shell_env import (AI_APP, OPS_APP, cost_rows, downshift_env,  # noqa: F401
                                            downshift_servers, kv, records)
from tests.functions import call, trigger

pytestmark = pytest.mark.integration


def post(route: str, body) -> func.HttpRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    from tests.conftest import OPERATOR
    return func.HttpRequest(method="POST", url=f"http://localhost/api/{route}", headers=dict(OPERATOR), params={},
                            route_params={}, body=raw)


def queued(env, name="healer-downshift") -> list[dict]:
    from azure.storage.queue import QueueClient
    q = QueueClient.from_connection_string(env["AzureWebJobsStorage"], name)
    return [json.loads(base64.b64decode(m.content)) for m in q.peek_messages(max_messages=32)]


def work(functions, env) -> list[dict]:
    """Run every queued message through the registered worker, as the host would; returns the messages."""
    from azure.storage.queue import QueueClient
    q = QueueClient.from_connection_string(env["AzureWebJobsStorage"], "healer-downshift")
    seen = []
    for m in q.receive_messages(max_messages=32):
        body = base64.b64decode(m.content)
        call(functions, "downshift_worker", QueueMessage(id=m.id, body=body, dequeue_count=1))
        q.delete_message(m)
        seen.append(json.loads(body))
    return seen


def test_binding_json(functions):
    expected = {"downshift_alert": "alerts/downshift", "downshift_budget": "alerts/budget",
                "downshift_release": "downshift/release"}
    for name, route in expected.items():
        t = trigger(functions[name])
        assert t["type"] == "httpTrigger" and t["route"] == route and t["methods"] == ["POST"]
        assert t["authLevel"].upper() == "FUNCTION"
    timer = trigger(functions["downshift_tick"])
    assert timer["type"] == "timerTrigger" and timer["schedule"] == "%HEALER_DOWNSHIFT_SCHEDULE%"
    assert timer["runOnStartup"] is False and timer["useMonitor"] is True
    for name, queue_name in (("downshift_worker", "healer-downshift"),
                             ("downshift_dead_letter", "healer-downshift-poison")):
        t = trigger(functions[name])
        assert t["type"] == "queueTrigger" and t["queueName"] == queue_name and t["connection"] == "AzureWebJobsStorage"
    from shared.config import Settings
    assert Settings({}).get("HEALER_DOWNSHIFT_SCHEDULE") == "0 */10 * * * *"


@pytest.mark.parametrize("shape", ["legacy", "common"])
def test_both_budget_schemas_through_the_webhook_downshift_the_app(functions, downshift_env, shape):
    body = copy.deepcopy(LEGACY if shape == "legacy" else COMMON_ACTUAL)
    if shape == "legacy":
        body["data"].update(SpendingAmount="8100.00", Budget="10000")
    else:  # "$11,111.00" of "$50.00": amounts as display strings, monitorCondition null; fired now
        body["data"]["essentials"]["firedDateTime"] = dt.datetime.now(dt.timezone.utc).isoformat()
    resp = call(functions, "downshift_budget", post("alerts/budget", body))
    assert resp.status_code == 202, resp.get_body()
    answer = json.loads(resp.get_body())
    assert answer["schema"] == shape and answer["alertId"]
    [msg] = queued(downshift_env["env"])
    assert msg["kind"] == "budget"
    work(functions, downshift_env["env"])
    settings = downshift_env["arm"].app("ai-prod", "ops-bot")["slots"]["production"]["app_settings"]
    assert settings["AI_MODEL"] == "gpt-4o-mini"
    now = lambda: dt.datetime.now(dt.timezone.utc)  # noqa: E731
    [acted] = records(now, outcome="acted")
    assert acted["resource"] == OPS_APP and acted["subject"] == "*"
    # The action group retries: the same notification again is a duplicate, nothing written.
    assert call(functions, "downshift_budget", post("alerts/budget", body)).status_code == 202
    work(functions, downshift_env["env"])
    assert [r["outcome"] for r in records(now)][0] == "duplicate"


@pytest.mark.parametrize("body,status,fragment", [
    (b"{not json", 400, "not valid JSON"),
    ({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {"monitoringService": "Platform"}}},
     400, "not a Cost Management budget alert"),
    ({"schemaId": "AIP Budget Notification", "data": {"Budget": "10"}}, 400, "BudgetName"),
])
def test_budget_webhook_rejects_what_it_cannot_read(functions, downshift_env, body, status, fragment):
    resp = call(functions, "downshift_budget", post("alerts/budget", body))
    assert resp.status_code == status and fragment in json.loads(resp.get_body())["error"]
    assert queued(downshift_env["env"]) == []


def test_429_alert_split_by_tenant_through_the_webhook(functions, downshift_env):
    body = alert_payload("log_search_fired.json")
    body["data"]["essentials"]["firedDateTime"] = dt.datetime.now(dt.timezone.utc).isoformat()
    body["data"]["customProperties"] = {"healer.target": AI_APP}
    body["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"] = [{"name": "tenant", "value": "acme"}]
    resp = call(functions, "downshift_alert", post("alerts/downshift", body))
    assert resp.status_code == 202 and json.loads(resp.get_body())["dimensions"] == {"tenant": "acme"}
    work(functions, downshift_env["env"])
    assert kv(downshift_env["ac"], "acme")["value"] == "gpt-4o-mini" and kv(downshift_env["ac"], None)["value"] == "gpt-4o"
    bad = call(functions, "downshift_alert", post("alerts/downshift", {"schemaId": "Microsoft.Insights/activityLogs"}))
    assert bad.status_code == 400 and "unsupported schemaId" in json.loads(bad.get_body())["error"]
    # An operator pins acme by hand, then releases it through the endpoint.
    downshift_env["ac"].human_edit("ai:model", "acme", value="gpt-4o", tags={})
    call(functions, "downshift_tick", TimerRequest(past_due=False))
    work(functions, downshift_env["env"])
    released = call(functions, "downshift_release", post("downshift/release", {
        "resourceId": AI_APP, "tenant": "acme", "by": "oncall", "reason": "pinned on purpose"}))
    assert released.status_code == 200 and json.loads(released.get_body())["outcome"] == "none"
    unknown = call(functions, "downshift_release", post("downshift/release", {
        "resourceId": OPS_APP.replace("ops-bot", "nope"), "by": "oncall"}))
    assert unknown.status_code == 404


def test_timer_queries_spend_once_and_enqueues_the_tenant_over_budget(functions, downshift_env):
    la = downshift_env["la"]
    now = dt.datetime.now(dt.timezone.utc)
    la.seed("AppMetrics", cost_rows("globex", 99.0, now))
    call(functions, "downshift_tick", TimerRequest(past_due=False))
    assert la.stats()["round_trips"] == 1
    assert [(m["kind"], m["tenant"]) for m in queued(downshift_env["env"])] == [("tick", "globex")]


def test_malformed_and_poison_messages_are_audited(functions, downshift_env):
    call(functions, "downshift_worker", QueueMessage(id="m1", body=b"\xff nope", dequeue_count=1))
    [dead] = queued(downshift_env["env"], "healer-downshift-poison")
    assert "malformed message" in dead["deadLetterReason"]
    call(functions, "downshift_dead_letter", QueueMessage(id="m2", body=json.dumps(dead).encode(), dequeue_count=1))
    now = lambda: dt.datetime.now(dt.timezone.utc)  # noqa: E731
    assert records(now, outcome="dead-letter")
