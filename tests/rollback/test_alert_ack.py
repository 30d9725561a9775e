"""Rollback closes the loop in Azure Monitor (HEALER_ALERT_ACK): the fired alert it acted on is Acknowledged with a
comment naming the audit record, once; without the setting nothing is sent."""
from __future__ import annotations

import pytest

from shared import monitor_alerts
from shared.alerts import parse_alert
from tests.conftest import SHOP
from tests.monitor_alerts_env import alerts_env, alerts_server  # noqa: F401
from tests.rollback.test_shell import fired_alert, handle, incident, message  # noqa: F401

pytestmark = pytest.mark.integration


def test_acted_alert_is_acknowledged_with_the_audit_record(incident, alerts_env):
    body = fired_alert(alert_id="aaaaaaaa-0000-4000-8000-0000000000ac")
    alert = parse_alert(body)
    alerts_env.seed(monitor_alerts.subscription_of(*alert.target_ids, SHOP), alert.alert_id, alert.rule)
    assert handle(message(body)) == "acted"
    assert handle(message(body)) == "duplicate"
    [change] = alerts_env.changes()
    assert change["alertId"] == alert.alert_id and change["newState"] == "Acknowledged"
    assert "Healer rollback: acted" in change["comments"] and "healer=rollback" in change["comments"]


def test_off_for_a_healer_not_named_in_the_setting(incident, alerts_env, monkeypatch):
    monkeypatch.setenv("HEALER_ALERT_ACK", "downshift")
    body = fired_alert(alert_id="aaaaaaaa-0000-4000-8000-0000000000ad")
    alert = parse_alert(body)
    alerts_env.seed(monitor_alerts.subscription_of(*alert.target_ids, SHOP), alert.alert_id, alert.rule)
    assert handle(message(body)) == "acted"
    assert alerts_env.changes() == []
