"""Over the real wire (Azurite, the App Configuration and Log Analytics stand-ins, the ARM stand-in):

* an app-wide capacity restore never upshifts a tenant that inherits the app-wide value and is over budget;
* a crash between the write and the state save is recovered by the next delivery or tick (pending-write intent),
  without a second step down and without HELD.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from healers.downshift import shell
from shared.config import Settings
from tests.downshift.test_shell_env import (AI_APP, KEY, OPS_APP, Clock, app_config, apply_env,  # noqa: F401
                                            cost_rows, downshift_env, downshift_servers, drain, kv, ops_app_config,
                                            records)

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def capacity(alert_id: str, condition: str, at: dt.datetime, tenant: str | None, target: str = AI_APP) -> dict:
    from healers.downshift.api import alert_dimensions
    from shared.alerts import parse_alert
    from tests.alert_samples import alert_body
    body = alert_body("log_search_fired.json", alert_id=alert_id, rule="chat-429-ratio", condition=condition,
                      fired=at, resolved=at, custom_properties={"healer.target": target}, tenant=tenant)
    return shell.alert_message(parse_alert(body), alert_dimensions(body))


def record(tenant: str, app: str = AI_APP) -> dict:
    from shared.state import Store, safe_key
    rec = Store(Settings(), shell.TABLE).get(safe_key(app.lower()), safe_key(tenant))
    return rec.data if rec else {}


def state(tenant: str, app: str = AI_APP) -> dict:
    return record(tenant, app).get("state") or {}


def writes(ac, label: str | None) -> list[dict]:
    return [r for r in ac.requests() if r["op"] in ("PUT", "DELETE") and r["key"] == KEY and r["label"] == label
            and r["status"] == 200]


def handle_only(clock, tenant: str) -> list[str]:
    """Process just the queued evaluations of one tenant (the others stay queued)."""
    from shared.storage import queue
    from shared.work import run_queue_message
    settings = Settings()
    q = queue(settings, shell.QUEUE)
    outcomes = []
    batch = list(q.receive_messages(max_messages=32, visibility_timeout=1))
    for m in batch:
        if json.loads(m.content).get("tenant") == tenant:
            outcomes.append(run_queue_message(settings, shell.QUEUE, m.content, m.dequeue_count or 1,
                                              lambda msg: shell.handle(settings, msg, owner="w", now=clock),
                                              shell.MAX_ATTEMPTS))
            q.delete_message(m)
        else:
            q.update_message(m, visibility_timeout=0)
    return outcomes


# ---------------------------------------------------------------------------------------------- 1. restore guard

@pytest.fixture
def app_wide_budget(downshift_env, monkeypatch):
    """chat-web with an app-wide budget (so its app-wide record can restore) and two tenants that inherit."""
    ac = downshift_env["ac"]
    cfg = app_config(ac.endpoint, tenants={"*": {"budget": 100000.0}, "acme": {"budget": 100.0},
                                           "globex": {"budget": 100.0}})
    apply_env(monkeypatch, {"HEALER_DOWNSHIFT_APPS": json.dumps([cfg, ops_app_config()])})
    return downshift_env


def _app_wide_capacity_downshift_then_resolved(env, clock) -> None:
    la, ac = env["la"], env["ac"]
    settings = Settings()
    assert shell.handle(settings, capacity("22222222-aaaa-4bbb-8ccc-000000000001", "Fired", T0, None),
                        owner="w", now=clock) == "acted"
    assert kv(ac, None)["value"] == "gpt-4o-mini" and kv(ac, "acme") is None       # acme and globex inherit
    clock.advance(minutes=5)
    assert shell.handle(settings, capacity("22222222-aaaa-4bbb-8ccc-000000000001", "Resolved", clock.now, None),
                        owner="w", now=clock) == "held"                               # dwell first
    # acme burns past 80 % of its budget while it reads the app-wide gpt-4o-mini; globex does not.
    la.seed("AppMetrics", cost_rows("acme", 85.0, clock.now, n=3)
            + cost_rows("globex", 10.0, T0 - dt.timedelta(days=10)))                      # spent early: low forecast


def test_app_wide_restore_holds_an_inheriting_over_budget_tenant_at_its_model(app_wide_budget):
    env, clock = app_wide_budget, Clock(T0)
    ac = env["ac"]
    _app_wide_capacity_downshift_then_resolved(env, clock)
    clock.advance(minutes=11)                                                         # dwell passed
    planned = {p[1]: p[2] for p in shell.tick(Settings(), owner="tick", now=clock).planned}
    assert planned.get("*") == "restore"
    # The app-wide restore runs first (it may: evaluations of different tenants are not ordered).
    assert handle_only(clock, "*") == ["acted"]
    assert kv(ac, None)["value"] == "gpt-4o"
    mine = kv(ac, "acme")
    assert mine is not None and mine["value"] == "gpt-4o-mini", "an over-budget tenant was upshifted"
    assert mine["tags"]["managed-by"] == "healer"
    assert kv(ac, "globex") is None                                                   # under budget: follows
    order = [(r["label"], r.get("value")) for r in ac.requests() if r["key"] == KEY and r["status"] == 200]
    assert order.index(("acme", "gpt-4o-mini")) < order.index((None, "gpt-4o"))       # held before the restore
    acme = record("acme")
    assert acme["created"] is True and acme.get("pending") is None
    assert (acme["state"]["status"], acme["state"]["reason"], acme["state"]["model"], acme["state"]["baseline"]) == \
        ("DOWNSHIFTED", "budget", "gpt-4o-mini", "gpt-4o")
    held = [r for r in records(clock, outcome="acted") if r["subject"] == "acme"]
    assert len(held) == 1 and "held at gpt-4o-mini" in held[0]["reason"] and "spend 85" in held[0]["reason"]
    wide = [r for r in records(clock, outcome="acted") if r["subject"] == "*" and "restore" in r["reason"]]
    assert wide[0]["details"]["guarded"] == ["acme"] and "acme" in wide[0]["details"]["guard"]["over"]
    # acme's own evaluation: stays where it is (no second step down, no HELD: the value is recorded as Healer's).
    assert set(drain(env["env"], clock)) <= {"none", "held"}
    assert kv(ac, "acme")["value"] == "gpt-4o-mini" and state("acme")["status"] == "DOWNSHIFTED"
    clock.advance(minutes=10)
    shell.tick(Settings(), owner="tick", now=clock)
    drain(env["env"], clock)
    assert state("acme")["status"] == "DOWNSHIFTED" and len(writes(ac, "acme")) == 1
    # A new month: acme's budget reason clears and it restores on its own path, back to inheriting gpt-4o.
    clock.now = dt.datetime(2026, 4, 1, 0, 30, tzinfo=UTC)
    env["la"].seed("AppMetrics", cost_rows("acme", 1.0, clock.now) + cost_rows("globex", 1.0, clock.now))
    shell.tick(Settings(), owner="tick", now=clock)
    drain(env["env"], clock)
    assert state("acme")["status"] == "RESTORING" and kv(ac, "acme")["value"] == "gpt-4o-mini"
    clock.advance(minutes=11)
    env["la"].seed("AppMetrics", cost_rows("acme", 1.0, clock.now))
    shell.tick(Settings(), owner="tick", now=clock)
    assert "acted" in drain(env["env"], clock)
    assert kv(ac, "acme") is None and record("acme")["created"] is False              # inherits gpt-4o again


def test_app_wide_restore_waits_when_tenant_spend_is_unknown(app_wide_budget):
    env, clock = app_wide_budget, Clock(T0)
    ac, la = env["ac"], env["la"]
    _app_wide_capacity_downshift_then_resolved(env, clock)
    clock.advance(minutes=11)
    planned = {p[1] for p in shell.tick(Settings(), owner="tick", now=clock).planned}
    assert "*" in planned
    la.fault("error", status=503, code="ServiceUnavailable", count=5)                # the guard's query fails
    assert handle_only(clock, "*") == ["held"]
    assert kv(ac, None)["value"] == "gpt-4o-mini" and kv(ac, "acme") is None          # nothing moved
    [skipped] = [r for r in records(clock, outcome="skipped") if r["subject"] == "*"]
    assert "tenant spend unknown" in skipped["reason"] and state("*")["status"] == "RESTORING"


def test_a_pinned_app_wide_value_holds_inheriting_tenants_and_is_never_shadowed(app_wide_budget):
    env, clock = app_wide_budget, Clock(T0)
    ac = env["ac"]
    _app_wide_capacity_downshift_then_resolved(env, clock)
    ac.human_edit(KEY, None, locked=True)                                             # pins gpt-4o-mini app-wide
    clock.advance(minutes=11)
    shell.tick(Settings(), owner="tick", now=clock)
    drain(env["env"], clock)
    assert state("*")["status"] == "HELD" and state("*")["held_reason"] == "pinned"
    # acme is over budget, but its value is the pinned app-wide one: HELD, no tenant value written over the pin.
    assert state("acme")["status"] == "HELD" and state("acme")["held_reason"] == "pinned"
    assert kv(ac, "acme") is None and writes(ac, "acme") == [] and kv(ac, None)["value"] == "gpt-4o-mini"
    assert state("globex") == {}                                                     # idle tenants: no record
    ac.human_edit(KEY, None, locked=False)                                            # unpinned: both released
    clock.advance(minutes=1)
    shell.tick(Settings(), owner="tick", now=clock)
    drain(env["env"], clock)
    assert state("acme")["status"] != "HELD" and state("*")["status"] == "NORMAL"


def test_app_setting_actuator_over_budget_tenant_blocks_the_app_wide_restore(downshift_env, monkeypatch):
    arm, la, clock = downshift_env["arm"], downshift_env["la"], Clock(T0)
    # App-wide actuator: tenants cannot be configured one by one; `defaultBudget` gives every tenant a budget.
    cfg = ops_app_config(tenants={"*": {"budget": 100000.0}}, defaultBudget=100.0)
    apply_env(monkeypatch, {"HEALER_DOWNSHIFT_APPS": json.dumps([cfg])})
    settings = Settings()
    assert shell.handle(settings, capacity("22222222-aaaa-4bbb-8ccc-000000000009", "Fired", T0, None, OPS_APP),
                        owner="w", now=clock) == "acted"
    clock.advance(minutes=5)
    shell.handle(settings, capacity("22222222-aaaa-4bbb-8ccc-000000000009", "Resolved", clock.now, None, OPS_APP),
                 owner="w", now=clock)
    la.seed("AppMetrics", cost_rows("acme", 90.0, clock.now, role="ops-bot", n=2))
    clock.advance(minutes=11)
    assert [p[1] for p in shell.tick(settings, owner="tick", now=clock).planned] == ["*"]
    assert drain(downshift_env["env"], clock) == ["held"]
    assert arm.app("ai-prod", "ops-bot")["slots"]["production"]["app_settings"]["AI_MODEL"] == "gpt-4o-mini"
    [skipped] = records(clock, outcome="skipped")
    assert "acme" in skipped["reason"] and "app-setting actuator is app-wide" in skipped["reason"]
    # Next month, acme's spend is low again: the restore goes ahead.
    clock.now = dt.datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
    la.seed("AppMetrics", cost_rows("acme", 1.0, dt.datetime(2026, 4, 2, tzinfo=UTC), role="ops-bot")
            + cost_rows("canary", 0.0, clock.now, role="ops-bot"))                   # the app's data is fresh
    shell.tick(settings, owner="tick", now=clock)
    assert drain(downshift_env["env"], clock) == ["acted"], [r["reason"] for r in records(clock)]
    assert arm.app("ai-prod", "ops-bot")["slots"]["production"]["app_settings"]["AI_MODEL"] == "gpt-4o"


def test_holds_are_withdrawn_when_the_app_wide_write_does_not_happen(app_wide_budget, monkeypatch):
    """A human changes the app-wide value between the hold and the app-wide write: the restore is not made, and the
    hold (which only accompanies Healer's own restore) is withdrawn so acme follows the human's value again."""
    from healers.downshift import actuators
    env, clock = app_wide_budget, Clock(T0)
    ac = env["ac"]
    _app_wide_capacity_downshift_then_resolved(env, clock)
    clock.advance(minutes=11)
    shell.tick(Settings(), owner="tick", now=clock)
    real_write = actuators.AppConfigActuator.write

    def human_first(actuator, tenant, value, current, reason, now, remove=False):
        if tenant == "*":
            ac.human_edit(KEY, None, value="gpt-35-turbo")                           # meanwhile, by hand
        return real_write(actuator, tenant, value, current, reason, now, remove)
    monkeypatch.setattr(actuators.AppConfigActuator, "write", human_first)
    assert handle_only(clock, "*") == ["skipped"]
    assert kv(ac, None)["value"] == "gpt-35-turbo" and kv(ac, "acme") is None        # held, then withdrawn
    assert [w["op"] for w in writes(ac, "acme")] == ["PUT", "DELETE"]
    acme = record("acme")
    assert acme.get("pending") is None and acme["state"].get("status", "NORMAL") == "NORMAL"
    [skipped] = [r for r in records(clock, outcome="skipped") if r["subject"] == "*"]
    assert skipped["details"]["unguarded"] == ["acme"]


# ---------------------------------------------------------------------------------------------- 2. crash recovery

class Crash(BaseException):
    """The worker dies: nothing after it runs to completion (every later state write fails too)."""


class Crasher:
    def __init__(self, monkeypatch, point: str):
        from healers.downshift import actuators
        from shared import state as state_mod
        self.point, self.crashed, self.active, self.written = point, False, True, False
        real_replace = state_mod.Store.replace
        real_write = actuators.AppConfigActuator.write
        crasher = self

        def replace(store, rec):
            if crasher.active and crasher.crashed:
                raise Crash("worker gone")
            if crasher.active and crasher.point == "before_state_save" and crasher.written:
                crasher.crashed = True
                raise Crash("crash before the state save")
            out = real_replace(store, rec)
            if (crasher.active and crasher.point == "after_intent" and rec.row == "acme"
                    and rec.data.get("pending") is not None):
                crasher.crashed = True
                raise Crash("crash after the intent was saved")
            return out

        def write(actuator, tenant, value, current, reason, now, remove=False):
            if crasher.active and crasher.crashed:
                raise Crash("worker gone")
            if crasher.active and crasher.point == "after_write":
                client = actuator.client
                real_set = client.set_configuration_setting

                def set_then_crash(setting, **kw):
                    out = real_set(setting, **kw)
                    if setting.key == KEY:
                        crasher.crashed = True
                        raise Crash("crash right after the write landed (sentinel not bumped)")
                    return out
                client.set_configuration_setting = set_then_crash
                try:
                    return real_write(actuator, tenant, value, current, reason, now, remove)
                finally:
                    del client.set_configuration_setting
            out = real_write(actuator, tenant, value, current, reason, now, remove)
            crasher.written = True
            return out

        monkeypatch.setattr(state_mod.Store, "replace", replace)
        monkeypatch.setattr(actuators.AppConfigActuator, "write", write)


@pytest.mark.parametrize("point", ["after_intent", "after_write", "before_state_save"])
@pytest.mark.parametrize("resume", ["redelivery", "tick"])
def test_a_crash_at_any_step_is_recovered_without_a_second_step_down_or_held(downshift_env, monkeypatch, point,
                                                                           resume):
    ac, clock = downshift_env["ac"], Clock(T0)
    settings = Settings()
    fired = capacity("33333333-aaaa-4bbb-8ccc-000000000001", "Fired", T0, "acme")
    crasher = Crasher(monkeypatch, point)
    with pytest.raises(Crash):
        shell.handle(settings, fired, owner="w1", now=clock)
    crasher.active = False
    landed = point != "after_intent"
    assert (kv(ac, "acme") or {}).get("value") == ("gpt-4o-mini" if landed else None)
    left = record("acme")
    assert left["pending"]["action"] == "downshift" and left["pending"]["to"] == "gpt-4o-mini"
    assert (left.get("state") or {}).get("status", "NORMAL") == "NORMAL"        # the switch is not recorded yet
    clock.advance(seconds=settings.lease_seconds + 1)                                 # the dead worker's lease expires
    if resume == "redelivery":
        outcome = shell.handle(settings, fired, owner="w2", now=clock)
        assert outcome == ("duplicate" if landed else "acted")
    else:
        report = shell.tick(settings, owner="tick", now=clock)
        assert ("acme", "pending write") in {(p[1], p[2]) for p in report.planned}
        drain(downshift_env["env"], clock)
        if not landed:                                                                # the alert is redelivered too
            assert shell.handle(settings, fired, owner="w2", now=clock) == "acted"
    after = record("acme")
    assert after.get("pending") is None and after["created"] is True
    assert (after["state"]["status"], after["state"]["model"], after["state"]["baseline"], after["state"]["trips"]) \
        == ("DOWNSHIFTED", "gpt-4o-mini", "gpt-4o", 1)
    assert kv(ac, "acme")["value"] == "gpt-4o-mini" and len(writes(ac, "acme")) == 1  # one step, one write
    why = {r["details"].get("recovery") for r in records(clock) if r["subject"] == "acme"}
    assert ("landed" if landed else "not_landed") in why
    if landed:
        [rec] = [r for r in records(clock, outcome="acted") if r["details"].get("recovery") == "landed"]
        assert rec["reason"].startswith("recovered:") and "sentinelValue" in rec["details"]["sentinel"]
    # Later ticks: nothing more to do, never HELD.
    clock.advance(minutes=2)
    shell.tick(settings, owner="tick", now=clock)
    drain(downshift_env["env"], clock)
    assert state("acme")["status"] == "DOWNSHIFTED" and len(writes(ac, "acme")) == 1


def test_a_third_value_after_a_crash_holds(downshift_env, monkeypatch):
    ac, clock = downshift_env["ac"], Clock(T0)
    settings = Settings()
    fired = capacity("33333333-aaaa-4bbb-8ccc-000000000002", "Fired", T0, "acme")
    crasher = Crasher(monkeypatch, "before_state_save")
    with pytest.raises(Crash):
        shell.handle(settings, fired, owner="w1", now=clock)
    crasher.active = False
    ac.human_edit(KEY, "acme", value="gpt-35-turbo", tags={})                        # someone else, meanwhile
    clock.advance(seconds=settings.lease_seconds + 1)
    assert shell.handle(settings, fired, owner="w2", now=clock) in ("duplicate", "held")
    st = record("acme")
    assert st.get("pending") is None and st["state"]["status"] == "HELD"
    assert st["state"]["held_reason"] == "unrecorded_write" and kv(ac, "acme")["value"] == "gpt-35-turbo"


def test_a_completed_write_leaves_no_intent(downshift_env):
    clock = Clock(T0)
    assert shell.handle(Settings(), capacity("33333333-aaaa-4bbb-8ccc-000000000003", "Fired", T0, "acme"),
                        owner="w", now=clock) == "acted"
    assert record("acme").get("pending") is None
