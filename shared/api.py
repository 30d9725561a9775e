"""HTTP endpoints shared by all healers: audit listing, approvals, kill switch / dry-run controls."""
from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any
from collections.abc import Callable

import azure.functions as func

from shared import approvals, audit, intake
from shared.auth import AuthError, Principal, authenticate
from shared.config import ConfigError, Settings
from shared.controls import read_mode, set_control
from shared.http import BadRequest, problem, read_json, respond
from shared.tracing import span, with_context
from shared.version import __version__
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
    except ConfigError as exc:   # the configuration is invalid: Healer acts on nothing until it is fixed
        log.error("configuration error: %s", exc)
        return problem(503, f"Healer's configuration is invalid ({str(exc)[:500]}); GET /api/health lists every "
                            f"problem")
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
    return dt.datetime.now(dt.UTC)


def caller_name(principal: Principal, body: dict[str, Any]) -> str:
    """With the operator key the caller names themself (recorded, not trusted: any operator-key holder can approve);
    with Entra the token names them."""
    if principal.method == "entra":
        return principal.name
    by = body.get("by")
    if not isinstance(by, str) or not by.strip():
        raise BadRequest(400, "field 'by' (who is deciding) is required")
    return f"{by.strip()[:100]} ({principal.method})"


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


def _healer(req: func.HttpRequest) -> str:
    healer = (req.route_params.get("healer") or "").strip().lower()
    if healer not in approvals.HEALERS:
        raise BadRequest(404, f"no healer {healer[:40]!r}; healers are {', '.join(approvals.HEALERS)}")
    return healer


def _public(approval: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in approval.items() if k != "message"}


def list_approvals(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    """GET /approvals/{healer}: that healer's pending approvals (an unknown healer is 404)."""
    healer = _healer(req)
    return respond(200, {"healer": healer, "pending": [_public(a) for a in approvals.list_pending(settings, healer)]})


def list_all_approvals(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    """GET /approvals: pending approvals across every healer."""
    pending = [_public(a) for a in approvals.list_pending(settings, None)]
    return respond(200, {"count": len(pending), "pending": pending})


def health(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    """GET /health: 503 naming each broken setting and why while the configuration is invalid (Healer then acts on
    nothing); 200 with a summary when it is fine."""
    from shared import config_check
    found = config_check.problems(settings)
    if found:
        try:
            config_check.report(settings, found, _now())   # one config-invalid record per distinct problem set
        except Exception as exc:
            log.warning("could not record the configuration error: %s", type(exc).__name__)
        return respond(503, {"status": "configuration-invalid", "actsOnNothing": True, "version": __version__,
                             "problems": [p.as_dict() for p in found]})
    return respond(200, {"status": "ok", "version": __version__, "authMode": settings.auth_mode, "killSwitch": settings.kill_switch,
                         "dryRun": settings.dry_run, "operatorKey": not (settings.get("HEALER_OPERATOR_KEY") or "@Microsoft.KeyVault(").startswith(
                             "@Microsoft.KeyVault("),
                         "healers": {
                             "rollback": len(settings.rollback_targets), "downshift": len(settings.downshift_apps),
                             "replication": bool(settings.get("HEALER_REPLICATION_REGISTRIES")),
                             "errors": bool(settings.get("HEALER_ERRORS_GITHUB_REPOSITORY"))}})


def decide_approval(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    healer, aid = _healer(req), req.route_params.get("id", "")
    body = read_json(req, settings.max_body_bytes)
    if not isinstance(body, dict) or body.get("decision") not in ("approve", "reject"):
        raise BadRequest(400, "body must be {\"decision\": \"approve\"|\"reject\", \"by\": ..., \"note\": ...}")
    by = caller_name(principal, body)
    entra = principal.method == "entra"   # the token names the approver and carries their roles and groups
    status, result = decide_and_enqueue(settings, healer=healer, aid=aid, approve=body["decision"] == "approve",
                                        by=by, note=str(body.get("note", "")), now=_now(),
                                        roles=principal.roles if entra else None,
                                        groups=principal.groups if entra else None)
    return respond(status, result)


def decide_and_enqueue(settings: Settings, *, healer: str, aid: str, approve: bool, by: str, note: str,
                       now: dt.datetime, via: str = "api", roles: tuple[str, ...] | None = None,
                       groups: tuple[str, ...] | None = None) -> tuple[int, dict[str, Any]]:
    """Decide an approval, queue the approved work, audit the decision: the one path every way of deciding takes
    (this API, signed links). Returns (HTTP status, body): 200 with the approval, else {"error": reason}."""
    try:
        decided = approvals.decide(settings, healer=healer, aid=aid, approve=approve, by=by, note=note, now=now,
                                   roles=roles, groups=groups)
    except approvals.ApprovalError as exc:
        return exc.status, {"error": str(exc)}
    if decided["status"] == "approved":
        failed = queue_or_503(settings, decided["queue"], {**decided["message"], "approvalId": aid},
                              f"approval {aid}")
        if failed:  # approved but nothing will run it: put it back so the approver's retry is not a 409
            try:
                approvals.reopen(settings, healer, aid)
            except Exception as exc:
                log.error("could not reopen approval %s after a queue failure: %s", aid, type(exc).__name__)
            return 503, {"error": "could not queue the approval; retry"}
    audit.record(settings, healer=healer, outcome="approved" if decided["status"] == "approved" else "rejected",
                 reason=f"{decided['action']} {decided['status']} by {by}", resource=decided["resource"],
                 subject=decided["subject"], now=now,
                 details={"approvalId": aid, "note": decided.get("note", ""), "by": by, "via": via,
                          "approval": approvals.summary(decided)})
    return 200, _public(decided)

HEALER_SCOPES = ("rollback", "downshift", "replication", "errors")


def control_scope(scope: Any) -> str | None:
    """The one key a control scope is stored under: None (global), a healer's name, `registry:<name>`,
    `github:<owner>/<repo>`, or an Azure resource id in canonical form (an App Service slot maps to its app).
    Anything else is a 400: a scope Healer would never read must not look like a working kill switch."""
    from shared.resource_ids import app_scope
    if scope is None or (isinstance(scope, str) and scope.strip().lower() in ("", "global")):
        return None
    if not isinstance(scope, str) or len(scope) > 1024:
        raise BadRequest(400, "scope must be 'global', a healer name, or a resource id")
    s = scope.strip().lower()
    if s in HEALER_SCOPES:
        return s
    if re.fullmatch(r"registry:[a-z0-9]{5,50}", s) or re.fullmatch(r"github:[a-z0-9_.-]{1,100}/[a-z0-9_.-]{1,100}", s):
        return s
    try:
        return app_scope(s)
    except ValueError:
        raise BadRequest(400, f"scope {scope.strip()[:200]!r} is not a resource id (/subscriptions/...), 'global', a "
                              f"healer name ({', '.join(HEALER_SCOPES)}), registry:<name> or github:<owner>/<repo>") \
            from None


def get_controls(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    scope = control_scope(req.params.get("scope"))
    return respond(200, {"scope": scope or "global", **read_mode(settings, scope).model_dump()})


def put_controls(req: func.HttpRequest, settings: Settings, principal: Principal) -> func.HttpResponse:
    body = read_json(req, settings.max_body_bytes)
    if not isinstance(body, dict):
        raise BadRequest(400, "body must be a JSON object")
    kill, dry = body.get("kill"), body.get("dryRun")
    if (kill is None and dry is None) or any(v is not None and not isinstance(v, bool) for v in (kill, dry)):
        raise BadRequest(400, "set 'kill' and/or 'dryRun' to true or false")
    scope = control_scope(body.get("scope"))
    by, now = caller_name(principal, body), _now()
    data = set_control(settings, scope, kill=kill, dry_run=dry, by=by, reason=str(body.get("reason", "")), now=now)
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

