"""Trigger entry points of the replication healer (wired in function_app.py)."""
from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from healers.replication import shell
from healers.replication.events import EventParseError, ParsedEvent, parse_event, parse_trigger_event
from shared import audit, safejson
from shared.auth import Principal
from shared.config import Settings
from shared.http import BadRequest, problem, read_json, respond
from shared.work import record_dead_letter, run_queue_message

log = logging.getLogger("healer.replication")


def parse_function_event(event: Any) -> ParsedEvent:
    """What the Event Grid trigger hands over: `func.EventGridEvent` (Event Grid schema) or, since
    azure-functions 1.2x, `func.CloudEvent` when the subscription delivers CloudEvents 1.0."""
    if hasattr(event, "specversion"):
        time = event.time.isoformat() if getattr(event, "time", None) else None
        obj = {"specversion": event.specversion, "id": event.id, "type": event.type, "source": event.source,
               "subject": event.subject, "data": event.get_json()}
        if time:
            obj["time"] = time
        safejson.check_value(obj)
        return parse_event(obj)
    data = event.get_json()
    safejson.check_value(data)   # depth, number, string and size limits, as for every other entry point
    return parse_trigger_event(id=event.id, event_type=event.event_type, subject=event.subject, topic=event.topic,
                               event_time=event.event_time, data=data)


def on_event(event: Any) -> str:
    """Event Grid trigger. Malformed events are refused and audited (retrying cannot fix them); storage
    failures raise, so the host fails the invocation and Event Grid retries the delivery."""
    settings = Settings()
    try:
        parsed = parse_function_event(event)
    except (EventParseError, ValueError) as exc:  # ValueError: the data broke a shared.safejson limit
        event_id = str(getattr(event, "id", "") or "")[:200]
        event_type = str(getattr(event, "event_type", None) or getattr(event, "type", "") or "")[:200]
        audit.record(settings, healer=shell.HEALER, outcome="refused", reason=f"malformed ACR event: {exc}",
                     subject=event_id, details={"eventType": event_type})
        return "refused"
    return shell.accept(settings, parsed)


def process(msg: func.QueueMessage) -> str:
    settings = Settings()
    return run_queue_message(settings, shell.QUEUE, msg.get_body(), msg.dequeue_count or 1,
                             lambda m: shell.handle_check(settings, m), shell.MAX_ATTEMPTS)


def dead_letter(msg: func.QueueMessage) -> str:
    """A check the healer could not run: audited and told to a human. Its wait is marked so that the status endpoint
    reports it stalled and restarts its check chain."""
    def wait_of(m: dict[str, Any]) -> str:
        registry = str(m.get("registry", ""))[:100]
        return f"{registry}/{str(m.get('repository', ''))[:256]}@{str(m.get('digest', ''))[:200]}" if registry else ""
    settings = Settings()
    result = record_dead_letter(settings, shell.HEALER, msg.get_body(), msg.dequeue_count, resource_of=wait_of)
    try:   # after the audit, which must never be lost: mark the wait stalled for the status endpoint
        shell.note_dead_letter(settings, msg.get_body())
    except Exception:
        log.warning("could not mark the wait of a dead-lettered check as stalled", exc_info=True)
    return result


def get_status(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    """GET /api/replication/status?registry=&repository=&digest=|tag= → pending / ready / timed-out / tag-race, or
    stalled (a dead check chain, restarted by this request)."""
    p = req.params
    try:
        view = shell.status(settings, registry=p.get("registry"), repository=p.get("repository"),
                            digest=p.get("digest") or None, tag=p.get("tag") or None)
    except shell.StatusError as exc:
        return problem(exc.status, exc.reason)
    return respond(200, view)


MAX_WAIT_BODY = 4096


def post_wait(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    """POST /api/replication/waits {registry, repository, digest | tag}: open or join the wait an Event Grid
    delivery would → 202 with the status URL (Location) to poll."""
    try:
        body = read_json(req, MAX_WAIT_BODY)
        from healers.replication.waits import open_wait
        result = open_wait(settings, body)
    except BadRequest as exc:
        return problem(exc.status, exc.reason)
    except shell.StatusError as exc:
        return problem(exc.status, exc.reason)
    return respond(202, result, headers={"Location": result["statusUrl"]})
