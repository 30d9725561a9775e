"""OpenTelemetry to Application Insights, switched on by APPLICATIONINSIGHTS_CONNECTION_STRING.

The Azure Monitor distro is imported only when a connection string is set, so local runs and tests pay nothing.
Only the instrumentations Healer uses are switched on: the Azure SDK's own tracing (every storage, ARM, App
Configuration, Logs and Event Grid call) and httpx (registry probes). Web frameworks Healer does not run, and
requests/urllib/urllib3 (under the Azure SDK, which would trace each call twice), are not loaded.
"""
from __future__ import annotations

import logging
import threading

from shared.config import Settings

INSTRUMENTATIONS = {name: {"enabled": name in ("azure_sdk", "httpx")}
                    for name in ("azure_sdk", "django", "fastapi", "flask", "httpx", "psycopg2", "requests", "urllib",
                                 "urllib3")}
_done = False
_lock = threading.Lock()


def configure(settings: Settings) -> bool:
    """Configure exporters once per process. Returns True when telemetry export is on."""
    global _done
    conn = settings.get("APPLICATIONINSIGHTS_CONNECTION_STRING")
    if not conn:
        return False
    with _lock:
        if not _done:
            from azure.monitor.opentelemetry import configure_azure_monitor
            configure_azure_monitor(connection_string=conn, logger_name="healer",
                                    instrumentation_options=INSTRUMENTATIONS)
            logging.getLogger("healer").setLevel(logging.INFO)
            _done = True
    return True
