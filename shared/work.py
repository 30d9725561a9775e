"""Work messages on Storage queues: enqueue, retry later without blocking, dead-letter.

Queue-triggered functions never sleep to wait: a handler that must wait raises `RetryLater`, and the trigger
re-enqueues the message with a visibility delay and an incremented attempt count. Past `max_attempts` the message
goes to `<queue>-poison`, where the dead-letter handler audits it (and the audit record tells a human).
"""
from __future__ import annotations

import json
import random
from typing import Any
from collections.abc import Callable

from shared import safejson
from shared.config import ConfigError, Settings
from shared.storage import queue
from shared.tracing import TRACE_FIELD, span, with_context

MAX_VISIBILITY_SECONDS = 7 * 24 * 3600 - 1
MAX_MESSAGE_BYTES = 64 * 1024
# What a handler raises when a message is JSON but not one it can read (pydantic's ValidationError is a ValueError).
MALFORMED = (KeyError, IndexError, TypeError, AttributeError, ValueError, ArithmeticError, RecursionError)  # Azure Storage queue messages are at most 64 KiB


class RetryLater(Exception):
    def __init__(self, delay_seconds: float, reason: str):
        super().__init__(reason)
        self.delay_seconds = delay_seconds
        self.reason = reason


def busy_delay(attempt: int, *, base: float = 2.0, factor: float = 1.6, cap: float = 120.0) -> float:
    """Delay before retrying work that found its resource busy: short at first (a live holder finishes soon), growing
    so that a dead holder's lease expires long before the attempts run out. Jittered."""
    return min(cap, base * factor ** max(attempt, 0)) * (0.75 + random.random() / 2)


class Discard(Exception):
    """The message cannot be processed and retrying will not help: dead-letter it with this reason."""


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode()


def enqueue(settings: Settings, queue_name: str, message: dict[str, Any], delay_seconds: float = 0) -> None:
    delay = int(min(max(delay_seconds, 0), MAX_VISIBILITY_SECONDS))
    queue(settings, queue_name).send_message(encode(with_context(message)), visibility_timeout=delay or None)


def retry(settings: Settings, queue_name: str, message: dict[str, Any], delay_seconds: float, reason: str,
          max_attempts: int) -> bool:
    """Re-enqueue with attempt+1 after a delay. False (and dead-lettered) once attempts are exhausted."""
    previous = message.get("attempt", 0)
    attempt = (previous if isinstance(previous, int) and not isinstance(previous, bool) and previous >= 0 else 0) + 1
    if attempt > max_attempts:
        dead_letter(settings, queue_name, message, f"gave up after {max_attempts} attempts: {reason}")
        return False
    enqueue(settings, queue_name, {**message, "attempt": attempt, "lastRetryReason": reason[:300]}, delay_seconds)
    return True


def dead_letter(settings: Settings, queue_name: str, message: dict[str, Any], reason: str) -> None:
    enqueue(settings, f"{queue_name}-poison", {**message, "deadLetterReason": reason[:500]})


def run_queue_message(settings: Settings, queue_name: str, body: bytes, dequeue_count: int,
                      handler: Callable[[dict[str, Any]], str], max_attempts: int) -> str:
    """The common body of every queue-triggered function.

    Malformed messages (not JSON within `shared.safejson`'s limits, or JSON the handler cannot read: `MALFORMED`)
    are dead-lettered at once (retrying cannot fix them); `RetryLater` re-enqueues with a delay; any other exception
    (storage, ARM, configuration) propagates so the Functions host retries and finally poisons the message.
    """
    try:
        message = safejson.loads(body, MAX_MESSAGE_BYTES)
        if not isinstance(message, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:  # JsonLimitError names the limit broken
        dead_letter(settings, queue_name, {"raw": body[:2000].decode("utf-8", "replace")},
                    f"malformed message: {exc}")
        return "dead-letter"
    attempt = message.get("attempt")
    try:
        with span(f"healer.queue {queue_name}", message.get(TRACE_FIELD),
                  {"healer.queue": queue_name, "healer.attempt": attempt if isinstance(attempt, int) else None}):
            return handler(message)
    except Discard as exc:
        dead_letter(settings, queue_name, message, str(exc))
        return "dead-letter"
    except RetryLater as exc:
        return "retry" if retry(settings, queue_name, message, exc.delay_seconds, exc.reason, max_attempts) \
            else "dead-letter"
    except MALFORMED as exc:
        if isinstance(exc, ConfigError):
            remember_error(settings, body, exc, dequeue_count)
            raise   # Healer's own configuration: the host retries, then the poison handler audits it
        # the message is well-formed JSON but not a message this worker can read: retrying cannot fix it
        dead_letter(settings, queue_name, message, f"malformed message: {type(exc).__name__}: {str(exc)[:300]}")
        return "dead-letter"
    except Exception as exc:
        remember_error(settings, body, exc, dequeue_count)
        raise


_ERRORS_PARTITION = "last-error"
MAX_ERROR_TEXT = 500


def describe(exc: BaseException) -> str:
    """The real exception type and message, bounded and redacted (what a dead-letter record carries)."""
    from healers.errors.redact import redact
    text = redact(str(exc))[:MAX_ERROR_TEXT] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _body_key(body: bytes) -> str:
    import hashlib
    return hashlib.sha256(body).hexdigest()[:40]


def remember_error(settings: Settings, body: bytes, exc: BaseException, dequeue_count: int) -> None:
    """Keep the last failure of a message the host retries (and finally poisons) so the dead-letter record can say
    what went wrong. Best effort: the exception still propagates to the host."""
    try:
        from shared.state import Record, Store
        Store(settings, "dedupe").upsert(Record(_ERRORS_PARTITION, _body_key(body),
                                                {"error": describe(exc), "dequeueCount": dequeue_count}))
    except Exception:  # storage trouble must not mask the handler's own exception
        pass


def last_error(settings: Settings, body: bytes) -> str | None:
    try:
        from shared.state import Store
        rec = Store(settings, "dedupe").get(_ERRORS_PARTITION, _body_key(body))
    except Exception:
        return None
    return str(rec.data.get("error")) if rec else None



def record_dead_letter(settings: Settings, healer: str, body: bytes, dequeue_count: int | None,
                       subject_of: Callable[[dict[str, Any]], str] = lambda m: "",
                       resource_of: Callable[[dict[str, Any]], str] = lambda m: "") -> str:
    """The poison-queue handler every healer uses: audit the message loudly and tell a human. Never lost."""
    from shared import audit
    try:
        message: Any = safejson.loads(body, MAX_MESSAGE_BYTES)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        message = {"raw": body[:2000].decode("utf-8", "replace")}
    reason = str(message.get("deadLetterReason") or f"failed {dequeue_count or '?'} times in the Functions host")
    error = None if message.get("deadLetterReason") else last_error(settings, body)
    if error:
        reason += f"; last error: {error}"
    def field(of: Callable[[dict[str, Any]], str], limit: int) -> str:
        try:
            return str(of(message) or "")[:limit]
        except Exception:  # a malformed message must still be recorded
            return ""
    subject, resource = field(subject_of, 300), field(resource_of, 600)
    # The dead-letter record itself notifies (shared.notify), except the notifier's own (no loops).
    audit.record(settings, healer=healer, outcome="dead-letter", reason=reason, subject=subject, resource=resource,
                 details={"message": message, **({"error": error} if error else {})})
    return "dead-letter"
