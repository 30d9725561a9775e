"""A lost Resolved does not pin a tenant down forever (healers.downshift.lost), and the loop is closed in Azure
Monitor: alerts Healer acted on or refused are acknowledged (AlertsManagement stand-in, azure-mgmt-alertsmanagement)."""
from __future__ import annotations

import datetime as dt

import pytest

from healers.downshift import lost, shell
from healers.downshift.core import CapacitySignal, DownshiftPolicy, DownshiftState, Inputs, ObservedModel, decide
from healers.downshift.ladder import Ladder
from shared import monitor_alerts
from shared.alerts import parse_alert
from shared.config import Settings
from tests.alert_samples import alert_body
from tests.downshift.test_shell import state, tick
from tests.downshift.test_shell_env import (AI_APP, Clock, cost_rows, downshift_env, downshift_servers,  # noqa: F401
                                            drain, kv, records)
from tests.monitor_alerts_env import alerts_env, alerts_server  # noqa: F401

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
POLICY = DownshiftPolicy(Ladder(("gpt-4o", "gpt-4o-mini"), "gpt-4o-mini"), min_dwell_s=600, track_budget=False)
SUB = "11111111-1111-1111-1111-111111111111"


def fired(alert_id: str = "a1") -> DownshiftState:
    s = DownshiftState(app=AI_APP, tenant="acme")
    s = lost.remember(s, alert_id, SUB)
    _, s = decide(Inputs(observed=ObservedModel("gpt-4o"), capacity=CapacitySignal(alert_id, "Fired", T0)), s,
                  POLICY, T0)
    return s


def test_due_only_after_the_dwell_and_at_most_once_per_dwell():
    s = fired()
    assert s.status == "DOWNSHIFTED" and list(lost.watches(s)) == ["a1"]
    assert lost.due(s, POLICY, T0 + dt.timedelta(minutes=9)) == []
    later = T0 + dt.timedelta(minutes=11)
    [w] = lost.due(s, POLICY, later)
    s2, signal, tell = lost.after_check(s, w, "Fired", later)
    assert signal is None and not tell and lost.due(s2, POLICY, later + dt.timedelta(minutes=5)) == []
    assert lost.due(s2, POLICY, later + dt.timedelta(minutes=11))            # asked again after another dwell


def test_resolved_restores_unknown_stays_down_and_is_told_once():
    s = fired()
    at = T0 + dt.timedelta(minutes=11)
    [w] = lost.due(s, POLICY, at)
    s1, signal, tell = lost.after_check(s, w, "Resolved", at, T0 + dt.timedelta(minutes=3))
    assert signal == CapacitySignal("a1", "Resolved", T0 + dt.timedelta(minutes=3)) and not tell
    _, s1 = decide(Inputs(observed=ObservedModel("gpt-4o-mini"), capacity=signal), s1, POLICY, at)
    assert s1.status in ("RESTORING", "NORMAL") and not s1.capacity_active
    s2, signal, tell = lost.after_check(s, w, None, at)
    assert signal is None and tell                                             # unknown: told once...
    [w2] = lost.due(s2, POLICY, at + dt.timedelta(minutes=11))
    assert lost.after_check(s2, w2, None, at + dt.timedelta(minutes=11))[2] is False   # ...not twice
    assert DownshiftState.from_dict(s2.to_dict()) == s2


def capacity_message(alert_id: str, condition: str, at: dt.datetime, tenant: str, **props: str) -> tuple[dict, str]:
    body = alert_body("log_search_fired.json", alert_id=alert_id, rule="chat-429-ratio", condition=condition,
                      fired=at, resolved=at, custom_properties={"healer.target": AI_APP, **props}, tenant=tenant)
    alert = parse_alert(body)
    from healers.downshift.api import alert_dimensions
    return shell.alert_message(alert, alert_dimensions(body)), monitor_alerts.subscription_of(*alert.target_ids,
                                                                                              AI_APP)


@pytest.mark.integration
def test_a_lost_resolved_is_asked_of_azure_monitor_after_the_dwell(downshift_env, alerts_env):
    la, ac, clock, settings = downshift_env["la"], downshift_env["ac"], Clock(T0), Settings()
    alert_id = "33333333-aaaa-4bbb-8ccc-000000000001"
    msg, sub = capacity_message(alert_id, "Fired", T0, "globex")
    alerts_env.seed(sub, alert_id, "chat-429-ratio")
    assert shell.handle(settings, msg, owner="w", now=clock) == "acted"
    [ack] = alerts_env.changes()                                               # acted on: acknowledged
    assert ack["alertId"] == alert_id and ack["newState"] == "Acknowledged" and "Healer downshift: acted" in \
        ack["comments"]
    la.seed("AppMetrics", cost_rows("globex", 1.0, T0))
    clock.advance(minutes=11)                                                  # dwell over, Resolved never came
    la.seed("AppMetrics", cost_rows("acme", 0.01, clock.now))
    assert "globex" in [p[1] for p in tick(clock).planned]
    drain(downshift_env["env"], clock)
    assert kv(ac, "globex")["value"] == "gpt-4o-mini"                          # still Fired in Azure Monitor
    alerts_env.resolve(alert_id)
    clock.advance(minutes=11)
    la.seed("AppMetrics", cost_rows("acme", 0.01, clock.now))
    assert "globex" in [p[1] for p in tick(clock).planned]
    drain(downshift_env["env"], clock)
    assert state("globex")["status"] == "RESTORING" and not any(
        c == "Fired" for c, _ in state("globex")["alerts"].values())
    clock.advance(minutes=11)
    la.seed("AppMetrics", cost_rows("acme", 0.01, clock.now))
    tick(clock)
    assert "acted" in drain(downshift_env["env"], clock)
    assert kv(ac, "globex") is None                                            # restored


@pytest.mark.integration
def test_an_unknown_alert_keeps_the_tenant_down_and_is_reported_once(downshift_env, alerts_env):
    la, ac, clock, settings = downshift_env["la"], downshift_env["ac"], Clock(T0), Settings()
    msg, _ = capacity_message("33333333-aaaa-4bbb-8ccc-000000000002", "Fired", T0, "globex")   # not in Monitor
    assert shell.handle(settings, msg, owner="w", now=clock) == "acted"
    for _ in range(3):
        clock.advance(minutes=11)
        la.seed("AppMetrics", cost_rows("globex", 0.01, clock.now))
        tick(clock)
        drain(downshift_env["env"], clock)
    assert kv(ac, "globex")["value"] == "gpt-4o-mini"
    told = [r for r in records(clock) if (r["details"].get("event") or {}).get("monitor", {}).get("notification")]
    assert len(told) == 1 and told[0]["details"]["event"]["monitor"]["condition"] == "unknown"
