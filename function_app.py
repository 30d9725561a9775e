"""Healer's Azure Functions app: every trigger, and nothing else. Each function hands off to a healer or to shared.

Routes (all under /api, function-key protected; in HEALER_AUTH_MODE=entra an Entra ID token is required too):
  POST /alerts/rollback                  Azure Monitor action group webhook (common or legacy metric schema) → 202
  POST /rollback/rearm                   clear an app's rollback latch
  GET  /audit                            the audit trail (?day=YYYY-MM-DD&healer=&outcome=&resource=&limit=)
  GET  /approvals/{healer}               pending "ask" actions
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
"""
from __future__ import annotations

import azure.functions as func

from healers.downshift import api as downshift_api
from healers.errors import api as errors_api
from healers.replication import api as replication_api
from healers.rollback import api as rollback
from shared import api as shared_api
from shared import timers
from shared.config import Settings
from shared.telemetry import configure as configure_telemetry

configure_telemetry(Settings())

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
STORAGE = "AzureWebJobsStorage"


# ---------------------------------------------------------------------------------------------- rollback

@app.function_name("rollback_alert")
@app.route(route="alerts/rollback", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def rollback_alert(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("webhook", rollback.accept_alert, req)


@app.function_name("rollback_worker")
@app.queue_trigger(arg_name="msg", queue_name="healer-rollback", connection=STORAGE)
def rollback_worker(msg: func.QueueMessage) -> None:
    rollback.process(msg)


@app.function_name("rollback_dead_letter")
@app.queue_trigger(arg_name="msg", queue_name="healer-rollback-poison", connection=STORAGE)
def rollback_dead_letter(msg: func.QueueMessage) -> None:
    rollback.dead_letter(msg)


@app.function_name("rollback_rearm")
@app.route(route="rollback/rearm", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def rollback_rearm(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("approver", rollback.rearm, req)


# ---------------------------------------------------------------------------------------------- shared

@app.function_name("audit_list")
@app.route(route="audit", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def audit_list(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("reader", shared_api.list_audit, req)


@app.function_name("approvals_list")
@app.route(route="approvals/{healer}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def approvals_list(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("reader", shared_api.list_approvals, req)


@app.function_name("approvals_decide")
@app.route(route="approvals/{healer}/{id}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def approvals_decide(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("approver", shared_api.decide_approval, req)


@app.function_name("controls_get")
@app.route(route="controls", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def controls_get(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("reader", shared_api.get_controls, req)


@app.function_name("controls_set")
@app.route(route="controls", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def controls_set(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("approver", shared_api.put_controls, req)


@app.function_name("openapi")
@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("reader", shared_api.get_openapi, req)


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
    from shared import console
    return shared_api.guarded("reader", console.session, req)


@app.function_name("housekeeping")
@app.timer_trigger(schedule="%HEALER_HOUSEKEEPING_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def housekeeping(timer: func.TimerRequest) -> None:
    timers.ran(Settings(), "housekeeping", timer)
    shared_api.housekeeping(timer)


# ---------------------------------------------------------------------------------------------- downshift (issue 3)

@app.function_name("downshift_alert")
@app.route(route="alerts/downshift", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def downshift_alert(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("webhook", downshift_api.accept_alert, req)


@app.function_name("downshift_budget")
@app.route(route="alerts/budget", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def downshift_budget(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("webhook", downshift_api.accept_budget, req)


@app.function_name("downshift_tick")
@app.timer_trigger(schedule="%HEALER_DOWNSHIFT_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def downshift_tick(timer: func.TimerRequest) -> None:
    timers.ran(Settings(), "downshift_tick", timer)
    downshift_api.timer(timer)


@app.function_name("downshift_worker")
@app.queue_trigger(arg_name="msg", queue_name="healer-downshift", connection=STORAGE)
def downshift_worker(msg: func.QueueMessage) -> None:
    downshift_api.process(msg)


@app.function_name("downshift_dead_letter")
@app.queue_trigger(arg_name="msg", queue_name="healer-downshift-poison", connection=STORAGE)
def downshift_dead_letter(msg: func.QueueMessage) -> None:
    downshift_api.dead_letter(msg)


@app.function_name("downshift_release")
@app.route(route="downshift/release", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def downshift_release(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("approver", downshift_api.release, req)


# ---------------------------------------------------------------------------------------------- replication (issue 4)


@app.function_name("replication_events")
@app.event_grid_trigger(arg_name="event")
def replication_events(event: func.EventGridEvent) -> None:
    replication_api.on_event(event)


@app.function_name("replication_worker")
@app.queue_trigger(arg_name="msg", queue_name="healer-replication", connection=STORAGE)
def replication_worker(msg: func.QueueMessage) -> None:
    replication_api.process(msg)


@app.function_name("replication_dead_letter")
@app.queue_trigger(arg_name="msg", queue_name="healer-replication-poison", connection=STORAGE)
def replication_dead_letter(msg: func.QueueMessage) -> None:
    replication_api.dead_letter(msg)


@app.function_name("replication_waits")
@app.route(route="replication/waits", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def replication_waits(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("webhook", replication_api.post_wait, req)


@app.function_name("replication_status")
@app.route(route="replication/status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def replication_status(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("reader", replication_api.get_status, req)


# ---------------------------------------------------------------------------------------------- errors (issue 5)


@app.function_name("errors_daily")
@app.timer_trigger(schedule="%HEALER_ERRORS_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def errors_daily(timer: func.TimerRequest) -> None:
    timers.ran(Settings(), "errors_daily", timer)
    errors_api.timer(timer)


@app.function_name("errors_run")
@app.route(route="errors/run", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def errors_run(req: func.HttpRequest) -> func.HttpResponse:
    return shared_api.guarded("approver", errors_api.request_run, req)


@app.function_name("errors_worker")
@app.queue_trigger(arg_name="msg", queue_name="healer-errors", connection=STORAGE)
def errors_worker(msg: func.QueueMessage) -> None:
    errors_api.process(msg)


@app.function_name("errors_dead_letter")
@app.queue_trigger(arg_name="msg", queue_name="healer-errors-poison", connection=STORAGE)
def errors_dead_letter(msg: func.QueueMessage) -> None:
    errors_api.dead_letter(msg)
