"""Fixtures for the AlertsManagement stand-in (standins/alertsmanagement.py): one server per session, an env that
points Healer at it (HEALER_ALERTS_ENDPOINT) with acknowledgement on for the given healers. Import the fixtures."""
from __future__ import annotations

import pytest

from standins.alertsmanagement import start_alertsmanagement

from standins.stack import SUBSCRIPTION  # noqa: E402,F401 - the subscription the alerts live in


@pytest.fixture(scope="session")
def alerts_server(local_azure, workdir):
    server = start_alertsmanagement(workdir, local_azure.ca, local_azure.secret, page_size=2)
    yield server
    server.stop()


@pytest.fixture
def alerts_env(local_azure, alerts_server, monkeypatch):
    """Healer pointed at the stand-in, acknowledging for rollback and downshift; returns the server (reset)."""
    alerts_server.reset()
    for k, v in {**local_azure.env(), "HEALER_ALERTS_ENDPOINT": alerts_server.endpoint,
                 "HEALER_ALERT_ACK": "rollback,downshift"}.items():
        monkeypatch.setenv(k, v)
    from shared import monitor_alerts
    from shared.identity import credential
    credential.cache_clear()
    monitor_alerts.clear_caches()
    return alerts_server
