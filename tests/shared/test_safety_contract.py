"""Configuration validated at load, canonical control scopes, approvals that hold up, dead letters with the real
error: through the registered functions and the rollback healer over the ARM stand-in."""
from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from shared import approvals, audit, config_check, gate
from shared.config import Settings
from shared.work import record_dead_letter, run_queue_message
from standins.stack import build_of, seed_bad_release
from tests.conftest import SHOP
from tests.functions import call, http
from tests.rollback.test_shell import APP, RG, fired_alert, handle, message

pytestmark = pytest.mark.integration


def today_records(**filters) -> list[dict]:
    return list(audit.list_records(Settings(), day=dt.datetime.now(dt.timezone.utc).date(), limit=500, **filters))


def body(resp) -> dict:
    return json.loads(resp.get_body())


# ---------------------------------------------------------------------------------------------- configuration

def test_unknown_setting_names_the_closest_known_one():
    found = config_check.problems(Settings({"HEALER_DRYRUN": "true", "HEALER_TABLE_PREFIX": "healer",
                                            "HEALER_MANAGED_AI_MODEL": "x"}))
    assert [str(p) for p in found] == ["`HEALER_DRYRUN` is not a Healer setting — did you mean `HEALER_DRY_RUN`?"]
    assert config_check.problems(Settings({"HEALER_TABLE_PREFIX": "healer"})) == []


@pytest.mark.parametrize("name,value,fragment", [
    ("HEALER_KILL_SWITCH", "yes please", "HEALER_KILL_SWITCH must be true or false"),
    ("HEALER_LEASE_SECONDS", "5m", "HEALER_LEASE_SECONDS must be an integer"),
    ("HEALER_AUTH_MODE", "open", "HEALER_AUTH_MODE must be one of"),
    ("HEALER_POLICY", '{"version": 1, "rules": [{"action": "*", "resource": "*", "effect": "allow", "x": 1}]}',
     "HEALER_POLICY: policy invalid at rules.0.x"),
    ("HEALER_ROLLBACK_TARGETS", '[{"resourceId": "' + SHOP + '", "slots": "staging"}]', "HEALER_ROLLBACK_TARGETS"),
    ("HEALER_DOWNSHIFT_APPS", "[{]", "HEALER_DOWNSHIFT_APPS is not valid JSON"),
    ("HEALER_REPLICATION_BACKOFF", '{"baseSecond": 1}', "HEALER_REPLICATION_BACKOFF has unknown keys"),
])
def test_every_setting_and_json_document_is_validated(name, value, fragment):
    found = config_check.problems(Settings({"HEALER_TABLE_PREFIX": "healer", name: value}))
    assert [p.setting for p in found] == [name] and fragment in found[0].why, found


def test_typo_setting_acts_on_nothing_and_health_says_why(healer_env, arm, monkeypatch, functions):
    """HEALER_DRYRUN=true with an allow policy once swapped production: now nothing acts, loudly, once."""
    seed_bad_release(arm, healer_env["HEALER_ARM_ENDPOINT"], RG, APP)
    ok = call(functions, "health", http("GET", "health"))
    assert ok.status_code == 200
    from shared.version import __version__
    assert json.loads(ok.get_body())["version"] == __version__, "health reports the one version"
    monkeypatch.setenv("HEALER_DRYRUN", "true")
    for _ in range(2):
        assert handle(message(fired_alert(alert_id=str(uuid.uuid4())))) == "refused"
    assert build_of(arm, RG, APP) == "v42"                                    # no swap
    [refused, _] = today_records(healer="rollback", outcome="refused")
    assert "did you mean `HEALER_DRY_RUN`" in refused["reason"]
    resp = call(functions, "health", http("GET", "health"))
    assert resp.status_code == 503
    assert body(resp)["problems"] == [{"setting": "HEALER_DRYRUN", "why": "`HEALER_DRYRUN` is not a Healer setting "
                                                                         "— did you mean `HEALER_DRY_RUN`?"}]
    [invalid] = today_records(outcome="config-invalid")                      # one record (one notification)
    assert invalid["details"]["problems"][0]["setting"] == "HEALER_DRYRUN"
    monkeypatch.setenv("HEALER_LEASE_SECONDS", "soon")                        # a new, distinct problem set
    assert handle(message(fired_alert(alert_id=str(uuid.uuid4())))) == "refused"
    assert len(today_records(outcome="config-invalid")) == 2


def test_a_dead_letter_carries_the_real_error(storage_env):
    settings = Settings()
    raw = json.dumps({"v": 1, "kind": "alert", "alert": {"alert_id": "a-1"}}).encode()

    def broken(message):  # an error the host retries (a message Healer cannot read is dead-lettered at once: i10)
        raise RuntimeError("essentials.alertId missing; token=abcdef0123456789 in the payload")
    for attempt in (1, 2):
        with pytest.raises(RuntimeError):
            run_queue_message(settings, "healer-rollback", raw, attempt, broken, 5)
    record_dead_letter(settings, "rollback", raw, 5, lambda m: m["alert"]["alert_id"])
    [dead] = today_records(outcome="dead-letter")
    assert "failed 5 times" in dead["reason"] and "last error: RuntimeError: " in dead["reason"]
    assert "essentials.alertId missing" in dead["reason"] and "abcdef0123456789" not in json.dumps(dead)


# ---------------------------------------------------------------------------------------------- controls

SPELLINGS = [SHOP, SHOP + "/", SHOP + " ", SHOP + "\n", " " + SHOP, SHOP.replace("shop-prod", "SHOP-PROD"),
             SHOP.replace("Microsoft.Web", "microsoft.web"), SHOP + "/slots/production", SHOP + "/slots/Production/"]


def test_every_spelling_of_an_app_holds_its_healer(functions, storage_env):
    assert len(SPELLINGS) == 9
    for spelling in SPELLINGS:
        resp = call(functions, "controls_set", http("POST", "controls", {"scope": spelling, "kill": True, "by": "me"}))
        assert resp.status_code == 200, spelling
        assert gate.read_mode(Settings(), "rollback", gate.resource_key(SHOP)).killed, repr(spelling)
        call(functions, "controls_set", http("POST", "controls", {"scope": spelling, "kill": False, "by": "me"}))
        assert not gate.read_mode(Settings(), "rollback", gate.resource_key(SHOP)).killed
    for bad in ("shop-web", "everything", "/subscriptions/nope", "rollback.swap", 42):
        resp = call(functions, "controls_set", http("POST", "controls", {"scope": bad, "kill": True, "by": "me"}))
        assert resp.status_code == 400 and ("not a resource id" in body(resp)["error"] or bad == 42), bad


def test_a_trailing_slash_kill_switch_stops_the_rollback(healer_env, arm, functions):
    seed_bad_release(arm, healer_env["HEALER_ARM_ENDPOINT"], RG, APP)
    call(functions, "controls_set", http("POST", "controls", {"scope": SHOP + "/", "kill": True, "by": "me"}))
    assert handle(message(fired_alert())) == "skipped" and build_of(arm, RG, APP) == "v42"


# ---------------------------------------------------------------------------------------------- approvals

def test_approvals_expire_per_rule_and_are_audited_once(healer_env, arm, monkeypatch, functions):
    seed_bad_release(arm, healer_env["HEALER_ARM_ENDPOINT"], RG, APP)
    monkeypatch.setenv("HEALER_POLICY", json.dumps({"version": 1, "rules": [
        {"action": "rollback.swap", "resource": "*", "effect": "ask", "approvalTtlMinutes": 30}]}))
    assert handle(message(fired_alert())) == "pending"
    [pending] = today_records(outcome="pending")
    parked = pending["details"]["approval"]
    assert set(parked) == {"id", "healer", "action", "resource", "subject", "expiresAt"}
    expires = dt.datetime.fromisoformat(parked["expiresAt"])
    assert dt.timedelta(minutes=29) < expires - dt.datetime.fromisoformat(pending["at"]) <= dt.timedelta(minutes=30)
    listed = body(call(functions, "approvals_all", http("GET", "approvals")))
    assert [a["id"] for a in listed["pending"]] == [parked["id"]] and "message" not in listed["pending"][0]
    assert call(functions, "approvals_list", http("GET", "approvals/rolback",
                                                  route_params={"healer": "rolback"})).status_code == 404
    later = expires + dt.timedelta(seconds=1)
    assert approvals.list_pending(Settings(), None, now=later) == []              # found expired on read
    with pytest.raises(approvals.ApprovalError) as info:
        approvals.decide(Settings(), healer="rollback", aid=parked["id"], approve=True, by="me", note="", now=later)
    assert info.value.status == 410
    assert approvals.sweep(Settings(), later) == 0
    [expired] = today_records(outcome="expired")                                   # audited exactly once
    assert expired["details"]["approval"]["id"] == parked["id"]


def test_a_sweep_expires_what_nobody_read(storage_env):
    now = dt.datetime.now(dt.timezone.utc)
    approvals.park(Settings(), healer="downshift", subject="s", action="downshift.switch", resource=SHOP, reason="r",
                   message={}, queue_name="q", now=now, ttl=dt.timedelta(minutes=1))
    assert approvals.sweep(Settings(), now + dt.timedelta(minutes=2)) == 1
    assert len(today_records(outcome="expired")) == 1


def test_entra_approvers_must_hold_the_rules_role_or_group(storage_env):
    now = dt.datetime.now(dt.timezone.utc)
    pending, _ = approvals.park(Settings(), healer="rollback", subject="s", action="rollback.swap", resource=SHOP,
                                reason="r", message={}, queue_name="q", now=now,
                                approvers={"roles": ["Healer.ProdApprover"], "groups": ["0000aaaa-0000-0000-0000-00000000beef"]})
    with pytest.raises(approvals.ApprovalError) as info:
        approvals.decide(Settings(), healer="rollback", aid=pending["id"], approve=True, by="eve", note="", now=now,
                         roles=["Healer.Approver"], groups=[])
    assert info.value.status == 403 and "Healer.ProdApprover" in str(info.value)
    decided = approvals.decide(Settings(), healer="rollback", aid=pending["id"], approve=True, by="ann", note="",
                               now=now, roles=[], groups=["0000AAAA-0000-0000-0000-00000000BEEF"])
    assert decided["status"] == "approved" and decided["decidedBy"] == "ann"
