"""The rollback shell over the real wire: Azurite for state, azure-mgmt-web against the ARM stand-in."""
from __future__ import annotations

import datetime as dt
import json
import sys
import uuid

import httpx
import pytest
from azure.functions.queue import QueueMessage

from healers.rollback import shell
from healers.rollback.signal import parse_signal
from shared import approvals, audit, notify
from shared.alerts import parse_alert
from shared.config import Settings
from shared.state import Store, safe_key
from shared.work import RetryLater
from standins.harness import free_port, start_process, start_python_server
from standins.stack import build_of, seed_bad_release
from tests.alert_samples import alert_body
from tests.conftest import SHOP, alert_payload
from tests.notify_helpers import drain

pytestmark = pytest.mark.integration
RG, APP = "shop-prod", "shop-web"


class Crash(Exception):
    """Stands for the worker dying at a step."""


def fired_alert(condition: str = "Fired", alert_id: str | None = None, rule: str = "shop-web-http5xx",
                fired: dt.datetime | None = None, **props) -> dict:
    props = {**alert_payload("metric_fired.json")["data"]["customProperties"], **props}
    return alert_body("metric_fired.json", alert_id=alert_id, rule=rule, condition=condition, fired=fired,
                      custom_properties=props)


def message(body: dict) -> dict:
    return shell.work_message(parse_alert(body), parse_signal(body))


def handle(msg: dict, **kw) -> str:
    return shell.handle(Settings(), msg, owner=kw.pop("owner", uuid.uuid4().hex[:8]), **kw)


def records(outcome: str | None = None) -> list[dict]:
    return list(audit.list_records(Settings(), day=dt.datetime.now(dt.timezone.utc).date(), healer="rollback",
                                   outcome=outcome))


def healer_swaps(arm) -> int:
    """Swaps accepted by ARM minus the pipeline's one that set up the incident."""
    return arm.counters()["swaps_accepted"] - 1


@pytest.fixture
def incident(healer_env, arm):
    return seed_bad_release(arm, healer_env["HEALER_ARM_ENDPOINT"], RG, APP)


def test_alert_storm_causes_exactly_one_rollback(incident, arm):
    first = message(fired_alert(alert_id="aaaaaaaa-0000-4000-8000-000000000001"))
    assert handle(first) == "acted"
    assert build_of(arm, RG, APP) == "v41" and build_of(arm, RG, APP, "staging") == "v42"
    state = arm.app(RG, APP)
    assert state["slots"]["production"]["app_settings"]["SLOT_NAME"] == "production", "sticky setting stayed"
    assert handle(first) == "duplicate"                                                 # action-group retry
    second_rule = message(fired_alert(alert_id="aaaaaaaa-0000-4000-8000-000000000002", rule="shop-web-slo"))
    assert handle(second_rule) == "skipped"                                             # latched
    resolved = message(fired_alert("Resolved", alert_id="aaaaaaaa-0000-4000-8000-000000000001"))
    assert handle(resolved) == "recorded" and handle(resolved) == "duplicate"
    assert handle(first) == "duplicate"                                                 # late retry
    assert healer_swaps(arm) == 1 and build_of(arm, RG, APP) == "v41"
    [acted] = records("acted")
    assert acted["details"]["before"] == {"production": "v42", "staging": "v41"}
    assert "latched" in records("skipped")[0]["reason"]


def test_fired_delivered_after_its_own_resolved_never_acts(incident, arm):
    alert_id = "aaaaaaaa-0000-4000-8000-00000000000f"
    assert handle(message(fired_alert("Resolved", alert_id=alert_id))) == "recorded"
    assert handle(message(fired_alert(alert_id=alert_id))) == "skipped"
    assert "already Resolved" in records("skipped")[0]["reason"]
    assert handle(message(fired_alert(alert_id=alert_id))) == "duplicate"
    assert healer_swaps(arm) == 0 and build_of(arm, RG, APP) == "v42"


def test_target_outside_allowlist_is_refused_and_audited(incident, arm):
    other = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/x/providers/Microsoft.Web/sites/other"
    assert handle(message(fired_alert(**{"healer.target": other}))) == "refused"
    assert "allowlist" in records("refused")[0]["reason"] and healer_swaps(arm) == 0


def test_rule_map_is_used_when_custom_properties_are_absent(incident, arm, monkeypatch):
    body = fired_alert(rule="legacy-rule")
    body["data"]["customProperties"] = None
    assert handle(message(body)) == "refused"  # no mapping yet
    monkeypatch.setenv("HEALER_ROLLBACK_RULE_MAP", json.dumps({"Legacy-Rule": {"resourceId": SHOP}}))
    body2 = fired_alert(rule="legacy-rule")
    body2["data"]["customProperties"] = None
    assert handle(message(body2)) == "acted" and healer_swaps(arm) == 1


@pytest.mark.parametrize("env,outcome,fragment", [
    ({"HEALER_DRY_RUN": "true"}, "dry-run", "would swap"),
    ({"HEALER_KILL_SWITCH": "true"}, "skipped", "kill switch"),
    # an invalid policy (not even JSON, or a bad rule) is a configuration error: refused through the gate, loud
    ({"HEALER_POLICY": "{not json"}, "refused", "configuration invalid"),
    ({"HEALER_POLICY": json.dumps({"version": 1, "rules": [{"action": "*", "resource": "*", "effect": "maybe"}]})},
     "refused", "HEALER_POLICY: policy invalid"),
    ({"HEALER_POLICY": json.dumps({"version": 1, "rules": [
        {"action": "*", "resource": "*", "effect": "allow"},
        {"action": "rollback.swap", "resource": "*/sites/shop-*", "effect": "deny"}]})}, "refused", "denies"),
])
def test_safety_gates_never_swap(incident, arm, monkeypatch, env, outcome, fragment):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert handle(message(fired_alert())) == outcome
    assert fragment in records(outcome)[0]["reason"]
    assert healer_swaps(arm) == 0 and build_of(arm, RG, APP) == "v42"


def test_ask_parks_then_approval_rechecks_and_acts_once(incident, arm, monkeypatch):
    monkeypatch.setenv("HEALER_POLICY", json.dumps({"version": 1, "rules": [
        {"action": "rollback.swap", "resource": "*", "effect": "ask"}]}))
    body = fired_alert()
    assert handle(message(body)) == "pending"
    assert handle(message(body)) == "duplicate"
    [pending] = approvals.list_pending(Settings(), "rollback")
    assert healer_swaps(arm) == 0
    decided = approvals.decide(Settings(), healer="rollback", aid=pending["id"], approve=True, by="oncall",
                               note="go", now=dt.datetime.now(dt.timezone.utc))
    approved_msg = {**decided["message"], "approvalId": pending["id"]}
    assert handle(approved_msg) == "acted"
    assert handle(approved_msg) == "duplicate"   # re-delivery of the approval: no second swap
    assert healer_swaps(arm) == 1
    assert approvals.get(Settings(), "rollback", pending["id"]).data["status"] == "executed"


def test_approval_of_a_stale_state_does_not_act(incident, arm, healer_env, monkeypatch):
    monkeypatch.setenv("HEALER_POLICY", json.dumps({"version": 1, "rules": [
        {"action": "rollback.swap", "resource": "*", "effect": "ask"}]}))
    assert handle(message(fired_alert())) == "pending"
    [pending] = approvals.list_pending(Settings(), "rollback")
    arm.deploy(RG, APP, "staging", build_id="v43")    # the team shipped a fix to staging meanwhile
    approvals.decide(Settings(), healer="rollback", aid=pending["id"], approve=True, by="oncall", note="",
                     now=dt.datetime.now(dt.timezone.utc))
    assert handle({**pending["message"], "approvalId": pending["id"]}) == "skipped"
    assert "newer build" in records("skipped")[0]["reason"] and healer_swaps(arm) == 0


def test_forged_approval_id_is_refused(incident, arm):
    msg = {**message(fired_alert()), "approvalId": "0" * 24}
    assert handle(msg) == "refused" and healer_swaps(arm) == 0


def test_approval_for_another_resource_or_action_is_refused(incident, arm, monkeypatch):
    """An approval of this alert that names a different app (the rule map moved meanwhile) is not a licence here."""
    monkeypatch.setenv("HEALER_POLICY", json.dumps({"version": 1, "rules": [
        {"action": "rollback.swap", "resource": "*", "effect": "ask"}]}))
    msg = message(fired_alert())
    assert handle(msg) == "pending"
    [pending] = approvals.list_pending(Settings(), "rollback")
    approvals.decide(Settings(), healer="rollback", aid=pending["id"], approve=True, by="oncall", note="",
                     now=dt.datetime.now(dt.timezone.utc))
    store = Store(Settings(), "approvals")
    rec = store.get("rollback", pending["id"])
    rec.data["resource"] = SHOP.replace("shop-web", "other-web")
    store.replace(rec)
    assert handle({**pending["message"], "approvalId": pending["id"]}) == "refused"
    assert "not rollback.swap on" in records("refused")[0]["reason"] and healer_swaps(arm) == 0


def test_crash_mid_approved_swap_still_marks_the_approval_executed(incident, arm, monkeypatch):
    monkeypatch.setenv("HEALER_POLICY", json.dumps({"version": 1, "rules": [
        {"action": "rollback.swap", "resource": "*", "effect": "ask"}]}))
    assert handle(message(fired_alert())) == "pending"
    [pending] = approvals.list_pending(Settings(), "rollback")
    approvals.decide(Settings(), healer="rollback", aid=pending["id"], approve=True, by="oncall", note="",
                     now=dt.datetime.now(dt.timezone.utc))
    approved = {**pending["message"], "approvalId": pending["id"]}

    def die(step: str) -> None:
        if step == "swap-finished":
            raise Crash(step)

    with pytest.raises(Crash):
        handle(approved, step=die)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=Settings().lease_seconds + 1)
    assert handle(approved, now=lambda: later) == "acted"
    assert approvals.get(Settings(), "rollback", pending["id"]).data["status"] == "executed"
    assert healer_swaps(arm) == 1


def test_concurrent_swap_409_is_retried_later_then_acts_once(incident, arm):
    arm.inject_swap_conflict(APP, "staging", count=1)
    msg = message(fired_alert())
    with pytest.raises(RetryLater, match="409"):
        handle(msg)
    assert handle(msg) == "acted" and healer_swaps(arm) == 1


def test_transient_allocation_changed_is_retried_with_backoff(incident, arm):
    arm.inject_fault("POST", r"/slotsswap$", 400, code="BadRequest",
                     message="The allocation of the site changed. Please retry the operation.", count=1)
    msg = message(fired_alert())
    with pytest.raises(RetryLater) as first:
        handle(msg)
    assert "transient" in first.value.reason and 2 <= first.value.delay_seconds <= 10
    assert handle(msg) == "acted" and healer_swaps(arm) == 1


def test_swap_with_preview_pending_is_detected_and_reported(incident, arm, monkeypatch, workdir):
    arm.patch_slot(RG, APP, "production", target_swap_slot="staging")
    port = free_port()
    sink = start_python_server("notify", "standins.webhook_sink", ["--port", str(port)], port, workdir)
    try:
        monkeypatch.setenv("HEALER_NOTIFY_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
        assert handle(message(fired_alert())) == "skipped"
        assert drain() == ["sent"]  # the audit record notifies, through the healer-notify queue
        [sent] = httpx.get(f"http://127.0.0.1:{port}/_standin/received").json()["received"]
    finally:
        sink.stop()
    [skipped] = records("skipped")
    assert "swap with preview" in skipped["reason"] and healer_swaps(arm) == 0
    assert skipped["notifications"] == ["webhook"]
    assert sent["body"]["kind"] == "attention" and "swap with preview" in sent["body"]["text"]


def test_missing_or_stopped_staging_is_never_swapped(incident, arm):
    arm.patch_slot(RG, APP, "staging", state="Stopped")
    assert handle(message(fired_alert())) == "skipped"
    assert "Stopped" in records("skipped")[0]["reason"] and healer_swaps(arm) == 0


@pytest.mark.parametrize("crash_at", ["intent", "swap-started", "swap-finished", "verified"])
def test_crash_between_steps_then_redelivery_finishes_without_a_second_swap(incident, arm, crash_at):
    msg = message(fired_alert())

    def die(step: str) -> None:
        if step == crash_at:
            raise Crash(step)

    with pytest.raises(Crash):
        handle(msg, step=die)
    # The dead worker's lease expires; a redelivery lands on another worker later.
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=Settings().lease_seconds + 1)
    outcome = handle(msg, now=lambda: later)
    assert outcome == ("skipped" if crash_at == "verified" else "acted")
    assert healer_swaps(arm) == 1 and build_of(arm, RG, APP) == "v41"
    ops = Store(Settings(), "ops").get("rollback", safe_key(SHOP.lower()))
    assert ops.data["op"] is None and ops.data["latch"]["good"] == "v41"
    assert len(records("acted")) == 1


def test_crash_after_swap_started_resumes_the_persisted_operation(incident, arm):
    """The swap is still running when the worker dies; the next worker polls the same operation, sends none."""
    arm.set_swap_behavior(hang=True)
    msg = message(fired_alert())
    started = {}

    def die(step: str) -> None:
        if step == "swap-started":
            started["ops"] = arm.operations()
            raise Crash(step)

    with pytest.raises(Crash):
        handle(msg, step=die)
    assert arm.counters()["swaps_accepted"] == 2
    arm.release_swaps()
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=Settings().lease_seconds + 1)
    assert handle(msg, now=lambda: later) == "acted"
    assert healer_swaps(arm) == 1 and build_of(arm, RG, APP) == "v41"


def test_a_failed_swap_operation_escalates_instead_of_wedging_the_app(incident, arm):
    """ARM accepts the swap, then the operation ends failed: escalate once, leave production alone, never retry,
    and leave no half-done operation behind (re-arm works)."""
    arm.set_swap_behavior(fail={"status": 400, "code": "SwapFailed",
                                "message": "Cannot swap site slots: the target slot failed to warm up."})
    msg = message(fired_alert())
    assert handle(msg) == "escalated"
    [esc] = records("escalated")
    assert "swap operation failed" in esc["reason"] and "warm up" in esc["reason"]
    assert build_of(arm, RG, APP) == "v42" and healer_swaps(arm) == 1
    arm.set_swap_behavior(fail=None)
    assert handle(message(fired_alert())) == "skipped" and healer_swaps(arm) == 1   # never swaps again
    ops = Store(Settings(), "ops").get("rollback", safe_key(SHOP.lower()))
    assert ops.data["op"] is None
    out = shell.rearm(Settings(), SHOP, by="oncall", reason="fixed the slot", now=dt.datetime.now(dt.timezone.utc))
    assert "swap operation failed" in out["before"]["escalated"]


def test_concurrent_worker_waits_for_the_lease(incident, arm):
    msg = message(fired_alert())
    from shared.state import acquire_lease
    ops = Store(Settings(), "ops")
    held = acquire_lease(ops, "rollback", safe_key(SHOP.lower()), "someone-else", 300,
                         dt.datetime.now(dt.timezone.utc))
    assert held is not None
    with pytest.raises(RetryLater, match="lease"):
        handle(msg)
    assert healer_swaps(arm) == 0


def test_failed_verification_escalates_and_never_swaps_again(incident, arm, healer_env, monkeypatch, workdir):
    port = free_port()
    health = start_process("health", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                      "--directory", str(workdir)], {"http": port}, workdir)
    notify_port = free_port()
    try:
        monkeypatch.setenv("HEALER_ROLLBACK_TARGETS", json.dumps([
            {"resourceId": SHOP, "slot": "staging", "healthUrl": f"http://127.0.0.1:{port}/healthz-missing"}]))
        monkeypatch.setenv("HEALER_NOTIFY_WEBHOOK_URL", f"http://127.0.0.1:{notify_port}/hook")
        assert handle(message(fired_alert())) == "escalated"
        [esc] = records("escalated")
        assert "HTTP 404" in esc["reason"] and esc["notifications"] == ["webhook"]
        monkeypatch.setattr(notify, "BACKOFF_BASE_SECONDS", 0.0)
        drain()  # nobody listens on the notify port: retried, then dead-lettered and audited (never raised)
        [undelivered] = audit.list_records(Settings(), day=dt.datetime.now(dt.timezone.utc).date(), healer="notify")
        assert undelivered["outcome"] == "dead-letter" and "ConnectError" in undelivered["reason"]
        arm.deploy(RG, APP, "staging", build_id="v44")
        assert handle(message(fired_alert())) == "skipped" and "escalated" in records("skipped")[0]["reason"]
        assert healer_swaps(arm) == 1
        out = shell.rearm(Settings(), SHOP, by="oncall", reason="looked", now=dt.datetime.now(dt.timezone.utc))
        assert out["before"]["escalated"]
    finally:
        health.stop()


def test_rearm_then_new_incident_can_roll_back_again(incident, arm, healer_env):
    assert handle(message(fired_alert())) == "acted"
    shell.rearm(Settings(), SHOP, by="oncall", reason="fixed forward", now=dt.datetime.now(dt.timezone.utc))
    # Next release: v45 to staging, swapped in by the pipeline, and it is bad too.
    from standins.stack import pipeline_swap
    arm.deploy(RG, APP, "staging", build_id="v45")
    pipeline_swap(healer_env["HEALER_ARM_ENDPOINT"], RG, APP, "staging")
    assert handle(message(fired_alert())) == "acted"
    assert build_of(arm, RG, APP) == "v41" and arm.counters()["swaps_accepted"] == 4


def test_queue_function_end_to_end_and_retry_reenqueues(incident, arm, storage_env):
    """Through the registered queue callable: a lease conflict re-enqueues with a delay instead of failing."""
    import function_app
    from healers.rollback import api
    from shared.state import acquire_lease
    body = json.dumps(message(fired_alert())).encode()
    held = acquire_lease(Store(Settings(), "ops"), "rollback", safe_key(SHOP.lower()), "other", 300,
                         dt.datetime.now(dt.timezone.utc))
    assert held is not None
    assert api.process(QueueMessage(id="1", body=body, dequeue_count=1)) == "retry"
    from azure.storage.queue import QueueClient
    q = QueueClient.from_connection_string(storage_env["AzureWebJobsStorage"], "healer-rollback")
    assert q.get_queue_properties().approximate_message_count == 1
    assert function_app.rollback_worker is not None


def _http(method: str, route: str, body=None, params=None, route_params=None):
    import azure.functions as func
    from tests.conftest import OPERATOR
    return func.HttpRequest(method=method, url=f"http://localhost/api/{route}", headers=dict(OPERATOR),
                            params=params or {},
                            route_params=route_params or {}, body=json.dumps(body).encode() if body else b"")


def _drain(storage_env, worker) -> list[str]:
    """Run the registered queue function over every visible message, as the host would."""
    from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient
    q = QueueClient.from_connection_string(storage_env["AzureWebJobsStorage"], "healer-rollback",
                                           message_decode_policy=BinaryBase64DecodePolicy())
    seen = []
    for m in q.receive_messages(max_messages=32, visibility_timeout=60):
        worker(QueueMessage(id=m.id, body=m.content, dequeue_count=m.dequeue_count))
        q.delete_message(m)
        seen.append(m.id)
    return seen


def test_registered_functions_webhook_to_approval_to_rollback_to_rearm(incident, arm, storage_env, monkeypatch,
                                                                         registered_functions):
    """Every rollback-facing function through its registered callable: webhook → worker → ask → approvals list →
    approve → worker → rolled back → audit → re-arm."""
    fn = {name: f.get_user_function() for name, f in registered_functions.items()}
    monkeypatch.setenv("HEALER_POLICY", json.dumps({"version": 1, "rules": [
        {"action": "rollback.swap", "resource": "*", "effect": "ask"}]}))
    resp = fn["rollback_alert"](_http("POST", "alerts/rollback", fired_alert()))
    assert resp.status_code == 202
    assert len(_drain(storage_env, fn["rollback_worker"])) == 1
    pending = json.loads(fn["approvals_list"](_http("GET", "approvals/rollback",
                                                    route_params={"healer": "rollback"})).get_body())["pending"]
    assert len(pending) == 1 and healer_swaps(arm) == 0
    bad = fn["approvals_decide"](_http("POST", "approvals/rollback/x", {"decision": "maybe"},
                                       route_params={"healer": "rollback", "id": pending[0]["id"]}))
    assert bad.status_code == 400
    ok = fn["approvals_decide"](_http("POST", "approvals/rollback/x", {"decision": "approve", "by": "oncall"},
                                      route_params={"healer": "rollback", "id": pending[0]["id"]}))
    assert ok.status_code == 200 and json.loads(ok.get_body())["status"] == "approved"
    again = fn["approvals_decide"](_http("POST", "approvals/rollback/x", {"decision": "reject", "by": "oncall"},
                                         route_params={"healer": "rollback", "id": pending[0]["id"]}))
    assert again.status_code == 409
    assert len(_drain(storage_env, fn["rollback_worker"])) == 1
    assert healer_swaps(arm) == 1 and build_of(arm, RG, APP) == "v41"
    listing = json.loads(fn["audit_list"](_http("GET", "audit", params={"healer": "rollback"})).get_body())
    assert [r["outcome"] for r in listing["records"]].count("acted") == 1
    rearm = fn["rollback_rearm"](_http("POST", "rollback/rearm", {"resourceId": SHOP, "by": "oncall",
                                                                  "reason": "fixed"}))
    assert rearm.status_code == 200 and json.loads(rearm.get_body())["before"]["latch"]["good"] == "v41"
    unknown = fn["rollback_rearm"](_http("POST", "rollback/rearm", {"resourceId": SHOP.replace("shop-web", "nope"),
                                                                    "by": "oncall"}))
    assert unknown.status_code == 404


def test_rearm_does_not_forget_the_bad_build_and_forgetting_is_explicit_and_audited(incident, arm, healer_env):
    """Issue 14's trial: rollback → re-arm (no new deployment) → a new alert must not swap the known-bad build back
    into production. An operator forgets the build explicitly (audited); only then may Healer swap it."""
    assert handle(message(fired_alert())) == "acted"
    assert build_of(arm, RG, APP) == "v41" and build_of(arm, RG, APP, "staging") == "v42"
    shell.rearm(Settings(), SHOP, by="oncall", reason="looked", now=dt.datetime.now(dt.timezone.utc))
    later = fired_alert(fired=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2))
    assert handle(message(later)) == "skipped"
    [skipped] = records("skipped")
    assert "already rolled back from" in skipped["reason"] and "forgetBuild" in skipped["reason"]
    assert healer_swaps(arm) == 1 and build_of(arm, RG, APP) == "v41"
    with pytest.raises(shell.Refused, match="not remembered"):
        shell.rearm(Settings(), SHOP, by="oncall", reason="x", now=dt.datetime.now(dt.timezone.utc),
                    forget_build="v99")
    out = shell.rearm(Settings(), SHOP, by="oncall", reason="v42 was fine after all",
                      now=dt.datetime.now(dt.timezone.utc), forget_build="v42")
    assert "v42" in out["forgotten"] and out["badBuilds"] == []
    [rec] = [r for r in records("recorded") if "forgot bad build v42" in r["reason"]]
    assert rec["details"]["forgotten"]["v42"]["replaced_by"] == "v41"
    again = fired_alert(fired=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2))
    assert handle(message(again)) == "acted" and build_of(arm, RG, APP) == "v42"   # forgotten: judged like any build


def test_a_failed_deploy_after_the_swap_does_not_block_the_rollback_and_is_audited(incident, arm):
    arm.deploy(RG, APP, "staging", build_id="v43", status=3, id="dep-failed-43",
               log=["Fetching changes.", "npm ERR! code ELIFECYCLE", "Deployment failed."])
    arm.deploy(RG, APP, "production", build_id="v44", status=1, id="dep-building-44")
    assert build_of(arm, RG, APP, "staging") == "v41", "a failed deployment changes nothing the slot runs"
    assert handle(message(fired_alert())) == "acted" and build_of(arm, RG, APP) == "v41"
    [acted] = records("acted")
    notes = acted["details"]["observedBefore"]["deploymentsNotCounted"]
    assert any("dep-failed-43" in n and "failed" in n for n in notes)
    assert any("dep-building-44" in n and "in progress" in n for n in notes)


def test_a_failed_deploy_after_a_rollback_does_not_release_the_latch(incident, arm):
    assert handle(message(fired_alert())) == "acted"
    arm.deploy(RG, APP, "staging", build_id="v45", status=3, id="dep-failed-45")
    arm.deploy(RG, APP, "production", build_id="v46", status=3, id="dep-failed-46")
    assert handle(message(fired_alert(fired=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)))) \
        == "skipped"
    assert "latched" in records("skipped")[0]["reason"] and healer_swaps(arm) == 1
    assert not [r for r in records("recorded") if "latch released" in r["reason"]]


def test_deployment_log_and_connection_strings_follow_the_contract(incident, arm, healer_env):
    from healers.rollback import arm as arm_calls
    from shared.resource_ids import parse_site_id
    from shared.webapps import web_client
    site = parse_site_id(SHOP)
    arm.deploy(RG, APP, "staging", build_id="v47", id="dep-47", log=["step one", "step two"])
    assert arm_calls.deployment_log(Settings(), site, "staging", "dep-47") == "Deployed build v47\nstep one\nstep two"
    assert "HTTP 404" in arm_calls.deployment_log(Settings(), site, None, "nope")
    arm.patch_slot(RG, APP, "production", connection_strings={"Db": {"value": "Server=x", "type": "SQLAzure"}})
    conns = web_client(Settings(), site.subscription).web_apps.list_connection_strings(RG, APP)
    assert conns.properties["Db"].value == "Server=x" and conns.properties["Db"].type == "SQLAzure"


# ---------------------------------------------------------------------------------------------- attribution

def test_a_config_change_after_the_swap_asks_instead_of_swapping(incident, arm):
    arm.patch_slot(RG, APP, "production", app_settings={"PROMPT_VERSION": "v-seven"}, caller="ana@contoso.com")
    assert handle(message(fired_alert())) == "pending"
    [pending] = records("pending")
    assert pending["reason"].startswith("suspect configuration change config write appsettings on production")
    assert "ana@contoso.com" in pending["reason"] and healer_swaps(arm) == 0
    assert "v-seven" not in json.dumps(pending["details"]), "never a value"  # ("7" could be in a timestamp)
    [parked] = approvals.list_pending(Settings(), "rollback")
    approvals.decide(Settings(), healer="rollback", aid=parked["id"], approve=True, by="oncall", note="code it is",
                     now=dt.datetime.now(dt.timezone.utc))
    assert handle({**parked["message"], "approvalId": parked["id"]}) == "acted" and healer_swaps(arm) == 1


def test_config_change_policy_skip_and_dependency_hint_never_swap(incident, arm, monkeypatch):
    monkeypatch.setenv("HEALER_ROLLBACK_TARGETS", json.dumps([{"resourceId": SHOP, "onConfigChange": "skip"}]))
    arm.patch_slot(RG, APP, "production", connection_strings={"Db": "Server=new"}, caller="bob@contoso.com")
    assert handle(message(fired_alert())) == "skipped"
    assert "config write connectionstrings" in records("skipped")[0]["reason"]
    dep = fired_alert(**{"healer.dependencyDriven": "true"})
    assert handle(message(dep)) == "skipped"
    assert any("dependency outage" in r["reason"] for r in records("skipped")) and healer_swaps(arm) == 0


def test_a_slot_config_change_or_one_before_the_swap_is_not_suspect(healer_env, arm):
    arm.seed_app(RG, APP, slots={"production": {"app_settings": {"SLOT_NAME": "production"}},
                                 "staging": {"app_settings": {"SLOT_NAME": "staging"}}},
                 sticky_app_settings=["SLOT_NAME"], subscription_id=SHOP.split("/")[2])
    arm.deploy(RG, APP, "production", build_id="v41")
    arm.patch_slot(RG, APP, "production", app_settings={"X": "1"}, caller="before@contoso.com")   # before the swap
    arm.deploy(RG, APP, "staging", build_id="v42")
    from standins.stack import pipeline_swap
    pipeline_swap(healer_env["HEALER_ARM_ENDPOINT"], RG, APP, "staging")
    arm.patch_slot(RG, APP, "staging", app_settings={"Y": "1"}, caller="slot@contoso.com")        # the slot's own
    assert handle(message(fired_alert())) == "acted"


def test_fingerprint_catches_a_change_the_activity_log_does_not_show(incident, arm, monkeypatch):
    monkeypatch.setenv("HEALER_ROLLBACK_TARGETS", json.dumps([{"resourceId": SHOP, "activityLog": False}]))
    monkeypatch.setenv("HEALER_KILL_SWITCH", "true")
    assert handle(message(fired_alert())) == "skipped"          # observed (fingerprint stored), nothing done
    ops = Store(Settings(), "ops").get("rollback", safe_key(SHOP.lower()))
    assert "on" not in json.dumps(ops.data["fingerprint"]["app-settings"]), "hashes only"
    monkeypatch.delenv("HEALER_KILL_SWITCH")
    arm.patch_slot(RG, APP, "production", app_settings={"FEATURE_X": "off"})
    assert handle(message(fired_alert(fired=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)))) \
        == "pending"
    assert "app setting FEATURE_X added on production" in records("pending")[0]["reason"]


def test_an_app_configuration_change_after_the_swap_asks_with_the_key(incident, arm, appconfig, monkeypatch):
    """A prompt change in App Configuration (revisions API) — not the build — is the suspect."""
    monkeypatch.setenv("HEALER_ROLLBACK_TARGETS", json.dumps([{"resourceId": SHOP, "appConfigEndpoint":
                                                               appconfig.endpoint, "appConfigKeys": "prompts:*"}]))
    appconfig.human_edit("other:key", value="x")                         # outside the configured keys
    appconfig.human_edit("prompts:system", label="shop-web", value="You are a pirate.")
    assert handle(message(fired_alert())) == "pending"
    reason = records("pending")[0]["reason"]
    assert "App Configuration key prompts:system (label shop-web)" in reason and "other:key" not in reason
    assert "pirate" not in json.dumps(records("pending")[0]), "never a value"
    assert healer_swaps(arm) == 0


def test_a_refusal_carries_bounded_redacted_evidence(healer_env, arm, monkeypatch):
    """What the human gets with an ask/refusal: the suspect deployment's log (redacted), both slots' state, the
    configuration changes found and the values the alert fired with."""
    from standins.stack import pipeline_swap
    arm.seed_app(RG, APP, slots={"production": {"app_settings": {"SLOT_NAME": "production"}},
                                 "staging": {"app_settings": {"SLOT_NAME": "staging"}}},
                 sticky_app_settings=["SLOT_NAME"], subscription_id=SHOP.split("/")[2])
    arm.deploy(RG, APP, "production", build_id="v41")
    arm.deploy(RG, APP, "staging", build_id="v42", id="dep-42", log=[
        "Running migrations", "connecting with Password=hunter2SuperSecret;", "Deployment successful."])
    pipeline_swap(healer_env["HEALER_ARM_ENDPOINT"], RG, APP, "staging")
    arm.patch_slot(RG, APP, "production", app_settings={"PROMPT": "v9"}, caller="ana@contoso.com")
    monkeypatch.setenv("HEALER_POLICY", json.dumps({"version": 1, "rules": [
        {"action": "rollback.swap", "resource": "*", "effect": "deny"}]}))
    assert handle(message(fired_alert())) == "refused"
    ev = records("refused")[0]["details"]["evidence"]
    assert ev["deploymentLog"]["deployment"] == "dep-42" and "Running migrations" in ev["deploymentLog"]["log"]
    assert "hunter2SuperSecret" not in json.dumps(ev)
    assert ev["slots"]["production"]["build"] == "v42" and ev["slots"]["staging"]["build"] == "v41"
    assert any("ana@contoso.com" in c for c in ev["configChanges"])
    assert ev["signalBefore"][0]["name"] == "Http5xx" and ev["signalBefore"][0]["firedWith"] == 131.0
    assert len(json.dumps(ev)) < 24000


def test_freeze_instead_of_rollback_escalates_and_blocks_swaps_until_rearmed(incident, arm, monkeypatch):
    monkeypatch.setenv("HEALER_ROLLBACK_TARGETS", json.dumps([{"resourceId": SHOP,
                                                               "freezeInsteadOfRollback": True}]))
    assert handle(message(fired_alert())) == "escalated"
    [esc] = records("escalated")
    assert "freeze instead of rollback" in esc["reason"] and esc["details"]["evidence"]["slots"]
    assert healer_swaps(arm) == 0 and build_of(arm, RG, APP) == "v42"
    control = Store(Settings(), "controls").get("controls", safe_key(SHOP.lower()))
    assert control.data["freeze"]["incident"] and "freeze" in control.data["freeze"]["reason"]
    monkeypatch.setenv("HEALER_ROLLBACK_TARGETS", json.dumps([{"resourceId": SHOP}]))
    later = fired_alert(fired=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2))
    assert handle(message(later)) == "skipped" and "frozen" in records("skipped")[0]["reason"]
    out = shell.rearm(Settings(), SHOP, by="oncall", reason="migration checked", now=dt.datetime.now(dt.timezone.utc))
    assert out["before"]["frozen"]
    assert Store(Settings(), "controls").get("controls", safe_key(SHOP.lower())).data["freeze"] is None
    assert handle(message(fired_alert(fired=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)))) == "acted"


def test_rearm_endpoint_validates_forget_build(incident, arm, registered_functions):
    fn = registered_functions["rollback_rearm"].get_user_function()
    bad = fn(_http("POST", "rollback/rearm", {"resourceId": SHOP, "by": "oncall", "forgetBuild": ["v42"]}))
    assert bad.status_code == 400
    unknown = fn(_http("POST", "rollback/rearm", {"resourceId": SHOP, "by": "oncall", "forgetBuild": "v42"}))
    assert unknown.status_code == 404 and "not remembered" in json.loads(unknown.get_body())["error"]
    assert handle(message(fired_alert())) == "acted"
    ok = fn(_http("POST", "rollback/rearm", {"resourceId": SHOP, "by": "oncall", "forgetBuild": "v42"}))
    assert ok.status_code == 200 and json.loads(ok.get_body())["forgotten"]["v42"]["replaced_by"] == "v41"


def test_a_fingerprinted_change_is_remembered_for_the_next_alert(incident, arm, monkeypatch):
    """The fingerprint is re-taken at every observation: a change it found must still be suspect for the next alert
    of the same incident (another rule, a re-fire), not forgotten because the new fingerprint already holds it."""
    monkeypatch.setenv("HEALER_ROLLBACK_TARGETS", json.dumps([{"resourceId": SHOP, "activityLog": False}]))
    monkeypatch.setenv("HEALER_KILL_SWITCH", "true")
    assert handle(message(fired_alert())) == "skipped"
    monkeypatch.delenv("HEALER_KILL_SWITCH")
    arm.patch_slot(RG, APP, "production", app_settings={"FEATURE_X": "off"})
    now = dt.datetime.now(dt.timezone.utc)
    assert handle(message(fired_alert(fired=now + dt.timedelta(seconds=2)))) == "pending"
    assert handle(message(fired_alert(fired=now + dt.timedelta(seconds=4)))) == "pending", \
        "the second look forgot the change the first one found, and swapped code back"
    assert "app setting FEATURE_X added on production" in records("pending")[-1]["reason"]
    assert healer_swaps(arm) == 0
