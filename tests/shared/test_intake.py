"""Repeat deliveries absorbed at intake (in-process cache in front of the durable marker) and audited in aggregate."""
from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from shared import audit
from shared import intake_dedupe as intake
from shared.config import Settings
from shared.state import Store, safe_key
from tests.alert_samples import alert_body
from tests.conftest import SHOP
from tests.functions import call, http

pytestmark = pytest.mark.integration


def test_recent_keys_are_bounded_and_age_out():
    clock = [0.0]
    keys = intake.RecentKeys(size=3, seconds=10, clock=lambda: clock[0])
    for k in "abcd":
        keys.add((k,))
    assert len(keys) == 3 and ("a",) not in keys and ("d",) in keys   # least recently used went first
    clock[0] = 11
    assert ("d",) not in keys                                            # too old: the durable record decides


def queued(storage_env, name: str = "healer-test") -> list[dict]:
    from azure.storage.queue import QueueClient
    q = QueueClient.from_connection_string(storage_env["AzureWebJobsStorage"], name)
    return [json.loads(base64.b64decode(m.content)) for m in q.peek_messages(max_messages=32)]


def test_second_instance_dedupes_through_the_durable_marker(storage_env):
    s = Settings()
    first = intake.enqueue_once(s, "test", "alert-1:fired", "healer-test", {"n": 1})
    assert first == intake.Intake(True, "queued")
    assert intake.enqueue_once(s, "test", "alert-1:fired", "healer-test", {"n": 2}).reason == "recent"
    intake.RECENT.clear()                       # another instance: no in-process memory, only the durable record
    assert intake.enqueue_once(s, "test", "alert-1:fired", "healer-test", {"n": 3}) == intake.Intake(False, "marked")
    assert [m["n"] for m in queued(storage_env)] == [1]


def test_stale_marker_requeues_unless_decided(storage_env):
    s, t0 = Settings(), dt.datetime.now(dt.timezone.utc)
    intake.enqueue_once(s, "test", "a2", "healer-test", {"n": 1}, now=t0)
    later = t0 + intake.REQUEUE_AFTER + dt.timedelta(seconds=1)
    intake.RECENT.clear()
    assert intake.enqueue_once(s, "test", "a2", "healer-test", {"n": 2}, decided=lambda: True, now=later).reason \
        == "decided"
    intake.RECENT.clear()
    assert intake.enqueue_once(s, "test", "a2", "healer-test", {"n": 3}, now=later) == intake.Intake(True, "requeued")
    assert [m["n"] for m in queued(storage_env)] == [1, 3]


def test_failed_enqueue_removes_the_marker_so_the_retry_queues(storage_env):
    s = Settings()
    with pytest.raises(Exception):
        intake.enqueue_once(s, "test", "a3", "Not_A_Valid_Queue", {"n": 1})
    assert Store(s, "dedupe").get("intake:test", safe_key("a3")) is None
    assert intake.enqueue_once(s, "test", "a3", "healer-test", {"n": 2}).queued


def test_repeats_are_one_audit_record_with_a_count(storage_env):
    s, now = Settings(), dt.datetime.now(dt.timezone.utc)
    for _ in range(40):
        audit.record_repeat(s, healer="test", subject="alert-9", resource=SHOP, reason="dup", now=now)
    audit.flush_repeats()
    rows = list(audit.list_records(s, day=now.date(), healer="test", outcome="duplicate"))
    assert len(rows) == 1 and rows[0]["details"]["count"] == 40 and rows[0]["subject"] == "alert-9"


def test_rollback_webhook_storm_queues_one_message_and_audits_the_repeats(functions, storage_env):
    body = alert_body("metric_fired.json", alert_id="bbbbbbbb-0000-4000-8000-000000000001",
                      custom_properties={"healer.target": SHOP})
    answers = [json.loads(call(functions, "rollback_alert", http("POST", "alerts/rollback", body)).get_body())
               for _ in range(5)]
    assert [a["duplicate"] for a in answers] == [False, True, True, True, True]
    assert len(queued(storage_env, "healer-rollback")) == 1
    resolved = alert_body("metric_fired.json", alert_id="bbbbbbbb-0000-4000-8000-000000000001", condition="Resolved",
                          custom_properties={"healer.target": SHOP})
    assert json.loads(call(functions, "rollback_alert", http("POST", "alerts/rollback", resolved)).get_body())[
        "duplicate"] is False                    # Resolved is different work
    assert len(queued(storage_env, "healer-rollback")) == 2
    audit.flush_repeats()
    [row] = audit.list_records(Settings(), day=dt.datetime.now(dt.timezone.utc).date(), healer="rollback",
                               outcome="duplicate")
    assert row["details"]["count"] == 4 and row["details"]["stage"] == "intake"


def test_concurrent_first_deliveries_queue_once(storage_env):
    from concurrent.futures import ThreadPoolExecutor
    s = Settings()
    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(lambda n: intake.enqueue_once(s, "test", "a4", "healer-test", {"n": n}), range(48)))
    assert sum(g.queued for g in got) == 1 and len(queued(storage_env)) == 1
