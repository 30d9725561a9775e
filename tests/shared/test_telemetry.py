"""Audit decisions leave as OpenTelemetry logs and metrics through the real Azure Monitor exporter."""
from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from standins.harness import free_port, start_python_server

pytestmark = pytest.mark.integration

SCRIPT = """
import datetime as dt
from opentelemetry import metrics
from opentelemetry._logs import get_logger_provider
from shared import audit
from shared.config import Settings
from shared.telemetry import configure
assert configure(Settings())
audit.record(Settings(), healer="rollback", outcome="acted", reason="rolled back: telemetry drill",
             resource="/subscriptions/x/resourceGroups/rg/providers/Microsoft.Web/sites/app", subject="incident-1")
get_logger_provider().force_flush()
metrics.get_meter_provider().force_flush()
print("flushed")
"""


def test_audit_records_reach_application_insights(storage_env, workdir):
    port = free_port()
    ingestion = start_python_server("appinsights", "standins.appinsights", ["--port", str(port)], port, workdir)
    try:
        env = {**storage_env, "PATH": "/usr/bin:/bin",
               "APPLICATIONINSIGHTS_CONNECTION_STRING":
                   f"InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:{port}/",
               "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true"}
        out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
        assert "flushed" in out.stdout, out.stderr[-2000:]
        deadline, envelopes = time.monotonic() + 30, []
        while time.monotonic() < deadline:
            envelopes = httpx.get(f"http://127.0.0.1:{port}/_standin/envelopes").json()["envelopes"]
            if any("Message" in e.get("name", "") for e in envelopes) and any("Metric" in e.get("name", "")
                                                                            for e in envelopes):
                break
            time.sleep(0.2)
        logs = [e["data"]["baseData"] for e in envelopes if e.get("name", "").endswith("Message")]
        audit_log = next(d for d in logs if "telemetry drill" in d.get("message", ""))
        assert audit_log["properties"]["healer.outcome"] == "acted"
        assert audit_log["properties"]["healer.subject"] == "incident-1"
        metrics = [m for e in envelopes if e.get("name", "").endswith("Metric") for m in e["data"]["baseData"]["metrics"]]
        assert any(m["name"] == "healer.decisions" for m in metrics)
    finally:
        ingestion.stop()
