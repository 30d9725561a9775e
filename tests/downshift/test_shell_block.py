"""The last rung over the real wire: the block flag in the App Configuration stand-in, approvals and audit in
Azurite, spend from the Log Analytics stand-in."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from shared.work import RetryLater

from healers.downshift import shell
from shared import approvals
from shared.config import Settings
from shared.work import enqueue
from tests.downshift.test_shell import capacity, state, tick
from tests.downshift.test_shell_env import (AI_APP, Clock, app_config, apply_env, cost_rows, downshift_env,  # noqa: F401
                                            downshift_servers, drain, records)

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
BLOCK_KEY = "ai:blocked"


def flag(ac, tenant: str | None) -> dict | None:
    return next((i for i in ac.dump() if i["key"] == BLOCK_KEY and i["label"] == tenant), None)


def enable_block(monkeypatch, env, policy: dict | None = None, **tenant_block) -> None:
    app = app_config(env["ac"].endpoint)
    app["policy"]["block"] = True
    for tenant, on in tenant_block.items():
        app["tenants"][tenant]["block"] = on
    changes = {"HEALER_DOWNSHIFT_APPS": json.dumps([app])}
    if policy is not None:
        changes["HEALER_POLICY"] = json.dumps(policy)
    apply_env(monkeypatch, changes)


def approve_all(clock) -> list[str]:
    settings = Settings()
    ids = []
    for pending in approvals.list_pending(settings, "downshift", now=clock.now):
        decided = approvals.decide(settings, healer="downshift", aid=pending["id"], approve=True, by="lead",
                                   note="", now=clock.now)
        enqueue(settings, decided["queue"], {**decided["message"], "approvalId": pending["id"]})
        ids.append(pending["id"])
    return ids


def test_over_budget_tenant_is_blocked_after_approval_and_unblocked_at_the_period_reset(downshift_env, monkeypatch):
    la, ac, clock = downshift_env["la"], downshift_env["ac"], Clock(T0)
    enable_block(monkeypatch, downshift_env)        # ALLOW_ALL: a wildcard allow, so downshift.block asks
    la.seed("AppMetrics", cost_rows("acme", 104.0, T0, n=4) + cost_rows("globex", 90.0, T0, n=2))
    report = tick(clock)
    assert sorted(p[1] for p in report.planned) == ["acme", "globex"]
    assert sorted(drain(downshift_env["env"], clock)) == ["acted", "acted,pending"]
    assert flag(ac, "acme") is None and flag(ac, "globex") is None
    [asked] = records(clock, outcome="pending")
    assert asked["subject"] == "acme" and asked["details"]["action"] == "downshift.block"
    assert "default ask" in asked["details"]["policy"]["reason"]
    [aid] = approve_all(clock)
    assert drain(downshift_env["env"], clock) == ["acted"]
    mine = flag(ac, "acme")
    assert mine["value"] == "true" and mine["tags"]["managed-by"] == "healer"
    assert approvals.get(Settings(), "downshift", aid).data["status"] == "executed"
    saved = state("acme")
    assert saved["blocked"] is True and saved["blocked_period"] == "2026-03"
    clock.advance(minutes=10)
    la.seed("AppMetrics", cost_rows("acme", 1.0, clock.now))
    assert tick(clock).planned == []                              # blocked: nothing more to do this period
    # A capacity storm never lifts it (and never blocks globex, which is at 90 %).
    settings = Settings()
    for tenant in ("acme", "globex"):
        shell.handle(settings, capacity(f"11111111-aaaa-4bbb-8ccc-00000000009{len(tenant)}", "Resolved", clock.now,
                                        tenant), owner="w", now=clock)
    assert flag(ac, "acme")["value"] == "true" and flag(ac, "globex") is None
    # April 1 in UTC: the period resets and the block is lifted (Healer's own key-value deleted).
    clock.now = dt.datetime(2026, 4, 1, 0, 5, tzinfo=UTC)
    la.seed("AppMetrics", cost_rows("acme", 0.5, clock.now))
    assert "acme" in [p[1] for p in tick(clock).planned]
    assert "acted" in drain(downshift_env["env"], clock)[0]
    assert flag(ac, "acme") is None and state("acme")["blocked"] is False
    lifted = [r for r in records(clock, outcome="acted") if r["details"].get("action") == "downshift.unblock"]
    assert lifted and "period reset" in lifted[0]["reason"]


def test_explicit_allow_blocks_without_asking_and_operator_lift_waives_the_period(downshift_env, monkeypatch):
    la, ac, clock = downshift_env["la"], downshift_env["ac"], Clock(T0)
    enable_block(monkeypatch, downshift_env, {"version": 1, "default": "deny", "rules": [
        {"action": "downshift.*", "resource": "*", "effect": "allow"},
        {"action": "downshift.block", "resource": "*/sites/chat-web", "effect": "allow"}]}, globex=False)
    la.seed("AppMetrics", cost_rows("acme", 130.0, T0, n=2) + cost_rows("globex", 130.0, T0, n=2))
    tick(clock)
    assert sorted(drain(downshift_env["env"], clock)) == ["acted", "acted,acted"]
    assert flag(ac, "acme")["value"] == "true"
    assert flag(ac, "globex") is None                             # blocking turned off for this tenant
    outcome = shell.release(Settings(), AI_APP, "acme", by="ops", reason="customer paid", owner="op", now=clock,
                            unblock=True)
    assert outcome == "acted" and flag(ac, "acme") is None
    st = state("acme")
    assert st["blocked"] is False and st["block_waived"] == "2026-03"
    clock.advance(minutes=10)
    la.seed("AppMetrics", cost_rows("acme", 5.0, clock.now))
    assert "acme" not in [p[1] for p in tick(clock).planned]     # no re-block this period


def test_policy_deny_and_dry_run_never_block(downshift_env, monkeypatch):
    la, ac, clock = downshift_env["la"], downshift_env["ac"], Clock(T0)
    enable_block(monkeypatch, downshift_env, {"version": 1, "default": "deny", "rules": [
        {"action": "downshift.switch", "resource": "*", "effect": "allow"}]})
    la.seed("AppMetrics", cost_rows("acme", 130.0, T0, n=2))
    tick(clock)
    assert drain(downshift_env["env"], clock) == ["acted,refused"]
    assert flag(ac, "acme") is None and state("acme")["blocked"] is False
    apply_env(monkeypatch, {"HEALER_DRY_RUN": "true", "HEALER_POLICY": json.dumps({
        "version": 1, "default": "deny", "rules": [{"action": "downshift.block", "resource": "*", "effect": "allow"}]})})
    clock.advance(minutes=10)
    la.seed("AppMetrics", cost_rows("acme", 1.0, clock.now))
    tick(clock)
    assert drain(downshift_env["env"], clock) == ["dry-run"]
    assert flag(ac, "acme") is None


def test_a_crash_after_the_flag_write_still_lifts_the_block_at_the_period_reset(downshift_env, monkeypatch):
    """The flag was written, then the worker stopped before the state was saved: the redelivered evaluation must
    know Healer set the flag, or the period reset never lifts it and the tenant stays blocked for good."""
    from healers.downshift.actuators import BlockFlag
    from shared.storage import queue
    la, ac, clock = downshift_env["la"], downshift_env["ac"], Clock(T0)
    enable_block(monkeypatch, downshift_env, {"version": 1, "default": "deny", "rules": [
        {"action": "downshift.*", "resource": "*", "effect": "allow"},
        {"action": "downshift.block", "resource": "*/sites/chat-web", "effect": "allow"}]}, globex=False)
    la.seed("AppMetrics", cost_rows("acme", 130.0, T0, n=2))
    tick(clock)
    real = BlockFlag.write

    def write_then_crash(self, *a, **kw):
        real(self, *a, **kw)
        raise RuntimeError("worker recycled after the write")
    monkeypatch.setattr(BlockFlag, "write", write_then_crash)
    settings = Settings()
    q = queue(settings, shell.QUEUE)
    [m] = list(q.receive_messages(max_messages=32, visibility_timeout=30))
    body = json.loads(m.content)
    with pytest.raises((RuntimeError, RetryLater)):  # a tick batch reports a tenant's crash as retry-later
        shell.handle(settings, body, owner="w1", now=clock)
    q.delete_message(m)
    assert flag(ac, "acme")["value"] == "true" and state("acme")["blocked"] is False
    monkeypatch.setattr(BlockFlag, "write", real)
    clock.now = dt.datetime(2026, 4, 1, 0, 5, tzinfo=UTC)           # the host redelivers it in the next period
    la.seed("AppMetrics", cost_rows("acme", 0.5, clock.now))
    shell.handle(settings, body, owner="w2", now=clock)
    assert flag(ac, "acme") is None, "Healer's own block flag outlived the period"
    assert state("acme")["blocked"] is False
    assert any("interrupted block" in r["reason"] for r in records(clock, outcome="recorded"))
