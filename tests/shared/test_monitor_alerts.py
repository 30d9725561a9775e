"""shared/monitor_alerts.py through azure-mgmt-alertsmanagement against the AlertsManagement stand-in (paths,
api-version, changestate body, ARM errors)."""
from __future__ import annotations

import uuid

import httpx
import pytest

from shared import monitor_alerts
from shared.config import Settings
from tests.monitor_alerts_env import SUBSCRIPTION, alerts_env, alerts_server  # noqa: F401

pytestmark = pytest.mark.integration


def test_condition_of_fired_resolved_and_unknown_alerts(alerts_env):
    settings = Settings()
    fired, resolved = str(uuid.uuid4()), str(uuid.uuid4())
    alerts_env.seed(SUBSCRIPTION, fired, "chat-429-ratio")
    alerts_env.seed(SUBSCRIPTION, resolved, "chat-429-ratio")
    alerts_env.resolve(resolved)
    assert monitor_alerts.alert_condition(settings, SUBSCRIPTION, fired).condition == "Fired"
    got = monitor_alerts.alert_condition(settings, SUBSCRIPTION, resolved)
    assert got.condition == "Resolved" and got.resolved_at is not None
    assert monitor_alerts.alert_condition(settings, SUBSCRIPTION, str(uuid.uuid4())) is None      # 404: unknown
    assert monitor_alerts.alert_condition(settings, None, fired) is None
    alerts_env.fault(503, count=10)                                                                # retried, then
    assert monitor_alerts.alert_condition(settings, SUBSCRIPTION, fired) is None                  # unknown
    alerts_env.control("POST", "/_standin/reset")


def test_acknowledge_sets_the_state_with_a_comment_once_and_leaves_a_humans_close(alerts_env, monkeypatch):
    settings = Settings()
    alert, closed = str(uuid.uuid4()), str(uuid.uuid4())
    alerts_env.seed(SUBSCRIPTION, alert, "r")
    alerts_env.seed(SUBSCRIPTION, closed, "r", alertState="Closed")
    import datetime as dt
    comment = monitor_alerts.comment_for("rollback", "acted", dt.date(2026, 3, 20), "/subscriptions/x/sites/a",
                                         alert, "swapped back")
    assert monitor_alerts.acknowledge(settings, "rollback", SUBSCRIPTION, alert, comment) == "acknowledged"
    assert monitor_alerts.acknowledge(settings, "rollback", SUBSCRIPTION, alert, comment) == "left (Acknowledged)"
    assert monitor_alerts.acknowledge(settings, "rollback", SUBSCRIPTION, closed, comment) == "left (Closed)"
    [change] = alerts_env.changes()
    assert change["newState"] == "Acknowledged" and f"audit record subject {alert}" in change["comments"]
    assert "day=2026-03-20&healer=rollback&outcome=acted" in change["comments"]
    assert monitor_alerts.acknowledge(settings, "errors", SUBSCRIPTION, alert, comment) == "off"   # not enabled
    assert monitor_alerts.acknowledge(settings, "rollback", SUBSCRIPTION, str(uuid.uuid4()), "x").startswith(
        "failed: ResourceNotFoundError")


def test_standin_follows_the_rest_contract(alerts_env):
    alert = str(uuid.uuid4())
    alerts_env.seed(SUBSCRIPTION, alert, "r")
    base = f"{alerts_env.endpoint}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.AlertsManagement/alerts"
    verify = str(alerts_env.ca_path)
    assert httpx.get(f"{base}/{alert}?api-version=2019-05-05-preview", verify=verify).status_code == 401
    client = monitor_alerts.client(Settings(), SUBSCRIPTION)
    token = client._config.credential.get_token("https://management.azure.com/.default").token
    auth = {"Authorization": f"Bearer {token}"}
    missing = httpx.get(f"{base}/{alert}", headers=auth, verify=verify)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "MissingApiVersionParameter"
    bad = httpx.post(f"{base}/{alert}/changestate?api-version=2019-05-05-preview&newState=Gone", headers=auth,
                     verify=verify)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidArgument"
    for _ in range(3):
        alerts_env.seed(SUBSCRIPTION, str(uuid.uuid4()), "r")
    listed = list(client.alerts.get_all(monitor_condition="Fired", api_version="2019-05-05-preview"))
    assert len(listed) == 4 and {a.properties.essentials.monitor_condition for a in listed} == {"Fired"}
