"""Retention over real Table storage (Azurite): old audit days and dedupe records go; latches and pending stay."""
from __future__ import annotations

import datetime as dt

import pytest

from shared import approvals, audit, housekeeping
from shared.config import Settings
from shared.state import Record, Store

pytestmark = pytest.mark.integration


def test_expired_audit_days_are_the_days_just_past_retention():
    days = housekeeping.expired_audit_days(dt.date(2026, 11, 22), retention_days=90, scan_days=3)
    assert days == ["20260823", "20260822", "20260821"]  # 90 days kept: 08-24 .. 11-22


def test_housekeeping_removes_only_what_retention_allows(storage_env, monkeypatch, registered_functions):
    monkeypatch.setenv("HEALER_AUDIT_RETENTION_DAYS", "30")
    s = Settings()
    now = dt.datetime.now(dt.timezone.utc)
    old = now - dt.timedelta(days=40)
    audit.record(s, healer="rollback", outcome="acted", reason="long ago", now=old)
    audit.record(s, healer="rollback", outcome="acted", reason="today", now=now)
    Store(s, "dedupe").insert(Record("rollback", "alert-1", {"status": "decided"}))
    Store(s, "ops").insert(Record("rollback", "app-1", {"latch": {"good": "v1"}}))
    approvals.park(s, healer="rollback", subject="a1", action="rollback.swap", resource="r", reason="x",
                   message={}, queue_name="q", now=now)
    # Everything above was written just now, so only the 40-day-old audit day is past any retention.
    removed = housekeeping.run(s, now)
    assert removed == {"audit": 1, "dedupe": 0, "approvals": 0, "expired": 0}
    assert [r["reason"] for r in audit.list_records(s, day=now.date())].count("today") == 1
    later = now + dt.timedelta(days=31)        # a month on, the dedupe record has aged out; pending approvals stay
    removed = housekeeping.run(s, later)
    assert removed["dedupe"] == 1 and removed["approvals"] == 0 and removed["expired"] == 1  # expired, audited
    assert Store(s, "ops").get("rollback", "app-1") is not None, "latches are never pruned"
    # And through the registered timer callable.
    from azure.functions.timer import TimerRequest
    registered_functions["housekeeping"].get_user_function()(TimerRequest(past_due=False))
    assert any("retention" in r["reason"] for r in audit.list_records(s, day=dt.datetime.now(dt.timezone.utc).date(),
                                                                      healer="housekeeping"))
