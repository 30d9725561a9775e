"""OpenTelemetry to Application Insights, switched on by APPLICATIONINSIGHTS_CONNECTION_STRING.

The Azure Monitor distro is imported only when a connection string is set, so local runs and tests pay nothing.
"""
from __future__ import annotations

import logging
import os
import threading

from shared.config import Settings

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
            # Every decision's trace is kept whole (the distro's default rate limit of 5 traces/s drops parts of
            # one operation during a storm); OTEL_TRACES_SAMPLER / _ARG still override. Live metrics off: Healer
            # has no use for it, and it is one more outbound connection.
            sampling = {} if os.environ.get("OTEL_TRACES_SAMPLER") else {"sampling_ratio": 1.0}
            configure_azure_monitor(connection_string=conn, logger_name="healer", enable_live_metrics=False,
                                    **sampling)
            logging.getLogger("healer").setLevel(logging.INFO)
            _done = True
    return True
