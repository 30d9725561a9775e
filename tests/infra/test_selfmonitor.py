"""Healer watches Healer: each self-monitoring alert's KQL, run through LogsQueryClient against the Log Analytics
stand-in over telemetry Healer itself emitted (captured by the Application Insights ingestion stand-in), returns
the rows that make it fire — and nothing when Healer is healthy."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from standins.harness import free_port, make_test_ca, scratch_dir, start_python_server
from standins.log_analytics import AUDIENCES, start_log_analytics
from tests.infra.test_bicep import INFRA, parsed, walk
from tests.standins.test_log_analytics import SECRET, WORKSPACE_ID, HS256Credential

pytestmark = pytest.mark.integration
SELF_MONITOR = INFRA / "modules" / "selfmonitor.bicep"

PRODUCE = """
import datetime as dt, json, logging
from opentelemetry._logs import get_logger_provider
from shared import audit, timers
from shared.config import Settings
from shared.telemetry import configure
from shared.work import record_dead_letter
s = Settings()
assert configure(s)
app = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Web/sites/shop-web"
audit.record(s, healer="rollback", outcome="escalated", reason="verification failed: v41 not serving",
             resource=app, subject="alert-1")
audit.record(s, healer="rollback", outcome="acted", reason="rolled back", resource=app, subject="alert-2")
record_dead_letter(s, "downshift", json.dumps({"deadLetterReason": "ValueError: bad tenant"}).encode(), 5)
audit.record(s, healer="config", outcome="config-invalid", reason="HEALER_DRYRUN is not a Healer setting")
audit.record(s, healer="notify", outcome="failed", reason="teams: 500 after 5 attempts", subject="audit-1")
timers.ran(s, "downshift_tick")
get_logger_provider().force_flush()
get_logger_provider().shutdown()
print("flushed")
"""


def self_alert_queries() -> dict[str, str]:
    """Each rule's KQL file, by rule key, as selfmonitor.bicep loads it."""
    files = sorted({node["parameters"]["file_path"] for node in walk(parsed(SELF_MONITOR))
                    if isinstance(node, dict) and node.get("type") == "load_text_content"})
    return {Path(f).stem: (SELF_MONITOR.parent / f).resolve().read_text() for f in files}


def traces_rows(envelopes: list[dict]) -> list[dict]:
    """Application Insights message envelopes as the workspace's AppTraces rows."""
    rows = []
    for e in envelopes:
        if not e.get("name", "").endswith("Message"):
            continue
        data = e["data"]["baseData"]
        rows.append({"TimeGenerated": e["time"], "Message": data.get("message", ""),
                     "SeverityLevel": {"Verbose": 0, "Information": 1, "Warning": 2, "Error": 3,
                                       "Critical": 4}.get(data.get("severityLevel"), 1),
                     "Properties": data.get("properties", {}),
                     "OperationId": e.get("tags", {}).get("ai.operation.id", "")})
    return rows


@pytest.fixture(scope="module")
def telemetry(local_azure):
    """Run real Healer code paths with telemetry on; return what the ingestion stand-in received as AppTraces."""
    work = scratch_dir("healer-selfmon-")
    port = free_port()
    ingestion = start_python_server("appinsights", "standins.appinsights", ["--port", str(port)], port, work)
    try:
        env = {**os.environ, "PATH": "/usr/bin:/bin", "AzureWebJobsStorage": local_azure.azurite.connection_string,
               "HEALER_TABLE_PREFIX": "selfmon" + str(port),
               "APPLICATIONINSIGHTS_CONNECTION_STRING":
                   f"InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:{port}/",
               "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true"}
        out = subprocess.run([sys.executable, "-c", PRODUCE], env=env, capture_output=True, text=True, timeout=180)
        assert "flushed" in out.stdout, out.stderr[-3000:]
        deadline, rows = time.monotonic() + 30, []
        while time.monotonic() < deadline:
            rows = traces_rows(httpx.get(f"http://127.0.0.1:{port}/_standin/envelopes").json()["envelopes"])
            if any(r["Properties"].get("healer.timer") for r in rows) and len(rows) >= 6:
                break
            time.sleep(0.2)
        return rows
    finally:
        ingestion.stop()


@pytest.fixture(scope="module")
def workspace():
    work = scratch_dir("healer-selfmon-la-")
    server = start_log_analytics(work, make_test_ca(work), SECRET)
    try:
        yield server
    finally:
        server.stop()


def run(workspace, rows: list[dict], kql: str) -> list[dict]:
    from azure.monitor.query import LogsQueryClient
    workspace.reset()
    if rows:
        workspace.seed("AppTraces", rows)
    client = LogsQueryClient(HS256Credential(), endpoint=workspace.endpoint, audience=AUDIENCES[0],
                             connection_verify=str(workspace.ca_path))
    result = client.query_workspace(WORKSPACE_ID, kql, timespan=dt.timedelta(days=2))
    [table] = result.tables
    return [dict(zip(table.columns, row)) for row in table.rows]


def test_every_self_alert_is_a_rule():
    """(Their KQL is validated against the workspace schema with every other loaded query, in test_bicep.)"""
    assert set(self_alert_queries()) == {"self-escalations", "self-dead-letters", "self-config-invalid",
                                         "self-notify-failures", "self-timers-stale"}


def test_each_self_alert_fires_on_what_healer_emitted(telemetry, workspace):
    queries = self_alert_queries()
    fired = {name: run(workspace, telemetry, kql) for name, kql in queries.items()}
    [escalation] = fired["self-escalations"]
    assert escalation["healer"] == "rollback" and escalation["subject"] == "alert-1" and escalation["auditId"]
    [dead] = fired["self-dead-letters"]
    assert dead["healer"] == "downshift" and "bad tenant" in dead["Message"]
    assert len(fired["self-config-invalid"]) == 1
    assert [r["subject"] for r in fired["self-notify-failures"]] == ["audit-1"]
    assert {r["timer"] for r in fired["self-timers-stale"]} == {"errors_daily", "housekeeping"}, \
        "the tick ran; the daily timers never did"


def test_a_healthy_healer_fires_nothing(telemetry, workspace):
    healthy = [r for r in telemetry if r["Properties"].get("healer.outcome") not in
               ("escalated", "dead-letter", "config-invalid", "failed")]
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    healthy += [{"TimeGenerated": now, "Message": f"timer {t} ran", "SeverityLevel": 1,
                 "Properties": {"healer.timer": t}} for t in ("errors_daily", "housekeeping")]
    for name, kql in self_alert_queries().items():
        assert run(workspace, healthy, kql) == [], name
