"""Retention: the audit trail and the delivery records do not grow forever.

Daily, the audit partitions (one per UTC day) older than HEALER_AUDIT_RETENTION_DAYS are deleted, and so are
dedupe records, decided approvals, notification delivery records and used approval links older than
HEALER_DEDUPE_RETENTION_DAYS (far longer than any sender retries).
Operations records (latches, leases, in-flight swaps) and controls are never touched. Each run is audited.
"""
from __future__ import annotations

import datetime as dt
import logging

from shared import audit
from shared.config import Settings
from shared.state import Store

log = logging.getLogger("healer.housekeeping")
HEALERS_WITH_DEDUPE = ("rollback",)
SCAN_DAYS = 31  # audit days examined beyond the cutoff each run: a missed month of runs is still caught up


def expired_audit_days(today: dt.date, retention_days: int, scan_days: int = SCAN_DAYS) -> list[str]:
    """The audit partitions a run deletes: the `scan_days` days just past the retention window."""
    cutoff = today - dt.timedelta(days=retention_days)
    return [(cutoff - dt.timedelta(days=n)).strftime("%Y%m%d") for n in range(1, scan_days + 1)]


def run(settings: Settings, now: dt.datetime) -> dict[str, int]:
    audit_days, dedupe_days = settings.audit_retention_days, settings.dedupe_retention_days
    removed = {"audit": 0, "dedupe": 0, "approvals": 0, "expired": 0}
    audit_store = Store(settings, "audit")
    for day in expired_audit_days(now.date(), audit_days):
        removed["audit"] += audit_store.purge(day)
    cutoff = now - dt.timedelta(days=dedupe_days)
    dedupe = Store(settings, "dedupe")
    approvals = Store(settings, "approvals")
    for healer in HEALERS_WITH_DEDUPE + ("last-error", "config-invalid"):  # + remembered failures, config errors
        removed["dedupe"] += dedupe.purge(healer, older_than=cutoff)
        removed["dedupe"] += dedupe.purge(f"intake:{healer}", older_than=cutoff)  # shared/intake.py markers
    for healer in ("rollback", "downshift", "replication", "errors"):
        removed["approvals"] += approvals.purge(healer, older_than=cutoff,
                                                keep=lambda r: r.data.get("status") in ("pending", "approved"))
    from shared.approvals import sweep
    removed["expired"] = sweep(settings, now)  # pending approvals past their expiry: marked and audited `expired`
    from shared import notify
    delivered = notify.purge(settings, cutoff)  # notification delivery records and used approval links
    audit.record(settings, healer="housekeeping", outcome="recorded",
                 reason=f"retention: removed {removed['audit']} audit records older than {audit_days} days, "
                        f"{removed['dedupe']} dedupe records, {removed['approvals']} decided approvals and "
                        f"{delivered} notification delivery records older than {dedupe_days} days; "
                        f"{removed['expired']} pending approvals expired",
                 details={**removed, "notifications": delivered}, now=now)
    return removed
