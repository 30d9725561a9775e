"""Webhook intake that absorbs repeat deliveries: an alert already queued (or decided) is acknowledged, not re-queued.

Azure Monitor alert storms deliver the same alert many times (several action groups, retries, re-fires). Each
repeat used to cost a queue message and a full worker pass. Now intake keeps, per (healer, key):

1. a bounded in-process cache of keys queued recently by this instance (`RecentKeys`): a hit answers 202 with no
   storage call at all;
2. the durable record, the source of truth every instance shares: an insert-if-absent marker in the `dedupe`
   table (partition `intake:<healer>`) written *before* the message is enqueued. A second instance (or this one
   after a restart) finds the marker and acknowledges without enqueueing.

A marker older than `REQUEUE_AFTER` whose work is not known to be decided is claimed again (ETag-guarded, so one
instance wins) and the work re-queued: a marker whose message was lost (a crash between marker and enqueue, or a
poisoned message) never silences the alert for good. The worker keeps its own durable dedupe, so a re-queued
message never acts twice. If the enqueue fails the marker is removed and the sender gets 503 (it retries).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from shared.config import Settings

log = logging.getLogger("healer.intake")
REQUEUE_AFTER = dt.timedelta(minutes=10)
CACHE_SIZE = 4096
CACHE_SECONDS = 300.0


class RecentKeys:
    """A thread-safe LRU of keys with an age limit: bounded memory, O(1) per call."""

    def __init__(self, size: int = CACHE_SIZE, seconds: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.size, self.seconds, self.clock = size, seconds, clock
        self._keys: OrderedDict[tuple[str, ...], float] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: tuple[str, ...]) -> bool:
        with self._lock:
            at = self._keys.get(key)
            if at is None:
                return False
            if self.clock() - at > self.seconds:
                del self._keys[key]
                return False
            return True

    def add(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._keys[key] = self.clock()
            self._keys.move_to_end(key)
            while len(self._keys) > self.size:
                self._keys.popitem(last=False)

    def discard(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()

    def __len__(self) -> int:
        return len(self._keys)


RECENT = RecentKeys()


@dataclass(frozen=True)
class Intake:
    """What intake did with one delivery."""
    queued: bool
    reason: str  # "queued" | "requeued" | "recent" (in-process cache) | "marked" (durable marker) | "decided"


def _cache_key(settings: Settings, healer: str, key: str) -> tuple[str, ...]:
    # Keyed on the storage the marker lives in, so tests and tools that repoint Healer never share entries.
    return (settings.get("AzureWebJobsStorage") or settings.get("AzureWebJobsStorage__accountName") or "",
            settings.table_prefix, healer, key)


def enqueue_once(settings: Settings, healer: str, key: str, queue_name: str, message: dict[str, Any], *,
                 decided: Callable[[], bool] = lambda: False, subject: str = "", resource: str = "",
                 now: dt.datetime | None = None) -> Intake:
    """Enqueue `message` unless work for (healer, key) is already queued or decided. Raises when the work could
    not be queued (the caller answers 503); a duplicate is never an error. Every absorbed repeat is audited
    (outcome `duplicate`, aggregated per subject and interval with a count, written off the request's path)."""
    ckey = _cache_key(settings, healer, key)
    got = Intake(False, "recent") if ckey in RECENT else _single_flight(
        ckey, lambda: _enqueue_once(settings, healer, key, queue_name, message, decided, now))
    if not got.queued:
        try:
            from shared import audit
            audit.record_repeat(settings, healer=healer, subject=subject or key, resource=resource,
                                reason=f"repeat delivery acknowledged at intake, not queued again ({got.reason})",
                                details={"stage": "intake", "key": key[:300]}, now=now, defer=True)
        except Exception:  # auditing a repeat must never fail the acknowledgement
            log.warning("could not audit a repeat delivery of %s", key[:100], exc_info=True)
    return got


def _enqueue_once(settings: Settings, healer: str, key: str, queue_name: str, message: dict[str, Any],
                  decided: Callable[[], bool], now: dt.datetime | None) -> Intake:
    from shared import intake
    from shared.state import Conflict, Record, Store, safe_key
    from shared.tracing import with_context
    from shared.work import encode
    ckey = _cache_key(settings, healer, key)
    t = now or dt.datetime.now(dt.UTC)
    store, part, row = Store(settings, "dedupe"), f"intake:{healer}", safe_key(key)
    marker = Record(part, row, {"status": "queued", "queuedAt": t.isoformat(), "key": key[:300]})
    reason = "queued"
    try:
        store.insert(marker)
    except Conflict:
        seen = store.get(part, row)
        if seen is not None:
            at = _time(seen.data.get("queuedAt"))
            if at is not None and t - at < REQUEUE_AFTER:
                RECENT.add(ckey)
                return Intake(False, "marked")
            if decided():
                RECENT.add(ckey)
                return Intake(False, "decided")
            seen.data.update(queuedAt=t.isoformat(), requeues=int(seen.data.get("requeues", 0)) + 1)
            try:
                store.replace(seen)  # ETag-guarded: of several instances, one re-queues
            except Conflict:
                RECENT.add(ckey)
                return Intake(False, "marked")
            marker, reason = seen, "requeued"
        else:  # removed meanwhile (a failed enqueue elsewhere, or retention): queue it
            store.upsert(marker)
    try:
        intake.send(settings, queue_name, encode(with_context(message)))  # fail-fast intake policy
    except Exception:
        try:
            store.delete(part, row)  # nothing was queued: the sender's retry must queue it
        except Exception:
            log.warning("could not remove the intake marker of %s after a failed enqueue", key[:100])
        raise
    RECENT.add(ckey)
    return Intake(True, reason)


_inflight: dict[tuple[str, ...], threading.Event] = {}
_inflight_lock = threading.Lock()
INFLIGHT_WAIT_SECONDS = 5.0


def _single_flight(ckey: tuple[str, ...], work: Callable[[], Intake]) -> Intake:
    """Concurrent first deliveries of one key in this process: one does the storage work, the others wait for it
    (bounded) and are then answered from the cache; if it failed, they try themselves."""
    with _inflight_lock:
        running = _inflight.get(ckey)
        if running is None:
            _inflight[ckey] = mine = threading.Event()
    if running is not None:
        running.wait(INFLIGHT_WAIT_SECONDS)
        if ckey in RECENT:
            return Intake(False, "recent")
        return work()
    try:
        return work()
    finally:
        with _inflight_lock:
            _inflight.pop(ckey, None)
        mine.set()


def _time(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def queue_once_or_503(settings: Settings, healer: str, key: str, queue_name: str, message: dict[str, Any], what: str,
                      *, decided: Callable[[], bool] = lambda: False, subject: str = "",
                      resource: str = "") -> tuple[Any, Intake | None]:
    """`enqueue_once` for a webhook: (None, what intake did), or (a 503 response, None) when storage failed so the
    sender retries rather than lose the delivery."""
    from shared.config import ConfigError
    from shared.http import problem
    try:
        return None, enqueue_once(settings, healer, key, queue_name, message, decided=decided, subject=subject,
                                  resource=resource)
    except ConfigError:
        raise
    except Exception as exc:
        log.error("could not enqueue %s: %s", what, type(exc).__name__)
        return problem(503, f"could not queue the {what.split(' ')[0]}; retry"), None
