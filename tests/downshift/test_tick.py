"""The tick's enqueueing (healers/downshift/tick.py): evaluations in chunks, tenants still queued not re-queued,
every chunk's tenants evaluated under their own leases, finished ones never redone."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from healers.downshift import shell
from healers.downshift import tick as tick_mod
from shared.config import Settings
from tests.downshift.test_shell_env import (Clock, apply_env, app_config, cost_rows, downshift_env,  # noqa: F401
                                            downshift_servers, drain, ops_app_config)

pytestmark = pytest.mark.integration
TENANTS = [f"t{i:02d}" for i in range(25)]
T0 = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.timezone.utc)


def queued_messages() -> list[dict]:
    from shared.storage import queue
    return [json.loads(m.content) for m in queue(Settings(), shell.QUEUE).peek_messages(max_messages=32)]


@pytest.fixture
def many_tenants(downshift_env, monkeypatch):
    cfg = app_config(downshift_env["ac"].endpoint, tenants={t: {"budget": 100.0} for t in TENANTS})
    apply_env(monkeypatch, {"HEALER_DOWNSHIFT_APPS": json.dumps([cfg, ops_app_config()])})
    monkeypatch.setattr(tick_mod, "CHUNK", 10)
    monkeypatch.setattr(tick_mod, "SPREAD", 2)
    rows = []
    for t in TENANTS:
        rows += cost_rows(t, 90.0, T0)
    downshift_env["la"].seed("AppMetrics", rows)
    return downshift_env


def test_plan_goes_out_in_chunks_and_queued_tenants_are_not_queued_again(many_tenants):
    clock = Clock(T0)
    report = shell.tick(Settings(), owner="tick", now=clock)
    assert sorted(p[1] for p in report.planned) == TENANTS and report.enqueued == 25 and report.messages == 3
    sent = queued_messages()
    assert sorted(len(m["tenants"]) for m in sent) == [5, 10, 10] and {m["kind"] for m in sent} == {"tick-batch"}
    again = shell.tick(Settings(), owner="tick", now=clock)          # the first tick's work is still queued
    assert len(again.planned) == 25 and again.already_queued == 25 and again.messages == 0
    assert len(queued_messages()) == 3
    outcomes = drain(many_tenants["env"], clock)
    assert sorted(outcomes) == ["batch acted×10", "batch acted×10", "batch acted×5"]
    clock.advance(minutes=10)
    assert shell.tick(Settings(), owner="tick", now=clock).planned == []   # decided; markers removed


def test_a_marker_older_than_the_horizon_no_longer_holds_its_tenants_back():
    """A marker whose message was lost delays its tenants only until it ages out."""
    markers = [{"tenants": ["a", "b"], "at": T0.isoformat()}, {"tenants": ["c"], "at": "garbage"}]
    assert tick_mod.queued_tenants(markers, T0 + dt.timedelta(minutes=10)) == {"a", "b"}
    assert tick_mod.queued_tenants(markers, T0 + tick_mod.QUEUED_HORIZON) == set()


def test_small_plans_go_one_tenant_per_message():
    plan = [(f"t{i}", None, "downshift") for i in range(tick_mod.SINGLES_UP_TO)]
    assert [len(c) for c in tick_mod.chunks(plan, 100)] == [1] * tick_mod.SINGLES_UP_TO
    assert [len(c) for c in tick_mod.chunks(plan * 30, 100)] == [8] * 30        # at least SPREAD-ish messages
    assert [len(c) for c in tick_mod.chunks(plan * 500, 100)] == [100] * 40      # ~100 tenants per message


def test_retried_tenants_are_narrowed_and_finished_ones_never_redone(many_tenants, monkeypatch):
    from shared.work import RetryLater
    clock, calls = Clock(T0), []

    def evaluate(tenant, spend):
        calls.append(tenant)
        if tenant == "t03" and calls.count("t03") == 1:
            raise RetryLater(1, "busy")
        return "acted"
    msg = {"v": 1, "kind": "tick-batch", "app": "x", "queued": "~queued:abc", "attempt": 0,
           "tenants": [{"tenant": t, "spend": None} for t in ("t01", "t02", "t03")]}
    with pytest.raises(RetryLater):
        tick_mod.handle_queued(Settings(), shell.TABLE, "x", msg, evaluate, clock.now)
    assert [i["tenant"] for i in msg["tenants"]] == ["t03"]
    assert tick_mod.handle_queued(Settings(), shell.TABLE, "x", msg, evaluate, clock.now) == "acted"
    assert calls == ["t01", "t02", "t03", "t03"]
