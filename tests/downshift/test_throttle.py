"""Which 429: the AI gateway's token limit (a quota: no model switch, audited "quota, not capacity" and notified
once) or the model deployment's capacity (downshift as before)."""
from __future__ import annotations

import datetime as dt

import pytest

from healers.downshift import shell, throttle
from healers.downshift.api import alert_dimensions
from shared.alerts import parse_alert
from shared.config import Settings
from tests.alert_samples import alert_body
from tests.downshift.test_shell_env import (AI_APP, Clock, downshift_env, downshift_servers, kv,  # noqa: F401
                                            records)

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def test_classify_reads_the_rules_custom_property_or_the_split_dimension():
    assert throttle.classify({"healer.throttledBy": "gateway"}, {})[0] == "quota"
    assert throttle.classify({}, {"throttledBy": "Gateway"})[0] == "quota"
    assert throttle.classify({}, {"throttledBy": "backend"})[0] == "capacity"
    assert throttle.classify({"healer.throttledBy": "backend"}, {"throttledBy": "gateway"})[0] == "capacity"
    kind, why = throttle.classify({}, {"tenant": "acme"})
    assert kind == "capacity" and "no throttledBy" in why                 # an app-side alert: as before
    assert throttle.classify({}, {"throttledBy": "<script>"})[0] == "capacity"


def message(alert_id: str, condition: str, at: dt.datetime, by: str | None, tenant: str = "acme") -> dict:
    props = {"healer.target": AI_APP, **({"healer.throttledBy": by} if by else {})}
    body = alert_body("log_search_fired.json", alert_id=alert_id, rule="chat-429-ratio-gateway", condition=condition,
                      fired=at, resolved=at, custom_properties=props, tenant=tenant)
    return shell.alert_message(parse_alert(body), alert_dimensions(body))


@pytest.mark.integration
def test_gateway_quota_429_storm_never_downshifts_and_is_reported_once(downshift_env, monkeypatch, workdir):
    import httpx

    from standins.harness import free_port, start_python_server
    ac, clock, settings = downshift_env["ac"], Clock(T0), Settings()
    storm = "22222222-aaaa-4bbb-8ccc-000000000001"
    port = free_port()
    sink = start_python_server("notify", "standins.webhook_sink", ["--port", str(port)], port, workdir)
    try:
        monkeypatch.setenv("HEALER_NOTIFY_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
        settings = Settings()
        outcomes = [shell.handle(settings, message(storm, "Fired", T0, "gateway"), owner="w", now=clock)
                    for _ in range(5)]
        sent = httpx.get(f"http://127.0.0.1:{port}/_standin/received").json()["received"]
    finally:
        sink.stop()
    assert [s["body"]["kind"] for s in sent] == ["quota-not-capacity"] and "limit" in sent[0]["body"]["text"]
    assert outcomes == ["ignored"] + ["duplicate"] * 4
    assert kv(ac, "acme") is None                                           # no model switch
    [quota] = records(clock, outcome="ignored")
    assert quota["reason"].startswith("quota, not capacity") and quota["details"]["kind"] == "quota"
    assert "token-limit" in quota["details"]["suggestion"] and quota["subject"] == "acme"
    clock.advance(minutes=5)
    assert shell.handle(settings, message(storm, "Resolved", clock.now, "gateway"), owner="w", now=clock) == "ignored"
    assert kv(ac, "acme") is None
    # The model's own 429s (backend) downshift as before.
    assert shell.handle(settings, message("22222222-aaaa-4bbb-8ccc-000000000002", "Fired", clock.now, "backend"),
                        owner="w", now=clock) == "acted"
    assert kv(ac, "acme")["value"] == "gpt-4o-mini"
