"""Notifications driven by the audit trail: every audit record that changes something or needs a human is told to
each destination whose routing rule wants it (`shared.notify_config`), exactly once per destination.

`audit.record` calls `plan` (which destinations; their names are stored in the record as `notifications`) and,
once the record is durable, `dispatch`: one message per destination on the `healer-notify` queue. Nothing here
ever raises into a decision. The `notify_worker` function delivers (`deliver`): it claims (destination, record)
insert-if-absent in the `notified` table, renders the format, POSTs, and marks it sent, so a redelivered message or
a retried decision never sends twice (a crash between the POST and the mark may repeat one). An approval request
is keyed on the approval id, so one approval is asked once however many "pending" records it gets.
Transient failures (network, 408, 429, 5xx) come back with a growing delay; a destination that refuses the
payload (other 4xx) or keeps failing is dead-lettered, and `healer-notify-poison` audits it (healer `notify`,
whose records never notify: no loops). Webhook URLs are secrets: never logged, audited or queued.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
from typing import Any

from shared.config import ConfigError, Settings
from shared.notify_config import Destination, destinations, route
from shared.notify_render import RENDERERS, approval_id_of, approval_of, build_notice, incident_of

log = logging.getLogger("healer.notify")
QUEUE = "healer-notify"
MAX_ATTEMPTS = 8
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 900.0
CLAIM_SECONDS = 60
_DETAIL_KEYS = ("approval", "approvalId", "attention", "attentionText", "attentionKind", "incidentId", "rule", "tenant", "from", "to", "by", "note",
                "via", "condition")


def plan(settings: Settings, entry: dict[str, Any]) -> list[str]:
    """Names of the destinations this record goes to. Never raises (a broken setting is logged, nothing sent)."""
    try:
        return [d.name for d in route(destinations(settings), entry)]
    except ConfigError as exc:
        log.error("notifications are off for this record: %s", exc)
    except Exception as exc:
        log.error("notification routing failed: %s", type(exc).__name__)
    return []


def _slim(entry: dict[str, Any]) -> dict[str, Any]:
    """What a delivery needs from the record, bounded for a queue message."""
    details = entry.get("details") if isinstance(entry.get("details"), dict) else {}
    kept: dict[str, Any] = {}
    for key in _DETAIL_KEYS:
        value = details.get(key)
        if isinstance(value, dict):
            kept[key] = {str(k)[:40]: str(v)[:600] for k, v in list(value.items())[:12]}
        elif isinstance(value, (str, int, float, bool)) and value not in ("", None):
            kept[key] = value if not isinstance(value, str) else value[:600]
    return {"id": entry.get("id"), "at": entry.get("at"), "healer": entry.get("healer"),
            "outcome": entry.get("outcome"), "reason": str(entry.get("reason", ""))[:2000],
            "resource": str(entry.get("resource", ""))[:600], "subject": str(entry.get("subject", ""))[:300],
            "details": kept}


def dispatch(settings: Settings, entry: dict[str, Any], names: list[str]) -> None:
    """Queue one delivery per destination for a durable audit record. Never raises."""
    from shared.work import enqueue
    slim = _slim(entry)
    for name in names:
        message = {"v": 1, "kind": "notify", "destination": name, "entry": slim, "attempt": 0}
        try:
            enqueue(settings, QUEUE, message)
        except Exception as exc:  # the queue is down: try once inline rather than lose it
            log.error("could not queue a notification to %s: %s; delivering inline", name, type(exc).__name__)
            try:
                deliver(settings, message)
            except Exception as inner:
                log.error("inline notification to %s failed: %s", name, type(inner).__name__)


def delivery_key(entry: dict[str, Any]) -> str:
    """One approval request per approval (an expired approval parked again under the same id is a new request:
    its expiry differs); otherwise one notification per audit record."""
    aid = approval_id_of(entry)
    if entry.get("outcome") == "pending" and aid:
        expires = (approval_of(entry) or {}).get("expiresAt") or ""
        return f"approval:{entry.get('healer')}:{aid}:{expires}"
    return f"audit:{entry.get('id')}"


def _backoff(attempt: int) -> float:
    return min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempt, 0)) * (0.75 + random.random() / 2)


def _find(settings: Settings, name: str) -> Destination | None:
    return next((d for d in destinations(settings) if d.name == name), None)


def _approval_for(settings: Settings, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The approval a record is about; for a request, as stored (its approvers decide whether links are offered)."""
    approval = approval_of(entry)
    if approval and approval.get("expiresAt") and entry.get("outcome") != "pending":
        return approval
    aid = approval_id_of(entry)
    if not aid:
        return None
    from shared import approvals
    rec = approvals.get(settings, str((approval or {}).get("healer") or entry.get("healer", "")), aid)
    if rec is None:
        return approval
    stored = {k: v for k, v in rec.data.items() if k != "message"}
    return {**stored, **(approval or {})}  # the record's own view of this request (its expiry) wins


def render(settings: Settings, dest: Destination, entry: dict[str, Any]) -> dict[str, Any]:
    """The payload for one destination (links signed here, never stored on the queue)."""
    from shared import approval_links
    approval = _approval_for(settings, entry)
    links: dict[str, str] = {}
    base: str | None = None
    try:
        base = approval_links.base_url_of(settings)
    except ConfigError:
        pass
    if approval and entry.get("outcome") == "pending":
        try:
            links = approval_links.links_for(settings, {**approval, "healer": approval.get("healer")
                                                        or entry.get("healer")})
        except (ConfigError, KeyError, ValueError) as exc:
            log.warning("approval links left out: %s", exc if isinstance(exc, ConfigError) else type(exc).__name__)
    return RENDERERS[dest.format](build_notice(entry, approval, links, base))


def deliver(settings: Settings, message: dict[str, Any], now: dt.datetime | None = None) -> str:
    """Deliver one queued notification. Returns 'sent' or 'duplicate'; raises RetryLater / Discard."""
    import httpx
    from shared.state import Conflict, Record, Store, safe_key
    from shared.work import Discard, RetryLater
    now = now or dt.datetime.now(dt.UTC)
    entry, name = message.get("entry"), str(message.get("destination", ""))
    if not isinstance(entry, dict) or not entry.get("id"):
        raise Discard("notification message without an audit record")
    dest = _find(settings, name)
    if dest is None:
        raise Discard(f"destination {name[:48]!r} is no longer configured")
    payload = render(settings, dest, entry)  # before claiming: a failure here leaves nothing half-claimed
    store = Store(settings, "notified")
    rec = Record(safe_key(name), safe_key(delivery_key(entry)),
                 {"status": "sending", "at": now.isoformat(), "auditId": entry["id"],
                  "incident": incident_of(entry)})
    try:
        store.insert(rec)
    except Conflict:
        seen = store.get(rec.partition, rec.row)
        if seen is None:
            raise RetryLater(1, "delivery record vanished; retry") from None
        if seen.data.get("status") == "sent":
            return "duplicate"
        started = dt.datetime.fromisoformat(seen.data.get("at", now.isoformat()))
        if seen.data.get("status") == "sending" and now - started < dt.timedelta(seconds=CLAIM_SECONDS):
            raise RetryLater(CLAIM_SECONDS, f"another worker is delivering to {name}") from None
        seen.data.update(status="sending", at=now.isoformat())
        try:
            rec = store.replace(seen)
        except Conflict:
            raise RetryLater(CLAIM_SECONDS, f"another worker is delivering to {name}") from None
    attempt = int(message.get("attempt", 0))
    try:
        resp = httpx.post(dest.url, json=payload, timeout=10.0)
        problem = None if resp.status_code < 300 else f"HTTP {resp.status_code} {resp.text[:120]!r}"
        retryable = resp.status_code in (408, 429) or resp.status_code >= 500
    except httpx.HTTPError as exc:
        problem, retryable = type(exc).__name__, True  # never str(exc): it may carry the URL
    if problem is None:
        rec.data.update(status="sent", sentAt=dt.datetime.now(dt.UTC).isoformat(), attempts=attempt + 1)
        try:
            store.replace(rec)
        except Conflict:
            pass
        return "sent"
    rec.data.update(status="failed", lastError=problem, attempts=attempt + 1)
    try:
        store.replace(rec)
    except Conflict:
        pass
    log.warning("notification to %s failed (attempt %d): %s", name, attempt + 1, problem)
    reason = f"delivery to {dest.name} ({dest.format}) failed: {problem}"
    if not retryable:
        raise Discard(reason + " (the destination refused the payload; retrying cannot help)")
    raise RetryLater(_backoff(attempt), reason)


def purge(settings: Settings, older_than: dt.datetime) -> int:
    """Retention of delivery records and consumed approval links (housekeeping). Never raises."""
    from shared.state import Store, safe_key
    removed = 0
    try:
        names = [d.name for d in destinations(settings)]
    except ConfigError:
        names = []
    try:
        notified = Store(settings, "notified")
        for name in names:
            removed += notified.purge(safe_key(name), older_than=older_than)
        from shared.approval_links import USED
        removed += Store(settings, "links").purge(USED, older_than=older_than)
    except Exception as exc:
        log.error("notification retention failed: %s", type(exc).__name__)
    return removed


# ---------------------------------------------------------------------------------------------- triggers

def process(body: bytes, dequeue_count: int | None) -> str:
    """The `healer-notify` queue trigger."""
    from shared.work import run_queue_message
    settings = Settings()
    return run_queue_message(settings, QUEUE, body, dequeue_count or 1, lambda m: deliver(settings, m),
                             MAX_ATTEMPTS)


def dead_letter(body: bytes, dequeue_count: int | None) -> str:
    """The `healer-notify-poison` trigger: audit the undeliverable notification (healer `notify`: never notified)."""
    from shared.work import record_dead_letter
    return record_dead_letter(Settings(), "notify", body, dequeue_count,
                              lambda m: f"{m.get('destination', '')}:{(m.get('entry') or {}).get('id', '')}",
                              lambda m: (m.get("entry") or {}).get("resource", ""))
