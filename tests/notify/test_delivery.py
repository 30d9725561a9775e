"""Audit records → notifications, counted at the Teams, Slack and generic stand-ins."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from shared import audit, notify
from shared.config import Settings
from tests.notify_helpers import drain, queued

pytestmark = pytest.mark.integration
FORMATS = ("teams", "slack", "generic")
NOTIFYING = ["acted", "escalated", "failed", "pending", "approved", "rejected", "expired", "dead-letter",
             "config-invalid"]
QUIET = ["skipped", "refused", "recorded", "dry-run", "ignored", "duplicate"]
APP = "/subscriptions/1/resourceGroups/prod/providers/Microsoft.Web/sites/shop-web"


def rec(outcome: str, healer: str = "rollback", **details) -> dict:
    return audit.record(Settings(), healer=healer, outcome=outcome, reason=f"reason for {outcome}", resource=APP,
                        subject="alert-1", details=details)


def counts(chat) -> dict[str, int]:
    return {f: len(chat.received(f)) for f in FORMATS}


@pytest.mark.parametrize("outcome", NOTIFYING)
def test_each_notifying_outcome_gives_exactly_one_per_destination(notify_env, outcome):
    entry = rec(outcome)
    assert entry["notifications"] == ["teams-dest", "slack-dest", "generic-dest"]
    assert drain() == ["sent"] * 3
    assert counts(notify_env) == {"teams": 1, "slack": 1, "generic": 1}
    generic = notify_env.received("generic")[0]["body"]
    assert generic["auditId"] == entry["id"] and generic["outcome"] == outcome


def test_quiet_outcomes_notify_nobody_but_controls_and_attention_do(notify_env):
    for outcome in QUIET:
        assert "notifications" not in rec(outcome)
    rec("skipped", attention="Healer cannot roll back shop-web")
    audit.record(Settings(), healer="controls", outcome="recorded", reason="kill switch on", resource=APP)
    drain()
    assert counts(notify_env) == {"teams": 2, "slack": 2, "generic": 2}
    kinds = sorted(r["body"]["event"] for r in notify_env.received("generic"))
    assert kinds == ["attention", "controls"]


def test_redelivered_notification_messages_send_once(notify_env):
    rec("acted")
    [*messages] = queued()
    from shared.work import enqueue
    for m in messages:  # the host redelivers every message (e.g. after a worker recycled)
        enqueue(Settings(), notify.QUEUE, m)
    outcomes = drain()
    assert sorted(outcomes) == ["duplicate"] * 3 + ["sent"] * 3
    assert counts(notify_env) == {"teams": 1, "slack": 1, "generic": 1}


def test_one_approval_request_per_approval_however_many_pending_records(notify_env):
    approval = {"id": "a" * 24, "healer": "downshift", "action": "downshift.switch", "resource": APP,
                "subject": "t1", "expiresAt": (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=4)).isoformat()}
    for _ in range(3):  # e.g. every tick re-records the same pending ask
        rec("pending", healer="downshift", approval=approval, approvalId=approval["id"])
    drain()
    assert counts(notify_env) == {"teams": 1, "slack": 1, "generic": 1}


def test_failing_destination_is_retried_and_the_others_still_get_theirs(notify_env):
    notify_env.fail("slack", 2, status=503)
    rec("escalated")
    drain()
    assert counts(notify_env) == {"teams": 1, "slack": 1, "generic": 1}
    assert [r["status"] for r in notify_env.received("slack", all_requests=True)] == [503, 503, 200]


def test_destination_that_keeps_failing_is_dead_lettered_audited_and_does_not_loop(notify_env):
    notify_env.fail("teams", notify.MAX_ATTEMPTS + 5, status=500)
    rec("acted")
    drain()
    assert counts(notify_env) == {"teams": 0, "slack": 1, "generic": 1}
    assert len(notify_env.received("teams", all_requests=True)) == notify.MAX_ATTEMPTS + 1
    day = dt.datetime.now(dt.timezone.utc).date()
    [dead] = audit.list_records(Settings(), day=day, healer="notify")
    assert dead["outcome"] == "dead-letter" and "teams-dest" in dead["reason"] and "HTTP 500" in dead["reason"]
    assert "SECRETSIG" not in json.dumps(dead) and "notifications" not in dead  # no URL, no loop
    assert queued() == [] and queued("healer-notify-poison") == []


def test_a_refused_payload_is_dead_lettered_at_once(notify_env):
    notify_env.fail("slack", 1, status=400)
    rec("failed")
    drain()
    assert len(notify_env.received("slack", all_requests=True)) == 1
    day = dt.datetime.now(dt.timezone.utc).date()
    [dead] = audit.list_records(Settings(), day=day, healer="notify")
    assert "refused the payload" in dead["reason"]


def test_routing_rules_per_healer_and_event(notify_env, monkeypatch):
    dests = notify_env.destinations(
        slack=[{"healers": ["rollback"], "events": []}, {"healers": ["*"], "events": ["escalated"]}],
        generic=[{"healers": ["downshift"], "events": ["acted"]}])
    monkeypatch.setenv("HEALER_NOTIFY_DESTINATIONS", json.dumps(dests))
    assert rec("escalated")["notifications"] == ["teams-dest"]          # slack mutes rollback
    assert rec("escalated", healer="downshift")["notifications"] == ["teams-dest", "slack-dest"]
    assert rec("acted", healer="downshift")["notifications"] == ["teams-dest", "generic-dest"]


def test_broken_destinations_setting_never_breaks_the_decision(notify_env, monkeypatch, caplog):
    monkeypatch.setenv("HEALER_NOTIFY_DESTINATIONS", '[{"name": "x", "format": "teams", "url": '
                                                     '"ftp://secret-host/SECRETSIG"}]')
    entry = rec("acted")
    assert "notifications" not in entry and queued() == []
    assert "SECRETSIG" not in caplog.text and "HEALER_NOTIFY_DESTINATIONS" in caplog.text


def test_legacy_webhook_url_is_one_generic_destination(notify_env, monkeypatch):
    monkeypatch.delenv("HEALER_NOTIFY_DESTINATIONS")
    monkeypatch.setenv("HEALER_NOTIFY_WEBHOOK_URL", notify_env.url("generic") + "/hook")
    rec("dead-letter")
    drain()
    [got] = notify_env.received("generic")
    assert got["body"]["kind"] == "dead-letter" and got["body"]["text"] == "reason for dead-letter"


def test_retention_removes_delivery_records_and_used_links(notify_env):
    from shared.state import Record, Store
    rec("acted")
    drain()
    Store(Settings(), "links").insert(Record("used", "x" * 40, {"usedAt": "then"}))
    assert notify.purge(Settings(), dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)) == 0
    assert notify.purge(Settings(), dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)) == 4
