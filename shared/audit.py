"""The audit trail: one durable record per decision, listed newest first, and mirrored to OpenTelemetry.

Table `<prefix>audit`: PartitionKey is the UTC day (YYYYMMDD), RowKey sorts newest first within the day.
Outcomes: acted, skipped, refused, pending, failed, escalated, recorded, dry-run, ignored, approved, rejected.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any, Iterator

from shared.config import Settings
from shared.state import Record, Store

log = logging.getLogger("healer.audit")
OUTCOMES = frozenset({"acted", "skipped", "refused", "pending", "failed", "escalated", "recorded", "dry-run",
                      "ignored", "approved", "rejected", "duplicate", "dead-letter", "expired", "config-invalid"})
_MAX_MS = 10 ** 13
_counter = None


def _decisions_counter():
    global _counter
    if _counter is None:
        from opentelemetry import metrics
        _counter = metrics.get_meter("healer").create_counter(
            "healer.decisions", description="Healer decisions by healer and outcome")
    return _counter


def _row_key(at: dt.datetime) -> str:
    ms = int(at.timestamp() * 1000)
    return f"{_MAX_MS - ms:013d}-{uuid.uuid4().hex[:12]}"


def record(settings: Settings, *, healer: str, outcome: str, reason: str, resource: str = "",
           subject: str = "", details: dict[str, Any] | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """Write one audit record and emit it as an OpenTelemetry log record and metric. Returns the record."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown audit outcome {outcome!r}")
    at = now or dt.datetime.now(dt.timezone.utc)
    entry = {"at": at.isoformat(), "healer": healer, "outcome": outcome, "reason": reason[:2000],
             "resource": resource[:600], "subject": subject[:300], "details": details or {}}
    rec = Record(at.strftime("%Y%m%d"), _row_key(at), entry,
                 columns={"healer": healer, "outcome": outcome, "resource": resource.lower()[:600]})
    Store(settings, "audit").insert(rec)
    entry["id"] = f"{rec.partition}/{rec.row}"
    log.info("%s %s: %s", healer, outcome, reason[:300],
             extra={"healer.healer": healer, "healer.outcome": outcome, "healer.resource": entry["resource"],
                    "healer.subject": entry["subject"], "healer.audit_id": entry["id"]})
    try:
        _decisions_counter().add(1, {"healer.healer": healer, "healer.outcome": outcome})
    except Exception:  # telemetry must never break a decision
        log.debug("metric emit failed", exc_info=True)
    return entry


def list_records(settings: Settings, *, day: dt.date, healer: str | None = None, outcome: str | None = None,
                 resource: str | None = None, limit: int = 100) -> Iterator[dict[str, Any]]:
    filters = {k: v for k, v in (("healer", healer), ("outcome", outcome),
                                 ("resource", resource.lower() if resource else None)) if v}
    for rec in Store(settings, "audit").query(day.strftime("%Y%m%d"), limit=limit, filters=filters):
        yield {"id": f"{rec.partition}/{rec.row}", **rec.data}
