"""The downshift shell over the real wire: Azurite (state, queue, audit), the Log Analytics stand-in (spend through
LogsQueryClient), the App Configuration stand-in (azure-appconfiguration), the ARM stand-in (azure-mgmt-web)."""
from __future__ import annotations

import datetime as dt
import json
import threading

import pytest

from healers.downshift import shell, spend
from healers.downshift.actuators import AppConfigActuator, Current, WriteConflict
from shared.config import Settings
from standins.kql_check import assert_valid_kql
from tests.downshift.test_shell_env import (AI_APP, KEY, OPS_APP, Clock, apply_env, cost_rows,  # noqa: F401
                                            downshift_env, downshift_servers, drain, kv, records)

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def tick(clock) -> shell.TickReport:
    return shell.tick(Settings(), owner="test-tick", now=clock)


def state(tenant: str, app: str = AI_APP) -> dict:
    from shared.state import Store, safe_key
    rec = Store(Settings(), shell.TABLE).get(safe_key(app.lower()), safe_key(tenant))
    return rec.data["state"] if rec else {}


def test_every_spend_query_is_valid_kql_in_both_schemas():
    starts = [dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 2, 28, 11, tzinfo=UTC)]
    for schema in ("classic", "workspace"):
        assert_valid_kql({"roles": spend.spend_query(schema, "agent.cost.usd", "tenant", starts, T0, ["chat-web"]),
                          "all": spend.spend_query(schema, "agent.cost.usd", "tenant.id", starts[:1], T0)}, schema)


def test_tick_downshifts_the_tenant_over_80_percent_and_audits_the_inputs(downshift_env):
    la, ac, clock = downshift_env["la"], downshift_env["ac"], Clock(T0)
    la.seed("AppMetrics", cost_rows("acme", 85.0, T0 - dt.timedelta(minutes=5), n=4)
            + cost_rows("globex", 50.0, T0 - dt.timedelta(days=5), n=2)      # spent early: forecast 50 %
            + cost_rows("acme", 40.0, T0, role="another-app"))
    report = tick(clock)
    assert report.round_trips == 1 and [p[1] for p in report.planned] == ["acme"]
    [q] = la.queries()
    assert q["name"] == "downshift-spend" and "summarize" in q["query"]
    assert drain(downshift_env["env"], clock) == ["acted"]
    mine = kv(ac, "acme")
    assert mine["value"] == "gpt-4o-mini" and mine["tags"]["managed-by"] == "healer"
    assert kv(ac, None)["value"] == "gpt-4o" and kv(ac, "globex") is None     # others untouched
    assert any(i["key"] == "ai:sentinel" for i in ac.dump())
    [acted] = records(clock, outcome="acted")
    assert acted["subject"] == "acme" and acted["resource"] == AI_APP and acted["healer"] == "downshift"
    figures = acted["details"]["decision"]["inputs"]
    assert figures["spend"] == pytest.approx(85.0) and figures["budget"] == 100.0
    assert figures["spend_pct"] == pytest.approx(85.0) and figures["forecast"] > 85.0
    assert figures["trips"] == 1 and figures["dwell_s"] == 600 and figures["tier"] == 1
    assert acted["details"]["readBack"]["confirmed"] is True
    assert state("acme")["status"] == "DOWNSHIFTED"
    # Level-triggered, but nothing new to do: the next tick enqueues nothing.
    clock.advance(minutes=10)
    assert tick(clock).planned == []


def test_new_month_restores_at_the_tenants_own_period_boundary(downshift_env):
    """kiwi's month starts in Pacific/Auckland (UTC+13 in March): 11:00 UTC on March 31 is April 1 there."""
    la, ac = downshift_env["la"], downshift_env["ac"]
    clock = Clock(dt.datetime(2026, 3, 30, 12, 0, tzinfo=UTC))
    la.seed("AppMetrics", cost_rows("kiwi", 90.0, clock.now, n=3) + cost_rows("acme", 90.0, clock.now, n=3))
    tick(clock)
    assert sorted(drain(downshift_env["env"], clock)) == ["acted", "acted"]
    assert kv(ac, "kiwi")["value"] == kv(ac, "acme")["value"] == "gpt-4o-mini"
    # April 1, 00:30 in Auckland = March 31, 11:30 UTC: a new period for kiwi only; fresh, low spend for both.
    clock.now = dt.datetime(2026, 3, 31, 11, 30, tzinfo=UTC)
    la.seed("AppMetrics", cost_rows("kiwi", 1.0, clock.now - dt.timedelta(minutes=2))
            + cost_rows("acme", 0.5, clock.now - dt.timedelta(minutes=2)))
    report = tick(clock)
    assert [p[1] for p in report.planned] == ["kiwi"]
    assert drain(downshift_env["env"], clock) == ["held"]          # causes cleared: RESTORING, dwell starts
    held = [r for r in records(clock, outcome="recorded") if r["subject"] == "kiwi"][0]
    assert "budget reason cleared (period reset)" in held["reason"] and "dwell" in held["reason"]
    assert held["details"]["decision"]["inputs"]["period"] == "2026-04"
    clock.advance(minutes=11)
    la.seed("AppMetrics", cost_rows("kiwi", 1.0, clock.now - dt.timedelta(minutes=1)))
    assert [p[1] for p in tick(clock).planned] == ["kiwi"]
    assert drain(downshift_env["env"], clock) == ["acted"]
    assert kv(ac, "kiwi") is None                 # Healer's own key-value removed: kiwi inherits gpt-4o again
    assert kv(ac, "acme")["value"] == "gpt-4o-mini"
    assert state("kiwi")["status"] == "RESTORING"
    clock.advance(minutes=10)
    tick(clock)
    drain(downshift_env["env"], clock)
    assert state("kiwi")["status"] == "NORMAL"


def test_unknown_spend_never_upshifts(downshift_env):
    la, ac = downshift_env["la"], downshift_env["ac"]
    clock = Clock(dt.datetime(2026, 3, 30, 12, 0, tzinfo=UTC))
    la.seed("AppMetrics", cost_rows("acme", 95.0, clock.now))
    tick(clock)
    drain(downshift_env["env"], clock)
    assert kv(ac, "acme")["value"] == "gpt-4o-mini"
    clock.now = dt.datetime(2026, 4, 2, 12, 0, tzinfo=UTC)         # a new month, long past the dwell
    la.fault("error", status=503, code="ServiceUnavailable", count=10)
    report = tick(clock)
    assert report.spend_error and report.planned == []
    assert any("spend unknown" in r["reason"] for r in records(clock, outcome="failed"))
    la.control("DELETE", "faults")
    la.fault("partial")                                              # partial = unknown, never zero
    assert tick(clock).planned == []
    report = tick(clock)                                             # answered, but no April rows: missing
    assert report.planned == [] and kv(ac, "acme")["value"] == "gpt-4o-mini"
    la.seed("AppMetrics", cost_rows("acme", 2.0, clock.now - dt.timedelta(minutes=3)))
    assert [p[1] for p in tick(clock).planned] == ["acme"]


def capacity(alert_id: str, condition: str, at: dt.datetime, tenant: str | None) -> dict:
    from tests.alert_samples import alert_body
    from shared.alerts import parse_alert
    body = alert_body("log_search_fired.json", alert_id=alert_id, rule="chat-429-ratio", condition=condition,
                      fired=at, resolved=at, custom_properties={"healer.target": AI_APP}, tenant=tenant)
    from healers.downshift.api import alert_dimensions
    return shell.alert_message(parse_alert(body), alert_dimensions(body))


def test_capacity_alert_split_by_tenant_fires_resolves_and_dedupes(downshift_env):
    la, ac, clock = downshift_env["la"], downshift_env["ac"], Clock(T0)
    settings = Settings()
    fired = capacity("11111111-aaaa-4bbb-8ccc-000000000001", "Fired", T0, "globex")
    assert shell.handle(settings, fired, owner="w", now=clock) == "acted"
    assert shell.handle(settings, fired, owner="w", now=clock) == "duplicate"     # re-delivery
    assert kv(ac, "globex")["value"] == "gpt-4o-mini" and kv(ac, "acme") is None
    clock.advance(minutes=5)
    resolved = capacity("11111111-aaaa-4bbb-8ccc-000000000001", "Resolved", clock.now, "globex")
    assert shell.handle(settings, resolved, owner="w", now=clock) == "held"       # dwell (and spend) pending
    la.seed("AppMetrics", cost_rows("globex", 10.0, T0 - dt.timedelta(days=10)))
    clock.advance(minutes=11)                                                       # dwell 600 s passed
    la.seed("AppMetrics", cost_rows("acme", 0.01, clock.now))                       # the app's data is fresh
    assert [p[1] for p in tick(clock).planned] == ["globex"]
    assert drain(downshift_env["env"], clock) == ["acted"], [r["reason"] for r in records(clock)]
    assert kv(ac, "globex") is None and state("globex")["status"] == "RESTORING"


def test_human_pin_and_change_behind_healers_back_hold(downshift_env):
    ac, clock = downshift_env["ac"], Clock(T0)
    settings = Settings()
    assert shell.handle(settings, capacity("11111111-aaaa-4bbb-8ccc-000000000002", "Fired", T0, "acme"),
                        owner="w", now=clock) == "acted"
    ac.human_edit(KEY, "acme", value="gpt-4o", tags={})                             # an operator upshifts by hand
    report = tick(clock)
    assert report.planned and report.planned[0][1] == "acme" and "HELD" in report.planned[0][2]
    assert drain(downshift_env["env"], clock) == ["held"]
    assert state("acme")["status"] == "HELD" and state("acme")["held_reason"] == "external_change"
    assert kv(ac, "acme")["value"] == "gpt-4o"                                      # never fought
    # A pinned (locked) app-wide value: a capacity alert for "*" holds, nothing written.
    ac.human_edit(KEY, None, locked=True)
    outcome = shell.handle(settings, capacity("11111111-aaaa-4bbb-8ccc-000000000003", "Fired", T0, None),
                           owner="w", now=clock)
    assert outcome == "held" and state("*")["held_reason"] == "pinned" and kv(ac, None)["value"] == "gpt-4o"
    ac.human_edit(KEY, None, locked=False)                                          # unpinned: released
    tick(clock)
    drain(downshift_env["env"], clock)
    assert state("*")["status"] in ("NORMAL", "DOWNSHIFTED")
    # The operator releases acme explicitly.
    assert shell.release(settings, AI_APP, "acme", by="oncall", reason="done", owner="op", now=clock) == "none"
    assert state("acme")["status"] == "NORMAL" and state("acme")["baseline"] == "gpt-4o"


def test_etag_write_conflict_is_reported_not_forced(downshift_env):
    ac = downshift_env["ac"]
    from healers.downshift.actuators import actuator_for
    app = Settings().downshift_apps[AI_APP.lower()]
    act = actuator_for(Settings(), app)
    assert isinstance(act, AppConfigActuator)
    seen = act.read("*")
    ac.human_edit(KEY, None, value="gpt-4o-mini")
    with pytest.raises(WriteConflict):
        act.write("*", "gpt-35-turbo", seen, "test", T0)
    fresh_tenant = act.read("newco")
    assert fresh_tenant == Current("gpt-4o-mini", None, False, None, False)       # inherits the app-wide value
    ac.seed([{"key": KEY, "label": "newco", "value": "gpt-4o"}])                   # appeared meanwhile
    with pytest.raises(WriteConflict):
        act.write("newco", "gpt-35-turbo", fresh_tenant, "test", T0)             # If-None-Match: * → 412


@pytest.mark.parametrize("control", ["dry-run", "deny", "kill"])
def test_dry_run_deny_and_kill_switch_write_nothing_and_save_no_switch(downshift_env, monkeypatch, control):
    ac, clock = downshift_env["ac"], Clock(T0)
    env = {"dry-run": {"HEALER_DRY_RUN": "true"}, "kill": {"HEALER_KILL_SWITCH": "true"},
           "deny": {"HEALER_POLICY": json.dumps({"version": 1, "default": "deny", "rules": [
               {"action": "downshift.*", "resource": "*", "effect": "deny"}]})}}[control]
    apply_env(monkeypatch, env)
    outcome = shell.handle(Settings(), capacity("11111111-aaaa-4bbb-8ccc-000000000004", "Fired", T0, "acme"),
                           owner="w", now=clock)
    assert outcome == {"dry-run": "dry-run", "deny": "refused", "kill": "skipped"}[control]
    assert kv(ac, "acme") is None
    saved = state("acme")
    assert saved["status"] == "NORMAL" and list(saved["alerts"]) == ["11111111-aaaa-4bbb-8ccc-000000000004"]


def test_policy_ask_parks_and_the_approval_writes(downshift_env, monkeypatch):
    ac, clock = downshift_env["ac"], Clock(T0)
    apply_env(monkeypatch, {"HEALER_POLICY": json.dumps({"version": 1, "default": "deny", "rules": [
        {"action": "downshift.switch", "resource": "*", "effect": "ask"}]})})
    settings = Settings()
    assert shell.handle(settings, capacity("11111111-aaaa-4bbb-8ccc-000000000005", "Fired", T0, "acme"),
                        owner="w", now=clock) == "pending"
    from shared import approvals
    [pending] = approvals.list_pending(settings, "downshift", now=T0)
    assert pending["action"] == "downshift.switch" and kv(ac, "acme") is None
    decided = approvals.decide(settings, healer="downshift", aid=pending["id"], approve=True, by="lead", note="",
                               now=T0)
    from shared.work import enqueue
    enqueue(settings, decided["queue"], {**decided["message"], "approvalId": pending["id"]})
    assert drain(downshift_env["env"], clock) == ["acted"]
    assert kv(ac, "acme")["value"] == "gpt-4o-mini"
    assert approvals.get(settings, "downshift", pending["id"]).data["status"] == "executed"


def test_app_setting_fallback_keeps_every_setting_and_makes_it_sticky(downshift_env):
    arm, clock = downshift_env["arm"], Clock(T0)
    from healers.downshift.budget import parse_budget_alert
    from tests.downshift.test_budget import LEGACY
    msg = shell.budget_message(parse_budget_alert({**LEGACY, "data": {**LEGACY["data"], "SpendingAmount": "8500",
                                                                      "Budget": "10000"}}), T0)
    assert shell.handle(Settings(), msg, owner="w", now=clock) == "acted"
    app = arm.app("ai-prod", "ops-bot")
    prod = app["slots"]["production"]["app_settings"]
    assert prod["AI_MODEL"] == "gpt-4o-mini" and prod["HEALER_MANAGED_AI_MODEL"] == "gpt-4o-mini"
    assert prod["FEATURE_X"] == "on" and prod["OPENAI_KEY"].startswith("@Microsoft.KeyVault(")
    assert app["slots"]["staging"]["app_settings"]["AI_MODEL"] == "gpt-4o"
    sticky = app["slot_config_names"]
    assert {"SLOT_NAME", "AI_MODEL", "HEALER_MANAGED_AI_MODEL"} <= set(sticky["appSettingNames"])
    assert sticky["connectionStringNames"] == ["DB"]
    [acted] = records(clock, outcome="acted")
    assert acted["resource"] == OPS_APP and acted["subject"] == "*" and "restarts" in acted["reason"]
    assert acted["details"]["write"]["settingsPreserved"] is True
    assert shell.handle(Settings(), msg, owner="w", now=clock) == "duplicate"


def test_concurrent_webhook_and_timer_write_once(downshift_env):
    """An alert for acme and the timer's evaluation of acme (over budget) race: serialised by the lease, one write."""
    la, ac, clock = downshift_env["la"], downshift_env["ac"], Clock(T0)
    la.seed("AppMetrics", cost_rows("acme", 92.0, T0))
    report = tick(clock)
    assert [p[1] for p in report.planned] == ["acme"]
    from shared.storage import queue
    settings = Settings()
    [queued] = list(queue(settings, shell.QUEUE).receive_messages(max_messages=1))
    timer_msg = json.loads(queued.content)
    alert_msg = capacity("11111111-aaaa-4bbb-8ccc-000000000006", "Fired", T0, "acme")
    outcomes: dict[str, str] = {}
    start = threading.Barrier(2)

    def worker(name, message):
        from shared.work import RetryLater
        start.wait()
        for _ in range(100):
            try:
                outcomes[name] = shell.handle(settings, message, owner=name, now=clock)
                return
            except RetryLater:
                continue

    threads = [threading.Thread(target=worker, args=("timer", timer_msg)),
               threading.Thread(target=worker, args=("webhook", alert_msg))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values()) == ["acted", "none"], outcomes
    puts = [r for r in ac.requests() if r["op"] == "PUT" and r["key"] == KEY and r["status"] == 200]
    assert len(puts) == 1 and kv(ac, "acme")["value"] == "gpt-4o-mini"
    final = state("acme")
    assert final["status"] == "DOWNSHIFTED" and final["trips"] == 1 and final["reason"] in ("budget", "capacity")


def test_a_landed_write_is_recorded_even_when_the_sentinel_bump_fails(downshift_env):
    """The model key is written, then the sentinel cannot be (an operator locked it). The switch happened: its state
    must be saved, or the retry adopts Healer's own value as the baseline and steps down a second rung."""
    ac, clock = downshift_env["ac"], Clock(T0)
    ac.seed([{"key": "ai:sentinel", "value": "0", "locked": True}])
    settings = Settings()
    fired = capacity("11111111-aaaa-4bbb-8ccc-000000000007", "Fired", T0, "acme")
    assert shell.handle(settings, fired, owner="w", now=clock) == "acted"
    assert kv(ac, "acme")["value"] == "gpt-4o-mini"
    saved = state("acme")
    assert saved["status"] == "DOWNSHIFTED" and saved["model"] == "gpt-4o-mini" and saved["baseline"] == "gpt-4o"
    [acted] = records(clock, outcome="acted")
    assert acted["details"]["readBack"]["confirmed"] is False and "sentinel" in acted["reason"]
    assert "sentinelError" in acted["details"]["write"]
    # The next tick changes nothing: no second rung, no HELD.
    clock.advance(minutes=1)
    tick(clock)
    drain(downshift_env["env"], clock)
    assert kv(ac, "acme")["value"] == "gpt-4o-mini" and state("acme")["status"] == "DOWNSHIFTED"


def test_app_setting_is_made_sticky_before_it_is_written(downshift_env):
    """If making the setting slot-sticky fails, nothing was written: a value Healer wrote is never one a swap can
    carry away, and the failure leaves no unrecorded switch behind."""
    arm, clock = downshift_env["arm"], Clock(T0)
    from healers.downshift.budget import parse_budget_alert
    from tests.downshift.test_budget import LEGACY
    arm.inject_fault("PUT", r"/config/slotConfigNames", 403, code="AuthorizationFailed")
    msg = shell.budget_message(parse_budget_alert({**LEGACY, "data": {**LEGACY["data"], "SpendingAmount": "8500",
                                                                      "Budget": "10000"}}), T0)
    with pytest.raises(Exception):
        shell.handle(Settings(), msg, owner="w", now=clock)
    prod = arm.app("ai-prod", "ops-bot")["slots"]["production"]["app_settings"]
    assert prod["AI_MODEL"] == "gpt-4o" and "HEALER_MANAGED_AI_MODEL" not in prod
    assert state("*", OPS_APP)["status"] == "NORMAL"
    [failed] = records(clock, outcome="failed")
    assert "write failed" in failed["reason"]


def test_budget_names_need_an_app_wide_budget_to_restore_against():
    """A budget alert trips tenant "*"; with no app-wide budget its spend is never known, so it could never restore."""
    from shared.config import ConfigError
    from tests.downshift.test_shell_env import ops_app_config
    bad = ops_app_config(tenants={})
    with pytest.raises(ConfigError, match="app-wide budget"):
        shell.load_apps(Settings({"HEALER_DOWNSHIFT_APPS": json.dumps([bad])}))
    assert shell.load_apps(Settings({"HEALER_DOWNSHIFT_APPS": json.dumps([ops_app_config()])}))
    no_alerts = ops_app_config(tenants={}, budgetNames=[])
    assert shell.load_apps(Settings({"HEALER_DOWNSHIFT_APPS": json.dumps([no_alerts])}))
