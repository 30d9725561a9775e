"""HTTP and queue entry points of the rollback healer (wired in function_app.py)."""
from __future__ import annotations

import datetime as dt
import logging
import uuid

import azure.functions as func

from healers.rollback import shell
from healers.rollback.signal import parse_signal
from shared.alerts import PayloadError, parse_alert
from shared.api import caller_name
from shared.auth import Principal
from shared.config import Settings
from shared.http import BadRequest, problem, read_json, respond
from shared.intake_dedupe import queue_once_or_503
from shared.work import RetryLater, record_dead_letter, run_queue_message

log = logging.getLogger("healer.rollback")


def accept_alert(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    """Validate and enqueue; answer 202 at once. Deciding and swapping happen on the queue."""
    body = read_json(req, settings.max_body_bytes)
    try:
        alert = parse_alert(body)
    except PayloadError as exc:
        raise BadRequest(400, f"not an Azure Monitor alert Healer accepts: {exc}") from None
    # A repeat delivery of an alert already queued or decided is acknowledged without a second message.
    failed, intake = queue_once_or_503(settings, shell.HEALER, shell.intake_key(alert), shell.QUEUE,
                                       shell.work_message(alert, parse_signal(body)), f"alert {alert.alert_id}",
                                       decided=lambda: shell.is_decided(settings, alert), subject=alert.alert_id,
                                       resource=shell.target_hint(alert))
    return failed or respond(202, {"accepted": True, "alertId": alert.alert_id, "condition": alert.monitor_condition,
                                   "queue": shell.QUEUE, "duplicate": not intake.queued})


def rearm(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    body = read_json(req, settings.max_body_bytes)
    if not isinstance(body, dict) or not isinstance(body.get("resourceId"), str):
        raise BadRequest(400, "body must be {\"resourceId\": \"/subscriptions/.../sites/<app>\", \"by\": ..., "
                              "\"reason\": ...}")
    forget = body.get("forgetBuild")
    if forget is not None and (not isinstance(forget, str) or not forget or len(forget) > 1024):
        raise BadRequest(400, "forgetBuild must be the build marker value of one remembered bad build")
    by = caller_name(principal, body)
    try:
        result = shell.rearm(settings, body["resourceId"], by=by, reason=str(body.get("reason", ""))[:500],
                             now=dt.datetime.now(dt.UTC), forget_build=forget)
    except shell.Refused as exc:
        return problem(409 if "in flight" in str(exc) else 404, str(exc))
    except ValueError as exc:
        return problem(400, str(exc))
    except RetryLater as exc:
        return problem(409, exc.reason)
    return respond(200, result)


def process(msg: func.QueueMessage) -> str:
    settings = Settings()
    owner = f"{uuid.uuid4().hex[:12]}"
    return run_queue_message(settings, shell.QUEUE, msg.get_body(), msg.dequeue_count or 1,
                             lambda m: shell.handle(settings, m, owner=owner), shell.MAX_ATTEMPTS)


def dead_letter(msg: func.QueueMessage) -> str:
    """A message the rollback healer could not process: audited, notified, never lost."""
    return record_dead_letter(Settings(), shell.HEALER, msg.get_body(), msg.dequeue_count,
                              lambda m: m.get("alert", {}).get("alert_id", "") or m.get("incident", ""))
