"""Healer's Azure Functions app: every trigger, and nothing else. Each function hands off to a healer or to shared.

Routes (all under /api, function-key protected; in HEALER_AUTH_MODE=entra an Entra ID token is required too):
  POST /alerts/rollback                  Azure Monitor action group webhook (common or legacy metric schema) → 202
  POST /rollback/rearm                   clear an app's rollback latch
  GET  /audit                            the audit trail (?day=YYYY-MM-DD&healer=&outcome=&resource=&limit=)
  GET  /approvals                        pending "ask" actions across healers
  GET  /approvals/{healer}               pending "ask" actions of one healer (unknown healer: 404)
  GET  /health                           200 summary, or 503 naming each broken setting (Healer then acts on nothing)
  POST /approvals/{healer}/{id}          approve or reject one
  GET  /controls, POST /controls         kill switch and dry-run, global or per resource
  GET  /openapi.json                     the OpenAPI 3.1 description of every HTTP endpoint (shared/openapi.json)
Timer housekeeping (%HEALER_HOUSEKEEPING_SCHEDULE%): audit and dedupe retention.
  GET  /replication/status             replication wait of a pushed/deleted image (?registry=&repository=&digest=|tag=)
  POST /replication/waits              open or join a replication wait on demand (intake key) → 202 + status URL
Event Grid: replication_events (ACR ImagePushed / ImageDeleted, via /runtime/webhooks/eventgrid).
Queues: healer-rollback (work), healer-rollback-poison (dead letters); healer-replication (checks),
healer-replication-poison.
Errors (issue 5): POST /errors/run (a chosen window → queue healer-errors, dead letters healer-errors-poison);
timer errors_daily on %HEALER_ERRORS_SCHEDULE%.
Downshift (issue 3): POST /alerts/downshift (429 / latency alerts), POST /alerts/budget (Cost Management budgets),
POST /downshift/release (release a HELD app/tenant); timer downshift_tick on %HEALER_DOWNSHIFT_SCHEDULE%;
queue healer-downshift, dead letters healer-downshift-poison.
Notifications (issue 9): queue healer-notify (one delivery per audit record and destination), dead letters
healer-notify-poison; GET/POST /approval-link?t=<signed token> (ANONYMOUS: the HMAC signature is the credential).
"""
from __future__ import annotations

import os
import threading
from importlib import import_module
from typing import Any

import azure.functions as func

# Cold start: only azure.functions is imported here. Each healer's module graph (pydantic models, SDK clients) is
# imported by the first invocation of a function that uses it, so an app that runs only webhooks, or only one
# healer's worker, never pays for the others. Telemetry is configured at start-up only when it is switched on.
if os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
    from shared.config import Settings
    from shared.telemetry import configure as configure_telemetry
    configure_telemetry(Settings())


def _check_configuration() -> None:
    from shared.config_check import check_at_start
    check_at_start()


# Every HEALER_* setting is validated when the app loads (problems logged loudly; the gate refuses every action and
# /api/health answers 503 while any remain) — on a thread, so loading the app does not wait for the healers' modules.
threading.Thread(target=_check_configuration, name="healer-config-check", daemon=True).start()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
STORAGE = "AzureWebJobsStorage"


def _entry(module: str, name: str) -> Any:
    """`module.name`, imported on first use (Python caches the module after that)."""
    return getattr(import_module(module), name)


def _timer_ran(name: str, timer: func.TimerRequest) -> None:
    """The timer heartbeat (shared.timers.ran), imported on first use."""
    from shared.config import Settings
    _entry("shared.timers", "ran")(Settings(), name, timer)


def _guarded(purpose: str, module: str, name: str, req: func.HttpRequest) -> func.HttpResponse:
    """Authenticate and run an HTTP handler of `module` (shared.api.guarded), importing both on first use."""
    return _entry("shared.api", "guarded")(purpose, _entry(module, name), req)


ROLLBACK, DOWNSHIFT, REPLICATION, ERRORS, SHARED = ("healers.rollback.api", "healers.downshift.api",
                                                    "healers.replication.api", "healers.errors.api", "shared.api")


# ---------------------------------------------------------------------------------------------- rollback

@app.function_name("rollback_alert")
@app.route(route="alerts/rollback", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def rollback_alert(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("webhook", ROLLBACK, "accept_alert", req)


@app.function_name("rollback_worker")
@app.queue_trigger(arg_name="msg", queue_name="healer-rollback", connection=STORAGE)
def rollback_worker(msg: func.QueueMessage) -> None:
    _entry(ROLLBACK, "process")(msg)


@app.function_name("rollback_dead_letter")
@app.queue_trigger(arg_name="msg", queue_name="healer-rollback-poison", connection=STORAGE)
def rollback_dead_letter(msg: func.QueueMessage) -> None:
    _entry(ROLLBACK, "dead_letter")(msg)


@app.function_name("rollback_rearm")
@app.route(route="rollback/rearm", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def rollback_rearm(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("approver", ROLLBACK, "rearm", req)


# ---------------------------------------------------------------------------------------------- shared

@app.function_name("audit_list")
@app.route(route="audit", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def audit_list(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("reader", SHARED, "list_audit", req)


@app.function_name("approvals_all")
@app.route(route="approvals", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def approvals_all(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("reader", SHARED, "list_all_approvals", req)


@app.function_name("health")
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("reader", SHARED, "health", req)


@app.function_name("approvals_list")
@app.route(route="approvals/{healer}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def approvals_list(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("reader", SHARED, "list_approvals", req)


@app.function_name("approvals_decide")
@app.route(route="approvals/{healer}/{id}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def approvals_decide(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("approver", SHARED, "decide_approval", req)


@app.function_name("controls_get")
@app.route(route="controls", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def controls_get(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("reader", SHARED, "get_controls", req)


@app.function_name("controls_set")
@app.route(route="controls", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def controls_set(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("approver", SHARED, "put_controls", req)


@app.function_name("openapi")
@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("reader", SHARED, "get_openapi", req)


@app.function_name("console_page")
@app.route(route="console", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console_page(req: func.HttpRequest) -> func.HttpResponse:
    from shared import console
    return console.page(req)


@app.function_name("console_asset")
@app.route(route="console/{file}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console_asset(req: func.HttpRequest) -> func.HttpResponse:
    from shared import console
    return console.page(req)


@app.function_name("session")
@app.route(route="session", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def session(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("reader", "shared.console", "session", req)


@app.function_name("housekeeping")
@app.timer_trigger(schedule="%HEALER_HOUSEKEEPING_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def housekeeping(timer: func.TimerRequest) -> None:
    _timer_ran("housekeeping", timer)
    _entry(SHARED, "housekeeping")(timer)


# ---------------------------------------------------------------------------------------------- downshift (issue 3)

@app.function_name("downshift_alert")
@app.route(route="alerts/downshift", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def downshift_alert(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("webhook", DOWNSHIFT, "accept_alert", req)


@app.function_name("downshift_budget")
@app.route(route="alerts/budget", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def downshift_budget(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("webhook", DOWNSHIFT, "accept_budget", req)


@app.function_name("downshift_tick")
@app.timer_trigger(schedule="%HEALER_DOWNSHIFT_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def downshift_tick(timer: func.TimerRequest) -> None:
    _timer_ran("downshift_tick", timer)
    _entry(DOWNSHIFT, "timer")(timer)


@app.function_name("downshift_worker")
@app.queue_trigger(arg_name="msg", queue_name="healer-downshift", connection=STORAGE)
def downshift_worker(msg: func.QueueMessage) -> None:
    _entry(DOWNSHIFT, "process")(msg)


@app.function_name("downshift_dead_letter")
@app.queue_trigger(arg_name="msg", queue_name="healer-downshift-poison", connection=STORAGE)
def downshift_dead_letter(msg: func.QueueMessage) -> None:
    _entry(DOWNSHIFT, "dead_letter")(msg)


@app.function_name("downshift_release")
@app.route(route="downshift/release", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def downshift_release(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("approver", DOWNSHIFT, "release", req)


# ---------------------------------------------------------------------------------------------- replication (issue 4)


@app.function_name("replication_events")
@app.event_grid_trigger(arg_name="event")
def replication_events(event: func.EventGridEvent) -> None:
    _entry(REPLICATION, "on_event")(event)


@app.function_name("replication_worker")
@app.queue_trigger(arg_name="msg", queue_name="healer-replication", connection=STORAGE)
def replication_worker(msg: func.QueueMessage) -> None:
    _entry(REPLICATION, "process")(msg)


@app.function_name("replication_dead_letter")
@app.queue_trigger(arg_name="msg", queue_name="healer-replication-poison", connection=STORAGE)
def replication_dead_letter(msg: func.QueueMessage) -> None:
    _entry(REPLICATION, "dead_letter")(msg)


@app.function_name("replication_waits")
@app.route(route="replication/waits", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def replication_waits(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("webhook", REPLICATION, "post_wait", req)


@app.function_name("replication_status")
@app.route(route="replication/status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def replication_status(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("reader", REPLICATION, "get_status", req)


# ---------------------------------------------------------------------------------------------- errors (issue 5)


@app.function_name("errors_daily")
@app.timer_trigger(schedule="%HEALER_ERRORS_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def errors_daily(timer: func.TimerRequest) -> None:
    _timer_ran("errors_daily", timer)
    _entry(ERRORS, "timer")(timer)


@app.function_name("errors_run")
@app.route(route="errors/run", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def errors_run(req: func.HttpRequest) -> func.HttpResponse:
    return _guarded("approver", ERRORS, "request_run", req)


@app.function_name("errors_worker")
@app.queue_trigger(arg_name="msg", queue_name="healer-errors", connection=STORAGE)
def errors_worker(msg: func.QueueMessage) -> None:
    _entry(ERRORS, "process")(msg)


@app.function_name("errors_dead_letter")
@app.queue_trigger(arg_name="msg", queue_name="healer-errors-poison", connection=STORAGE)
def errors_dead_letter(msg: func.QueueMessage) -> None:
    _entry(ERRORS, "dead_letter")(msg)


# ---------------------------------------------------------------------------------------------- notifications (issue 9)


@app.function_name("notify_worker")
@app.queue_trigger(arg_name="msg", queue_name="healer-notify", connection=STORAGE)
def notify_worker(msg: func.QueueMessage) -> None:
    _entry("shared.notify", "process")(msg.get_body(), msg.dequeue_count)


@app.function_name("notify_dead_letter")
@app.queue_trigger(arg_name="msg", queue_name="healer-notify-poison", connection=STORAGE)
def notify_dead_letter(msg: func.QueueMessage) -> None:
    _entry("shared.notify", "dead_letter")(msg.get_body(), msg.dequeue_count)


@app.function_name("approval_link")
@app.route(route="approval-link", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def approval_link(req: func.HttpRequest) -> func.HttpResponse:
    """Signed Approve/Reject links from notifications: anonymous, the signature is the credential."""
    return _entry("shared.approval_links", "handle")(req)
