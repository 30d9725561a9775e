"""HTTP, timer and queue entry points of the model-downshift healer (wired in function_app.py)."""
from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from typing import Any

import azure.functions as func

from healers.downshift import shell
from healers.downshift.budget import BudgetPayloadError, is_budget_alert, parse_budget_alert
from shared.alerts import PayloadError, parse_alert
from shared.api import caller_name, queue_or_503
from shared.auth import Principal
from shared.config import Settings
from shared.http import BadRequest, problem, read_json, respond
from shared.work import RetryLater, record_dead_letter, run_queue_message

log = logging.getLogger("healer.downshift")
MAX_DIMENSIONS = 20
_TENANT = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9._@-]{0,63})$")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def alert_dimensions(payload: Any) -> dict[str, str]:
    """The split dimensions of a common-schema metric or log alert (alertContext.condition.allOf[].dimensions)."""
    out: dict[str, str] = {}
    try:
        conditions = payload["data"]["alertContext"]["condition"]["allOf"]
    except (KeyError, TypeError):
        return out
    if not isinstance(conditions, list):
        return out
    for cond in conditions[:10]:
        dims = cond.get("dimensions") if isinstance(cond, dict) else None
        for d in (dims if isinstance(dims, list) else [])[:MAX_DIMENSIONS]:
            if isinstance(d, dict) and isinstance(d.get("name"), str) and isinstance(d.get("value"), str):
                out[d["name"][:64]] = d["value"][:64]
    return out


def accept_alert(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    """429-ratio / latency-SLO alerts (common or legacy metric schema), per app or split by tenant → 202."""
    body = read_json(req, settings.max_body_bytes)
    try:
        alert = parse_alert(body)
    except PayloadError as exc:
        raise BadRequest(400, f"not an Azure Monitor alert Healer accepts: {exc}") from None
    dims = alert_dimensions(body)
    failed = queue_or_503(settings, shell.QUEUE, shell.alert_message(alert, dims), f"alert {alert.alert_id}")
    return failed or respond(202, {"accepted": True, "alertId": alert.alert_id, "condition": alert.monitor_condition,
                                   "dimensions": dims, "queue": shell.QUEUE})


def accept_budget(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    """Cost Management budget alerts through an action group, legacy or common schema → 202."""
    body = read_json(req, settings.max_body_bytes)
    if not is_budget_alert(body):
        raise BadRequest(400, "not a Cost Management budget alert: expected schemaId 'AIP Budget Notification' or "
                              "the common alert schema with monitoringService 'CostAlerts'")
    try:
        alert = parse_budget_alert(body, _now())
    except BudgetPayloadError as exc:
        raise BadRequest(400, f"unreadable budget alert: {exc}") from None
    failed = queue_or_503(settings, shell.QUEUE, shell.budget_message(alert, _now()), f"alert {alert.alert_id} (budget)")
    return failed or respond(202, {"accepted": True, "alertId": alert.alert_id, "budget": alert.budget_name,
                                   "schema": alert.schema, "thresholdType": alert.threshold_type,
                                   "queue": shell.QUEUE})


def release(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    """POST /downshift/release {"resourceId", "tenant", "by", "reason"}: release a HELD (app, tenant); with
    `"unblock": true`, lift the tenant's block instead (no new block this period)."""
    body = read_json(req, settings.max_body_bytes)
    if not isinstance(body, dict) or not isinstance(body.get("resourceId"), str):
        raise BadRequest(400, "body must be {\"resourceId\": \"/subscriptions/.../sites/<app>\", \"tenant\": \"*\", "
                              "\"by\": ..., \"reason\": ...}")
    tenant = body.get("tenant", "*")
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise BadRequest(400, "tenant must be '*' or a tenant name")
    by = caller_name(principal, body)
    try:
        outcome = shell.release(settings, body["resourceId"], tenant, by=by, reason=str(body.get("reason", ""))[:500],
                                owner=f"release:{uuid.uuid4().hex[:8]}", unblock=body.get("unblock") is True)
    except shell.Refused as exc:
        return problem(404, str(exc))
    except RetryLater as exc:
        return problem(409, exc.reason)
    return respond(200, {"resourceId": body["resourceId"], "tenant": tenant, "outcome": outcome})


def timer(timer_request: func.TimerRequest) -> str:
    from shared import gate
    settings = Settings()
    if gate.config_refusal(settings, healer=shell.HEALER, subject="tick", what="plan the downshift tick"):
        return "refused"  # an invalid configuration acts on nothing (and is not read further)
    report = shell.tick(settings, owner=f"tick:{uuid.uuid4().hex[:8]}")
    log.info("downshift tick: %d apps, %d tenants, %d evaluations queued in %d messages (%d still queued from "
             "before), %d query round trips%s", report.apps, report.tenants, report.enqueued, report.messages,
             report.already_queued, report.round_trips,
             f"; spend unknown: {report.spend_error}" if report.spend_error else "")
    return f"enqueued {report.enqueued}"


def process(msg: func.QueueMessage) -> str:
    settings = Settings()
    owner = uuid.uuid4().hex[:12]
    return run_queue_message(settings, shell.QUEUE, msg.get_body(), msg.dequeue_count or 1,
                             lambda m: shell.handle(settings, m, owner=owner), shell.MAX_ATTEMPTS)


def dead_letter(msg: func.QueueMessage) -> str:
    """A message the downshift healer could not process: audited, notified, never lost."""
    def subject(m: dict[str, Any]) -> str:
        return str(m.get("tenant") or (m.get("dimensions") or {}).get("tenant") or "*")
    def resource(m: dict[str, Any]) -> str:
        props = (m.get("alert") or {}).get("custom_properties") or {}
        return str(m.get("app") or props.get(shell.TARGET_PROPERTY) or "")
    return record_dead_letter(Settings(), shell.HEALER, msg.get_body(), msg.dequeue_count, subject, resource)
