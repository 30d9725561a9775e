"""What function_app.py registers, exercised through the registered callables with real azure.functions objects."""
from __future__ import annotations

import base64
import json
import subprocess
import sys

from azure.functions.queue import QueueMessage
import pytest

from tests.conftest import alert_payload
from tests.functions import call, http, trigger

pytestmark = pytest.mark.integration


def test_importing_function_app_pulls_no_heavy_sdk():
    code = ("import sys, function_app; heavy=[m for m in sys.modules if m.startswith(('azure.mgmt', 'openai', "
            "'githubkit', 'github'))]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_binding_json(functions):
    expected_http = {
        "rollback_alert": ("alerts/rollback", ["POST"]),
        "rollback_rearm": ("rollback/rearm", ["POST"]),
        "audit_list": ("audit", ["GET"]),
        "approvals_list": ("approvals/{healer}", ["GET"]),
        "approvals_decide": ("approvals/{healer}/{id}", ["POST"]),
        "controls_get": ("controls", ["GET"]),
        "controls_set": ("controls", ["POST"]),
    }
    for name, (route, methods) in expected_http.items():
        t = trigger(functions[name])
        assert t["type"] == "httpTrigger" and t["route"] == route and t["authLevel"].upper() == "FUNCTION"
        assert [m.upper() for m in t["methods"]] == methods
    queues = {name: trigger(f)["queueName"] for name, f in functions.items() if trigger(f)["type"] == "queueTrigger"}
    assert queues["rollback_worker"] == "healer-rollback"
    assert queues["rollback_dead_letter"] == "healer-rollback-poison"
    assert all(trigger(f).get("connection") == "AzureWebJobsStorage" for f in functions.values()
               if trigger(f)["type"] == "queueTrigger")


def test_errors_binding_json(functions):
    """Issue 5: the daily timer reads its NCRONTAB from an app setting; run requests go through a queue."""
    timer = trigger(functions["errors_daily"])
    assert timer["type"] == "timerTrigger" and timer["schedule"] == "%HEALER_ERRORS_SCHEDULE%"
    assert timer["runOnStartup"] is False and timer["useMonitor"] is True
    run = trigger(functions["errors_run"])
    assert run["type"] == "httpTrigger" and run["route"] == "errors/run" and run["methods"] == ["POST"]
    assert run["authLevel"].upper() == "FUNCTION"
    for name, queue_name in (("errors_worker", "healer-errors"), ("errors_dead_letter", "healer-errors-poison")):
        t = trigger(functions[name])
        assert t["type"] == "queueTrigger" and t["queueName"] == queue_name
        assert t["connection"] == "AzureWebJobsStorage"


def queued(storage_env, name="healer-rollback") -> list[dict]:
    from azure.storage.queue import QueueClient
    q = QueueClient.from_connection_string(storage_env["AzureWebJobsStorage"], name)
    return [json.loads(base64.b64decode(m.content)) for m in q.peek_messages(max_messages=32)]


def test_alert_webhook_validates_and_enqueues_with_202(functions, storage_env):
    resp = call(functions, "rollback_alert", http("POST", "alerts/rollback", alert_payload("metric_fired.json")))
    assert resp.status_code == 202
    body = json.loads(resp.get_body())
    assert body["alertId"] == "12345678-1234-1234-1234-1234567890ab" and body["condition"] == "Fired"
    [msg] = queued(storage_env)
    assert msg["kind"] == "alert" and msg["alert"]["alert_id"] == body["alertId"]


@pytest.mark.parametrize("body,status,fragment", [
    (b"not json", 400, "not valid JSON"),
    (b"", 400, "empty body"),
    ({"schemaId": "Microsoft.Insights/activityLogs"}, 400, "unsupported schemaId"),
    (b"{" + b" " * 300_000 + b"}", 413, "larger than"),
])
def test_alert_webhook_rejects_bad_input_with_a_reason(functions, storage_env, body, status, fragment):
    resp = call(functions, "rollback_alert", http("POST", "alerts/rollback", body))
    assert resp.status_code == status
    assert fragment in json.loads(resp.get_body())["error"]
    assert queued(storage_env) == []


def test_entra_mode_refuses_a_webhook_without_a_token(functions, storage_env, monkeypatch):
    monkeypatch.setenv("HEALER_AUTH_MODE", "entra")
    monkeypatch.setenv("HEALER_ENTRA_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
    monkeypatch.setenv("HEALER_ENTRA_AUDIENCE", "api://healer")
    resp = call(functions, "rollback_alert", http("POST", "alerts/rollback", alert_payload("metric_fired.json")))
    assert resp.status_code == 401 and queued(storage_env) == []


def test_controls_roundtrip_and_audit_listing(functions, storage_env):
    resp = call(functions, "controls_set", http("POST", "controls", {"kill": True, "by": "oncall", "reason": "drill"}))
    assert resp.status_code == 200
    state = json.loads(call(functions, "controls_get", http("GET", "controls")).get_body())
    assert state["killed"] is True and "global control" in state["reason"]
    missing_by = call(functions, "controls_set", http("POST", "controls", {"kill": False}))
    assert missing_by.status_code == 400
    listing = json.loads(call(functions, "audit_list", http("GET", "audit", params={"healer": "controls"})).get_body())
    assert listing["count"] == 1 and "kill=True" in listing["records"][0]["reason"]


def test_poison_message_becomes_an_audited_dead_letter(functions, storage_env):
    msg = QueueMessage(id="m1", body=b"{\"alert\": {\"alert_id\": \"x\"}}", dequeue_count=5)
    call(functions, "rollback_dead_letter", msg)
    listing = json.loads(call(functions, "audit_list", http("GET", "audit", params={"outcome": "dead-letter"}))
                         .get_body())
    assert listing["count"] == 1 and listing["records"][0]["subject"] == "x"


def test_malformed_work_message_is_dead_lettered_not_retried(functions, storage_env):
    call(functions, "rollback_worker", QueueMessage(id="m2", body=b"\xff\xfe garbage", dequeue_count=1))
    [dead] = queued(storage_env, "healer-rollback-poison")
    assert "malformed message" in dead["deadLetterReason"]


def test_housekeeping_timer_binding(functions):
    t = trigger(functions["housekeeping"])
    assert t["type"] == "timerTrigger" and t["schedule"] == "%HEALER_HOUSEKEEPING_SCHEDULE%"


def test_every_binding_expression_is_a_declared_setting_present_in_the_sample(functions):
    """A %SETTING% in a binding that is not set stops the host from indexing the function (under func start too)."""
    import re
    from pathlib import Path
    from shared.config import SETTINGS
    declared = {s.name for s in SETTINGS}
    sample = json.loads((Path(__file__).resolve().parent.parent / "local.settings.sample.json").read_text())["Values"]
    expressions = {m for f in functions.values() for m in re.findall(r"%([A-Za-z0-9_]+)%", f.get_function_json())}
    assert expressions, "the timers read their schedules from settings"
    assert expressions <= declared
    assert expressions <= set(sample), f"missing from local.settings.sample.json: {expressions - set(sample)}"


def test_approval_whose_work_cannot_be_queued_is_503_and_stays_approvable(functions, storage_env):
    """Approved but never queued would be a lost action (and a 409 on the approver's retry)."""
    import datetime as dt
    from shared import approvals
    from shared.config import Settings
    now = dt.datetime.now(dt.timezone.utc)
    pending, _ = approvals.park(Settings(), healer="rollback", subject="s-1", action="rollback.swap", resource="r",
                                reason="ask", message={"v": 1}, queue_name="bad_queue_name!", now=now)
    route = {"healer": "rollback", "id": pending["id"]}
    resp = call(functions, "approvals_decide", http("POST", "approvals/rollback/x",
                                                    {"decision": "approve", "by": "oncall"}, route_params=route))
    assert resp.status_code == 503
    assert approvals.get(Settings(), "rollback", pending["id"]).data["status"] == "pending"


def test_every_name_function_app_uses_is_defined():
    """function_app imports healers lazily (cold start): a name left over from an eager import would only fail
    when that function is first called."""
    import ast
    import builtins
    from pathlib import Path
    tree = ast.parse((Path(__file__).resolve().parent.parent / "function_app.py").read_text())
    defined = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    defined |= {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    defined |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    defined |= {a.arg for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) for a in n.args.args}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert used - defined - set(dir(builtins)) == set()
