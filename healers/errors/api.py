"""Entry points of the error-clustering healer (wired in function_app.py): timer, HTTP run request, queue worker."""
from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

import azure.functions as func

from healers.errors import shell
from shared import audit, gate
from shared.api import caller_name, queue_or_503
from shared.auth import Principal
from shared.config import Settings
from shared.http import BadRequest, read_json, respond
from shared.work import record_dead_letter, run_queue_message

log = logging.getLogger("healer.errors")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timer(timer_request: func.TimerRequest) -> str:
    """The daily run over the last HEALER_ERRORS_WINDOW_HOURS hours, ending at the last whole hour.

    Unreadable logs are audited and the run ends; any other failure (configuration, storage, GitHub) is audited
    (outcome `failed`, a reason without secrets) and re-raised so the host records the failed invocation."""
    settings = Settings()
    subject = "daily run"
    if gate.config_refusal(settings, healer=shell.HEALER, subject=subject, what="run the daily error clustering"):
        return "refused"
    try:
        cfg = shell.load_config(settings)
        window = shell.default_window(_now(), cfg.window_hours)
        subject = window.key
        report = shell.run(settings, window, trigger="timer")
    except shell.CollectError as exc:
        audit.record(settings, healer=shell.HEALER, outcome="failed", reason=exc.reason, subject=subject)
        return "failed"
    except Exception as exc:
        _audit_failure(settings, exc, subject)
        raise
    return report.outcome


def _audit_failure(settings: Settings, exc: Exception, subject: str) -> None:
    reason = f"daily run failed: {shell.failure_reason(exc)}"
    try:
        audit.record(settings, healer=shell.HEALER, outcome="failed", reason=reason, subject=subject)
    except Exception as audit_exc:  # storage itself is down: the log and the host's failed invocation remain
        log.error("%s (and it could not be audited: %s)", reason, type(audit_exc).__name__)


def request_run(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    """POST /errors/run {"start": ISO, "end": ISO, "by": ...} or {"hours": N, "by": ...} → 202, run on the queue."""
    body: Any = read_json(req, settings.max_body_bytes) if req.get_body() else {}
    if not isinstance(body, dict):
        raise BadRequest(400, "body must be a JSON object")
    by = caller_name(principal, body)
    now = _now()
    try:
        if body.get("start") or body.get("end"):
            window = shell.check_window(_when(body.get("start"), "start"), _when(body.get("end"), "end"), now)
        else:
            hours = _hours(body.get("hours")) if body.get("hours") is not None \
                else shell.load_config(settings).window_hours
            window = shell.default_window(now, hours)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRequest(400, f"bad window: {exc}") from None
    failed = queue_or_503(settings, shell.QUEUE, shell.work_message(window, by), f"run {window.key}")
    if failed:
        return failed
    audit.record(settings, healer=shell.HEALER, outcome="recorded", reason=f"run over {window.key} requested by {by}",
                 subject=window.key, now=now)
    return respond(202, {"accepted": True, "window": {"start": shell.iso(window.start), "end": shell.iso(window.end)},
                         "queue": shell.QUEUE})


def _when(value: Any, field: str) -> dt.datetime:
    """An ISO 8601 time with a UTC offset between the years 2000 and 2999 (year 1 at +14:00 overflows)."""
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError(f"{field} must be an ISO 8601 time with a UTC offset")
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError("start and end need a UTC offset")
    if not 2000 <= when.year <= 2999:
        raise ValueError(f"{field} must be between the years 2000 and 2999")
    return when


def _hours(value: Any) -> int:
    """1..168 whole hours (an integer, an integral number or a digit string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("hours must be a whole number 1..168")
    if isinstance(value, str):
        if not value.strip().isdigit() or len(value) > 6:
            raise ValueError("hours must be a whole number 1..168")
        value = int(value)
    if not (1 <= value <= 168) or value != int(value):
        raise ValueError("hours must be a whole number 1..168")
    return int(value)


def process(msg: func.QueueMessage) -> str:
    settings = Settings()
    return run_queue_message(settings, shell.QUEUE, msg.get_body(), msg.dequeue_count or 1,
                             lambda m: shell.handle(settings, m), shell.MAX_ATTEMPTS)


def dead_letter(msg: func.QueueMessage) -> str:
    """A run the healer could not finish: audited, notified, never lost."""
    return record_dead_letter(Settings(), shell.HEALER, msg.get_body(), msg.dequeue_count,
                              lambda m: f"{m.get('start', '')}/{m.get('end', '')}")

