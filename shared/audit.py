"""The audit trail: one durable record per decision, listed newest first, and mirrored to OpenTelemetry.

Table `<prefix>audit`: PartitionKey is the UTC day (YYYYMMDD), RowKey sorts newest first within the day.
Outcomes: acted, skipped, refused, pending, failed, escalated, recorded, dry-run, ignored, approved, rejected,
duplicate, dead-letter, expired (an approval expired undecided), config-invalid (one per distinct configuration error).
Every record that changes something or needs a human is notified (`shared.notify`): the destinations it goes to
are stored with it (`notifications`), and the deliveries are queued once the record is durable.
"""
from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterator

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
    at = now or dt.datetime.now(dt.UTC)
    entry = {"at": at.isoformat(), "healer": healer, "outcome": outcome, "reason": reason[:2000],
             "resource": resource[:600], "subject": subject[:300], "details": details or {}}
    from shared import notify
    targets = notify.plan(settings, {**entry, "id": ""})
    if targets:
        entry["notifications"] = targets
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
    if targets:
        notify.dispatch(settings, entry, targets)
    return entry


# ---------------------------------------------------------------------------------------------- repeats

REPEAT_INTERVAL = dt.timedelta(minutes=5)
REPEAT_FLUSH_SECONDS = 2.0


@dataclass
class _Repeat:
    """Repeats of one (healer, subject) in one interval, counted in memory between flushes."""
    store: Store
    partition: str
    row: str
    entry: dict[str, Any]
    pending: int = 0
    flushed_at: float | None = None
    timer: threading.Timer | None = field(default=None, repr=False)
    writing: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one merge at a time


_repeats: dict[tuple[str, ...], _Repeat] = {}
_repeats_lock = threading.Lock()


def record_repeat(settings: Settings, *, healer: str, subject: str, reason: str, resource: str = "",
                  details: dict[str, Any] | None = None, now: dt.datetime | None = None, defer: bool = False) -> None:
    """Audit a repeat delivery (outcome `duplicate`) as ONE record per (healer, subject) per `REPEAT_INTERVAL`,
    carrying the count, first and last time. The first repeat of an interval is written at once; later ones are
    counted in memory and merged into the record (ETag-guarded, so instances add up) at most every
    `REPEAT_FLUSH_SECONDS` — a storm of thousands of duplicates costs a handful of writes, not one row each.
    `defer=True` (webhook intake) writes even the first one from a background timer, off the caller's latency."""
    at = now or dt.datetime.now(dt.UTC)
    step = int(REPEAT_INTERVAL.total_seconds())
    start = dt.datetime.fromtimestamp(int(at.timestamp()) // step * step, dt.UTC)
    store = Store(settings, "audit")
    digest = hashlib.sha256(f"{healer}\n{subject}\n{resource}".encode()).hexdigest()[:16]
    key = (settings.table_prefix, settings.get("AzureWebJobsStorage") or "", healer, digest, start.isoformat())
    with _repeats_lock:
        rep = _repeats.get(key)
        if rep is None:
            ms = int((start + REPEAT_INTERVAL).timestamp() * 1000) - 1
            entry = {"at": at.isoformat(), "healer": healer, "outcome": "duplicate", "resource": resource[:600],
                     "subject": subject[:300], "details": {**(details or {}), "count": 0, "first": at.isoformat(),
                                                           "intervalSeconds": step}}
            rep = _repeats[key] = _Repeat(store, start.strftime("%Y%m%d"), f"{_MAX_MS - ms:013d}-repeat-{digest}",
                                          entry)
        rep.pending += 1
        rep.entry.update(at=at.isoformat(), reason=reason[:2000])
        due = rep.flushed_at is None or time.monotonic() - rep.flushed_at >= REPEAT_FLUSH_SECONDS
        if defer and due and rep.timer is None:
            rep.timer = threading.Timer(0.05, _flush, (key,))
            rep.timer.daemon = True
            rep.timer.start()
        due = due and not defer
        if not due and rep.timer is None:
            rep.timer = threading.Timer(REPEAT_FLUSH_SECONDS, _flush, (key,))
            rep.timer.daemon = True
            rep.timer.start()
    if due:
        _flush(key)


def _flush(key: tuple[str, ...]) -> None:
    with _repeats_lock:
        rep = _repeats.get(key)
    if rep is not None:
        with rep.writing:  # a flush in progress finishes before the next one (flush_repeats waits for it)
            _flush_one(key, rep)


def _flush_one(key: tuple[str, ...], rep: _Repeat) -> None:
    with _repeats_lock:
        if rep.pending == 0:
            return
        n, rep.pending, rep.flushed_at, rep.timer = rep.pending, 0, time.monotonic(), None
        entry = {**rep.entry, "details": dict(rep.entry["details"])}
        if len(_repeats) > 1024:  # forget finished intervals (their counts are flushed)
            for k in [k for k, r in _repeats.items() if r.pending == 0 and r.timer is None and k != key][:512]:
                del _repeats[k]
    try:
        total = _merge(rep, entry, n)
    except Exception:
        log.warning("could not write the repeat audit record %s/%s; will retry", rep.partition, rep.row,
                    exc_info=True)
        with _repeats_lock:
            rep.pending += n
        return
    log.info("%s duplicate x%d (%d this interval): %s", entry["healer"], n, total, entry["reason"][:300],
             extra={"healer.healer": entry["healer"], "healer.outcome": "duplicate",
                    "healer.resource": entry["resource"], "healer.subject": entry["subject"],
                    "healer.audit_id": f"{rep.partition}/{rep.row}"})
    try:
        _decisions_counter().add(n, {"healer": entry["healer"], "outcome": "duplicate"})
    except Exception:
        log.debug("metric emit failed", exc_info=True)


def _merge(rep: _Repeat, entry: dict[str, Any], n: int) -> int:
    """Add n to the durable record's count (insert, or ETag-guarded read-modify-write). Returns the new count."""
    from shared.state import Conflict
    for _ in range(8):
        current = rep.store.get(rep.partition, rep.row)
        if current is None:
            entry["details"]["count"] = n
            rec = Record(rep.partition, rep.row, entry, columns={"healer": entry["healer"], "outcome": "duplicate",
                                                                 "resource": entry["resource"].lower()})
            try:
                rep.store.insert(rec)
                return n
            except Conflict:
                continue
        count = int(current.data.get("details", {}).get("count", 0)) + n
        first = current.data.get("details", {}).get("first", entry["details"]["first"])
        current.data = {**entry, "details": {**entry["details"], "count": count, "first": first}}
        try:
            rep.store.replace(current)
            return count
        except Conflict:
            continue
    raise RuntimeError("repeat audit record kept changing")


def flush_repeats() -> None:
    """Write every pending repeat count now (tests, tools, and process exit)."""
    with _repeats_lock:
        keys = list(_repeats)
        for k in keys:
            if _repeats[k].timer is not None:
                _repeats[k].timer.cancel()
                _repeats[k].timer = None
    for k in keys:
        _flush(k)


atexit.register(flush_repeats)


def list_records(settings: Settings, *, day: dt.date, healer: str | None = None, outcome: str | None = None,
                 resource: str | None = None, limit: int = 100) -> Iterator[dict[str, Any]]:
    filters = {k: v for k, v in (("healer", healer), ("outcome", outcome),
                                 ("resource", resource.lower() if resource else None)) if v}
    for rec in Store(settings, "audit").query(day.strftime("%Y%m%d"), limit=limit, filters=filters):
        yield {"id": f"{rec.partition}/{rec.row}", **rec.data}
