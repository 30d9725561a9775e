"""Healers → audit → notifications, end to end with the real rollback shell: a real swap is notified once per
destination however often the alert is redelivered; an ask notifies once, its approval and the swap follow in the
same incident."""
from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from healers.rollback import shell
from shared import approvals
from shared.alerts import parse_alert
from shared.config import Settings
from standins.stack import seed_bad_release
from tests.alert_samples import alert_body
from tests.conftest import SHOP
from tests.notify_helpers import drain

pytestmark = pytest.mark.integration


def alert(alert_id: str) -> dict:
    body = alert_body("metric_fired.json", alert_id=alert_id, rule="shop-web-http5xx", condition="Fired",
                      custom_properties={"healer.target": SHOP, "healer.slot": "staging"})
    return shell.work_message(parse_alert(body))


def handle(msg: dict) -> str:
    return shell.handle(Settings(), msg, owner=uuid.uuid4().hex[:8])


def events(chat, fmt: str = "generic") -> list[str]:
    return [r["body"]["event"] for r in chat.received(fmt)]


def test_a_real_swap_notifies_once_per_destination_under_redelivery(healer_env, notify_env, arm):
    seed_bad_release(arm, healer_env["HEALER_ARM_ENDPOINT"], "shop-prod", "shop-web")
    msg = alert(str(uuid.uuid4()))
    assert handle(msg) == "acted"
    for _ in range(3):
        assert handle(msg) == "duplicate"  # action group retries: audited, never notified
    drain()
    assert {f: len(notify_env.received(f)) for f in ("teams", "slack", "generic")} == \
        {"teams": 1, "slack": 1, "generic": 1}
    assert events(notify_env) == ["acted"]


def test_ask_then_approve_then_swap_share_one_incident(healer_env, notify_env, arm, monkeypatch):
    monkeypatch.setenv("HEALER_POLICY", json.dumps({"version": 1, "default": "deny", "rules": [
        {"action": "rollback.swap", "resource": "*", "effect": "ask"}]}))
    seed_bad_release(arm, healer_env["HEALER_ARM_ENDPOINT"], "shop-prod", "shop-web")
    msg = alert(str(uuid.uuid4()))
    assert handle(msg) == "pending" and handle(msg) == "duplicate"
    [pending] = approvals.list_pending(Settings(), "rollback")
    from shared.api import decide_and_enqueue
    status, _ = decide_and_enqueue(Settings(), healer="rollback", aid=pending["id"], approve=True, by="oncall",
                                   note="", now=dt.datetime.now(dt.timezone.utc))
    assert status == 200
    assert handle({**pending["message"], "approvalId": pending["id"]}) == "acted"
    drain()
    got = [r["body"] for r in notify_env.received("generic")]
    assert [g["event"] for g in got] == ["pending", "approved", "acted"]
    assert {g["incident"] for g in got} == {pending["id"]}
    assert len({g["title"].split(": ")[0] for g in got}) == 1
    assert got[0]["links"]["approve"].startswith("https://healer.example.net/api/approval-link?t=")
    assert {f: len(notify_env.received(f)) for f in ("teams", "slack")} == {"teams": 3, "slack": 3}
