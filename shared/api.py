"""HTTP endpoints shared by all healers: audit listing, approvals, kill switch / dry-run controls."""
from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import azure.functions as func

from shared import approvals, audit, intake
from shared.auth import AuthError, Principal, authenticate
from shared.config import ConfigError, Settings
from shared.controls import read_mode, set_control
from shared.http import BadRequest, problem, read_json, respond
from shared.tracing import span, with_context
from shared.work import encode

log = logging.getLogger("healer.api")
Handler = Callable[[func.HttpRequest, Settings, Principal], func.HttpResponse]


def guarded(purpose: str, handler: Handler, req: func.HttpRequest) -> func.HttpResponse:
    """Authenticate, then run the handler; map known errors to 4xx/5xx with a reason. Anything unexpected is a
    logged, audited 500 carrying a correlation id, never a traceback (`internal_error`)."""
    settings = Settings()
    headers = dict(req.headers)
    try:
        with span(f"healer.http {purpose}", {k.lower(): v for k, v in headers.items()},
                  {"healer.route": _path(req.url)}):
            principal = authenticate(settings, headers, purpose)  # type: ignore[arg-type]
            return handler(req, settings, principal)
    except AuthError as exc:
        return problem(exc.status, exc.reason)
    except BadRequest as exc:
        return problem(exc.status, exc.reason)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return problem(500, f"Healer is misconfigured: {exc}")
    except Exception as exc:  # the catch-all: the fuzz tests make it unreachable in practice
        return internal_error(settings, req, exc)


AUDIT_WAIT_S = 2.0


def internal_error(settings: Settings, req: func.HttpRequest, exc: BaseException) -> func.HttpResponse:
    """A 500 with a correlation id: the traceback goes to the log, an audit record names the route and the
    exception type (waiting at most AUDIT_WAIT_S for storage), the caller sees only the id."""
    correlation = uuid.uuid4().hex
    route = _path(req.url or "")
    log.error("unexpected %s in %s %s (correlation id %s)", type(exc).__name__, req.method, route, correlation,
              exc_info=exc)

    def write() -> None:
        try:
            audit.record(settings, healer="api", outcome="failed", subject=correlation, resource=route,
                         reason=f"unexpected {type(exc).__name__} in {req.method} {route}")
        except Exception as audit_exc:
            log.error("could not audit correlation id %s: %s", correlation, type(audit_exc).__name__)
    worker = threading.Thread(target=write, name=f"audit-{correlation[:8]}", daemon=True)
    worker.start()
    worker.join(AUDIT_WAIT_S)
    return respond(500, {"error": "internal error: Healer logged and audited it", "correlationId": correlation},
                   headers={"x-correlation-id": correlation})


def _path(url: str) -> str:
    from urllib.parse import urlsplit
    try:
        return urlsplit(url).path[:200]
    except ValueError:
        return ""


def queue_or_503(settings: Settings, queue_name: str, message: dict[str, Any], what: str) -> func.HttpResponse | None:
    """Enqueue a webhook's work with the fail-fast intake policy (`shared.intake`): if storage does not answer within
    seconds, answer 503 so the sender retries rather than lose it or time out."""
    try:
        intake.send(settings, queue_name, encode(with_context(message)))
    except ConfigError:
        raise
    except Exception as exc:
        log.error("could not enqueue %s: %s", what, type(exc).__name__)
        return problem(503, f"could not queue the {what.split(' ')[0]}; retry")
    return None


def housekeeping(timer: func.TimerRequest) -> None:
    """Daily retention run (timer)."""
    from shared import housekeeping as hk
    hk.run(Settings(), _now())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def caller_name(principal: Principal, body: dict[str, Any]) -> str:
    """With function keys the caller names themself (recorded, not trusted); with Entra the token names them."""
    if principal.method == "entra":
        return principal.name
    by = body.get("by")
    if not isinstance(by, str) or not by.strip():
        raise BadRequest(400, "field 'by' (who is deciding) is required")
    return f"{by.strip()[:100]} (function key)"


def list_audit(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    params = req.params
    try:
        day = dt.date.fromisoformat(params["day"]) if params.get("day") else _now().date()
        limit = min(max(int(params.get("limit", "100")), 1), 1000)
    except ValueError:
        raise BadRequest(400, "day must be YYYY-MM-DD and limit an integer") from None
    records = list(audit.list_records(settings, day=day, healer=params.get("healer"),
                                      outcome=params.get("outcome"), resource=params.get("resource"), limit=limit))
    return respond(200, {"day": day.isoformat(), "count": len(records), "records": records})


def list_approvals(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    healer = req.route_params.get("healer") or ""
    return respond(200, {"healer": healer, "pending": approvals.list_pending(settings, healer)})


def decide_approval(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    healer, aid = req.route_params.get("healer", ""), req.route_params.get("id", "")
    body = read_json(req, settings.max_body_bytes)
    if not isinstance(body, dict) or body.get("decision") not in ("approve", "reject"):
        raise BadRequest(400, "body must be {\"decision\": \"approve\"|\"reject\", \"by\": ..., \"note\": ...}")
    by, now = caller_name(principal, body), _now()
    try:
        decided = approvals.decide(settings, healer=healer, aid=aid, approve=body["decision"] == "approve", by=by,
                                   note=str(body.get("note", "")), now=now)
    except approvals.ApprovalError as exc:
        return problem(409 if "already" in str(exc) or "changed" in str(exc) else 404, str(exc))
    if decided["status"] == "approved":
        failed = queue_or_503(settings, decided["queue"], {**decided["message"], "approvalId": aid},
                              f"approval {aid}")
        if failed:  # approved but nothing will run it: put it back so the approver's retry is not a 409
            try:
                approvals.reopen(settings, healer, aid)
            except Exception as exc:
                log.error("could not reopen approval %s after a queue failure: %s", aid, type(exc).__name__)
            return failed
    audit.record(settings, healer=healer, outcome="approved" if decided["status"] == "approved" else "rejected",
                 reason=f"{decided['action']} {decided['status']} by {by}", resource=decided["resource"],
                 subject=decided["subject"], details={"approvalId": aid, "note": decided.get("note", "")}, now=now)
    return respond(200, {k: v for k, v in decided.items() if k != "message"})


def get_controls(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    scope = req.params.get("scope") or None
    return respond(200, {"scope": scope or "global", **read_mode(settings, scope).model_dump()})


def put_controls(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    body = read_json(req, settings.max_body_bytes)
    if not isinstance(body, dict):
        raise BadRequest(400, "body must be a JSON object")
    kill, dry = body.get("kill"), body.get("dryRun")
    if kill is None and dry is None or any(v is not None and not isinstance(v, bool) for v in (kill, dry)):
        raise BadRequest(400, "set 'kill' and/or 'dryRun' to true or false")
    scope = body.get("scope") or None
    if scope is not None and (not isinstance(scope, str) or len(scope) > 600):
        raise BadRequest(400, "scope must be a resource id or omitted for global")
    by, now = caller_name(principal, body), _now()
    data = set_control(settings, scope.lower() if scope else None, kill=kill, dry_run=dry, by=by,
                       reason=str(body.get("reason", "")), now=now)
    audit.record(settings, healer="controls", outcome="recorded",
                 reason=f"controls for {scope or 'global'} set by {by}: kill={kill} dryRun={dry}",
                 resource=scope or "", details=data, now=now)
    return respond(200, data)


OPENAPI_FILE = Path(__file__).resolve().parent / "openapi.json"


@lru_cache(maxsize=1)
def _openapi_text() -> str:
    return OPENAPI_FILE.read_text(encoding="utf-8")


def get_openapi(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    """GET /api/openapi.json: the OpenAPI 3.1 description of every HTTP endpoint (a static file in the repo)."""
    return func.HttpResponse(body=_openapi_text(), status_code=200, mimetype="application/json")

