"""Proving the recovery: queued re-checks of instances, health URLs and the alert's own signal."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from healers.rollback import prove, shell
from healers.rollback.recovery import Point, Results, SignalReading, judge, next_delay
from shared.config import Settings
from shared.state import Store, safe_key
from standins.stack import build_of
from tests.conftest import SHOP
from tests.rollback.test_shell import APP, RG, fired_alert, handle, healer_swaps, incident, message, records  # noqa

T = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.timezone.utc)
WINDOW = dt.timedelta(minutes=5)


def reading(after: list[tuple[int, float]], **kw) -> SignalReading:
    return SignalReading(name="Http5xx", operator="GreaterThan", threshold=25, aggregation="Total",
                         after=[Point(at=T + dt.timedelta(minutes=m), value=v) for m, v in after], **kw)


@pytest.mark.parametrize("after,now_min,status", [
    ([(m, 1.0) for m in range(7)], 6, "proven"),            # a full window after the swap, under the threshold
    ([(m, 1.0) for m in range(3)], 3, "waiting"),           # under so far, but no full window yet
    ([(m, 10.0) for m in range(7)], 6, "waiting"),          # 50 in the last 5 min > 25: still breaching
    ([(m, 10.0) for m in range(12)], 11, "failed"),         # still breaching at the deadline (10 min)
    ([], 11, "failed"),                                     # no data at all is never a recovery
])
def test_judge_signal(after, now_min, status):
    v = judge(Results(signal=[reading(after)]), swap_at=T, now=T + dt.timedelta(minutes=now_min),
              deadline=T + dt.timedelta(minutes=10), window=WINDOW)
    assert v.status == status, v.reason


def test_judge_requires_every_configured_check():
    ok = [reading([(m, 0.0) for m in range(7)])]
    now, deadline = T + dt.timedelta(minutes=6), T + dt.timedelta(minutes=10)
    assert judge(Results(signal=ok, health_ok=True, instances_ok=True), swap_at=T, now=now, deadline=deadline,
                 window=WINDOW).status == "proven"
    bad = judge(Results(signal=ok, health_ok=False, health=["http://x/chat: HTTP 502, expected 200"]),
                swap_at=T, now=now, deadline=deadline, window=WINDOW)
    assert bad.status == "waiting" and "HTTP 502" in bad.reason
    assert judge(Results(signal=[reading([], error="HttpResponseError: 403")]), swap_at=T, now=deadline,
                 deadline=deadline, window=WINDOW).status == "failed"


def test_backoff_grows_and_never_passes_the_deadline():
    assert next_delay(0, 30, deadline_in=900) < next_delay(3, 30, deadline_in=900) <= 300 * 1.2
    assert next_delay(5, 30, deadline_in=10) <= 11


# ---------------------------------------------------------------------------------------------- over the wire

def recovery_target(monkeypatch, **recovery):
    monkeypatch.setenv("HEALER_ROLLBACK_TARGETS", json.dumps([{"resourceId": SHOP, "recovery": {
        "minutes": 10, "recheckSeconds": 1, **recovery}}]))


def at(minutes: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)


def proof() -> dict:
    return Store(Settings(), "ops").get("rollback", safe_key(SHOP.lower())).data.get("proof")


def recheck(check: int, minutes: float) -> str:
    target = Settings().rollback_targets[SHOP.lower()]
    p = proof()
    return handle(prove.recheck_message(target, p["incident"] if p else "?", check), now=lambda: at(minutes))


def seed_5xx(arm, per_minute_before: float, per_minute_after: float) -> str:
    resource = fired_alert()["data"]["essentials"]["alertTargetIDs"][0]
    now = dt.datetime.now(dt.timezone.utc)
    arm.set_metric(resource, "Http5xx", [(now + dt.timedelta(minutes=m), per_minute_before if m <= 0
                                          else per_minute_after) for m in range(-8, 16)])
    return resource


def test_metric_recovers_after_a_full_window_then_proven(incident, arm, monkeypatch):
    recovery_target(monkeypatch)
    seed_5xx(arm, 40.0, 0.0)
    assert handle(message(fired_alert())) == "acted"
    assert "proving the recovery" in records("acted")[0]["reason"] and proof()["check"] == 0
    assert recheck(0, 2) == "waiting" and proof()["check"] == 1      # under the threshold, no full window yet
    assert recheck(0, 3) == "stale"                                  # a duplicate of the first re-check
    assert recheck(1, 6.5) == "proven" and proof() is None
    [done] = records("recorded")
    assert done["reason"].startswith("recovery proven: Http5xx total 0") and healer_swaps(arm) == 1


def test_a_swap_that_succeeds_but_5xx_stays_high_escalates_with_the_values(incident, arm, monkeypatch):
    recovery_target(monkeypatch)
    seed_5xx(arm, 40.0, 40.0)
    assert handle(message(fired_alert())) == "acted" and build_of(arm, RG, APP) == "v41"
    assert recheck(0, 6) == "waiting"
    assert recheck(1, 10.5) == "escalated"
    [esc] = records("escalated")
    assert "did not prove a recovery" in esc["reason"] and "Http5xx still total" in esc["reason"]
    ev = esc["details"]["recovery"]["evidence"]
    assert ev["signal"][0]["after"] and all(v == 40.0 for _, v in ev["signal"][0]["after"] if v is not None)
    assert [v for _, v in ev["signal"][0]["before"] if v] and ev["slots"]["production"]["build"] == "v41"
    assert ev["signalBefore"][0]["firedWith"] == 131.0
    assert handle(message(fired_alert(fired=at(0.05)))) == "skipped" and healer_swaps(arm) == 1   # escalated
    out = shell.rearm(Settings(), SHOP, by="oncall", reason="looked", now=at(0))
    assert "not recovered 10 min" in out["before"]["escalated"]


def test_each_instance_must_serve_the_good_build(incident, arm, monkeypatch, site_app):
    ids = ["a" * 64, "b" * 64]
    arm.patch_slot(RG, APP, "production", instances=ids)
    recovery_target(monkeypatch, signal=False, instanceCheck={"url": site_app.url + "/instance"},
                    healthChecks=[{"url": site_app.url + "/chat", "bodyContains": "pong"}])
    site_app(instances={ids[0]: "v41", ids[1]: "v42"}, routes={"/chat": {"status": 200, "body": "pong"}})
    assert handle(message(fired_alert())) == "acted"
    assert recheck(0, 1) == "waiting"
    site_app(ignore_affinity=True, instances={ids[0]: "v41", ids[1]: "v41"})
    assert recheck(1, 2) == "waiting", "an answer from another instance proves nothing"
    site_app(ignore_affinity=False, routes={"/chat": {"status": 502, "body": "bad gateway"}})
    assert recheck(2, 3) == "waiting"
    site_app(routes={"/chat": {"status": 200, "body": "pong"}})
    assert recheck(3, 4) == "proven"
    assert "instances: all serve the good build" in records("recorded")[0]["reason"]


def test_instances_still_on_the_bad_build_at_the_deadline_escalate(incident, arm, monkeypatch, site_app):
    arm.patch_slot(RG, APP, "production", instances=["c" * 64])
    recovery_target(monkeypatch, signal=False, minutes=1, instanceCheck={"url": site_app.url + "/instance"})
    site_app(instances={"c" * 64: "v42"})
    assert handle(message(fired_alert())) == "acted"
    assert recheck(0, 2) == "escalated"
    assert "serves v42, not v41" in records("escalated")[0]["reason"]


def test_a_log_alert_is_re_run_through_logs_query_client(incident, arm, monkeypatch, rollback_servers):
    """The rule's own query, re-run over the window after the swap (Log Analytics stand-in evaluates it)."""
    from standins.log_analytics_queries.rollback_signal import KQL
    from tests.alert_samples import alert_body
    la = rollback_servers["la"]
    la.reset()
    recovery_target(monkeypatch)
    monkeypatch.setenv("HEALER_ROLLBACK_LOGS_ENDPOINT", la.endpoint)
    body = alert_body("log_search_fired.json", custom_properties={"healer.target": SHOP})
    body["data"]["alertContext"]["condition"]["windowSize"] = "PT5M"
    body["data"]["alertContext"]["condition"]["allOf"][0]["searchQuery"] = KQL
    now = dt.datetime.now(dt.timezone.utc)

    def requests(minutes: float, failed: bool) -> list[dict]:
        t = (now + dt.timedelta(minutes=minutes)).isoformat()
        return [{"TimeGenerated": t, "AppRoleName": "shop-web", "Success": not (failed and i % 2 == 0),
                 "ResultCode": "500" if failed and i % 2 == 0 else "200"} for i in range(20)]
    la.seed("AppRequests", requests(-2, True) + requests(1, True))
    assert handle(message(body)) == "acted"
    assert recheck(0, 2) == "waiting"                      # burn 500 > 14.4 since the swap
    la.reset()
    la.seed("AppRequests", requests(-2, True) + [r for m in (3, 4, 5, 6) for r in requests(m, False)])
    assert recheck(1, 7) == "proven"
    assert "burn" in records("recorded")[0]["reason"]
    assert any("healer-query: rollback-slo-burn" in q.get("query", "") for q in la.queries())


def test_a_crash_before_the_next_recheck_is_queued_never_orphans_the_proof(incident, arm, monkeypatch):
    recovery_target(monkeypatch)
    seed_5xx(arm, 40.0, 0.0)
    assert handle(message(fired_alert())) == "acted"
    real = prove.enqueue

    def crash(*a, **kw):
        monkeypatch.setattr(prove, "enqueue", real)
        raise RuntimeError("worker recycled")
    monkeypatch.setattr(prove, "enqueue", crash)
    with pytest.raises(RuntimeError):
        recheck(0, 2)
    assert proof()["check"] == 0, "the proof moved on although no message carries its next check"
    assert recheck(0, 2.5) == "waiting" and proof()["check"] == 1     # the redelivered message is still current
    assert recheck(1, 6.5) == "proven"


def test_an_unproven_recovery_notifies_a_human(incident, arm, monkeypatch):
    recovery_target(monkeypatch)
    monkeypatch.setenv("HEALER_NOTIFY_WEBHOOK_URL", "https://notify.example.invalid/hook")
    seed_5xx(arm, 40.0, 40.0)
    assert handle(message(fired_alert())) == "acted"
    assert recheck(0, 10.5) == "escalated"
    [esc] = records("escalated")
    assert esc.get("notifications"), "the escalation at the deadline tells nobody"
