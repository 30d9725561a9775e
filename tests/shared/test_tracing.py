"""One operation id links webhook → queue → decision → ARM calls, in what Application Insights receives."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from shared import tracing
from shared.config import Settings
from shared.work import run_queue_message
from standins.harness import free_port, start_python_server
from standins.stack import seed_bad_release

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def test_messages_carry_the_context_they_were_queued_in():
    assert tracing.with_context({"a": 1}) == {"a": 1}, "nothing traced: the message is unchanged"
    with tracing.span("intake", {"traceparent": PARENT}):
        message = tracing.with_context({"a": 1})
    assert message["_trace"]["traceparent"].split("-")[1] == TRACE_ID


def test_the_worker_resumes_the_queued_context():
    seen: list[dict] = []
    body = json.dumps({"a": 1, "_trace": {"traceparent": PARENT}}).encode()
    run_queue_message(Settings(), "healer-test", body, 1, lambda m: seen.append(tracing.inject()) or "ok", 3)
    assert seen[0]["traceparent"].split("-")[1] == TRACE_ID


@pytest.mark.parametrize("carrier", [None, "x", {"traceparent": 5}, {"traceparent": "junk"},
                                     {"traceparent": "00-" + "f" * 600}])
def test_hostile_trace_fields_start_a_fresh_context(carrier):
    body = json.dumps({"a": 1, "_trace": carrier}).encode()
    assert run_queue_message(Settings(), "healer-test", body, 1, lambda m: "ok", 3) == "ok"


SCRIPT = """
import json
import azure.functions as func
from azure.functions.queue import QueueMessage
from shared.config import Settings
from shared.storage import queue
from opentelemetry import trace
from opentelemetry._logs import get_logger_provider
import function_app
from tests.alert_samples import alert_body
fns = {f.get_function_name(): f for f in function_app.app.get_functions()}
body = alert_body("metric_fired.json", alert_id="bbbbbbbb-0000-4000-8000-00000000000b", rule="shop-web-http5xx")
req = func.HttpRequest("POST", "http://localhost/api/alerts/rollback", headers={}, params={}, route_params={},
                       body=json.dumps(body).encode())
resp = fns["rollback_alert"].get_user_function()(req)
assert resp.status_code == 202, resp.get_body()
q = queue(Settings(), "healer-rollback")
[m] = list(q.receive_messages(max_messages=1))
q.delete_message(m)
msg = QueueMessage(id=m.id, body=m.content, dequeue_count=1)
fns["rollback_worker"].get_user_function()(msg)
import logging
logging.basicConfig(level=logging.WARNING)
for provider in (trace.get_tracer_provider(), get_logger_provider()):
    provider.force_flush()
    provider.shutdown()
import logging; print("flushed", resp.get_body(), trace.get_tracer_provider(), get_logger_provider(), logging.getLogger("healer").handlers, logging.getLogger().handlers)
"""


@pytest.mark.integration
def test_one_operation_id_links_the_rollback_path(healer_env, arm, workdir):
    seed_bad_release(arm, healer_env["HEALER_ARM_ENDPOINT"], "shop-prod", "shop-web")
    port = free_port()
    ingestion = start_python_server("appinsights", "standins.appinsights", ["--port", str(port)], port, workdir)
    try:
        env = {**os.environ, **healer_env, "PATH": "/usr/bin:/bin",
               "APPLICATIONINSIGHTS_CONNECTION_STRING":
                   f"InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:{port}/",
               "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true"}
        out = subprocess.run([sys.executable, "-c", SCRIPT], env=env,
                             capture_output=True, text=True, timeout=180)
        assert "flushed" in out.stdout, out.stderr[-3000:]
        deadline, seen = time.monotonic() + 30, _Seen([])
        while time.monotonic() < deadline and not seen.complete():
            time.sleep(0.2)
            seen = _Seen(httpx.get(f"http://127.0.0.1:{port}/_standin/envelopes").json()["envelopes"])
        intake = seen.spans.get("healer.http webhook")
        assert intake, (sorted(seen.spans), out.stderr[-2000:])
        assert seen.spans.get("healer.queue healer-rollback") == intake, "the worker resumed the webhook's operation"
        assert seen.swap_ops == {intake}, "the swap's ARM calls share the operation"
        assert seen.acted_ops == {intake}, "the decision's audit record shares the operation"
    finally:
        ingestion.stop()


class _Seen:
    """What the ingestion stand-in holds, by operation id (ai.operation.id)."""

    def __init__(self, envelopes: list[dict]):
        def op(e: dict) -> str:
            return e.get("tags", {}).get("ai.operation.id", "")
        spans = [e for e in envelopes if e.get("name", "").endswith(("RemoteDependency", "Request"))]
        self.spans = {e["data"]["baseData"].get("name", ""): op(e) for e in spans}
        self.swap_ops = {op(e) for e in spans if "slotsswap" in json.dumps(e["data"]["baseData"]).lower()}
        self.acted_ops = {op(e) for e in envelopes if e.get("name", "").endswith("Message")
                          and e["data"]["baseData"].get("properties", {}).get("healer.outcome") == "acted"}

    def complete(self) -> bool:
        return bool(self.swap_ops and self.acted_ops and "healer.queue healer-rollback" in self.spans)
