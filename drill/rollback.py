"""Drill: a bad release swapped into production, then a realistic alert storm; then the cases of
drill/rollback_cases.py (a prompt change, a failed deploy after the swap, a 5xx metric that stays high).

Healer runs in the local Functions host stand-in (HTTP → queue → worker, all over real sockets and Azurite).
Expected: exactly one rollback to the last known good build, everything else recorded and skipped.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from drill.host import start_healer
from drill.rollback_cases import run_cases, targets
from drill.timeline import Timeline
from tests.alert_samples import alert_body
from standins.stack import LocalAzure, build_of, seed_bad_release, site_id

RG, APP = "shop-prod", "shop-web"


def _alert(name: str, alert_id: str, rule: str, condition: str, fired: dt.datetime, target: str) -> dict:
    return alert_body(name, alert_id=alert_id, rule=rule, condition=condition, fired=fired,
                      custom_properties={"healer.target": target, "healer.slot": "staging"})


def _wait_quiet(client, conn: str, deadline_s: float, min_records: int) -> list[dict]:
    """Poll until the work queue is drained (retries included) and the audit has settled, or the deadline."""
    from azure.storage.queue import QueueClient
    queue = QueueClient.from_connection_string(conn, "healer-rollback")
    deadline, last, stable_since = time.monotonic() + deadline_s, -1, time.monotonic()
    records: list[dict] = []
    while time.monotonic() < deadline:
        records = client.get("/audit", params={"healer": "rollback", "limit": 500}).json()["records"]
        pending = queue.get_queue_properties().approximate_message_count
        if len(records) != last or pending:
            last, stable_since = len(records), time.monotonic()
        elif len(records) >= min_records and time.monotonic() - stable_since > 1.0:
            break
        time.sleep(0.2)
    return records


def run(stack: LocalAzure) -> Timeline:
    tl = Timeline("rollback: bad release, alert storm; prompt change; failed deploy; 5xx stays high")
    target = site_id(RG, APP)
    ctl = stack.arm_control()
    ctl.reset()
    settings = {
        "HEALER_TABLE_PREFIX": "drill" + uuid.uuid4().hex[:6],
        "HEALER_POLICY": json.dumps({"version": 1, "default": "deny", "rules": [
            {"action": "rollback.swap", "resource": "*/resourceGroups/shop-prod/*", "effect": "allow"}]}),
        "HEALER_ROLLBACK_TARGETS": json.dumps([{"resourceId": target, "slot": "staging"}] + targets()),
    }
    healer = start_healer(stack, settings)
    try:
        seeded = seed_bad_release(ctl, stack.arm_url, RG, APP, good="v41", bad="v42")
        tl.add("pipeline", "deployed v42 to staging and swapped it into production (production was v41)",
               seeded["swappedAt"])
        fired = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
        a_id, b_id = str(uuid.uuid4()), str(uuid.uuid4())
        rule_a = _alert("metric_fired.json", a_id, "shop-web-http5xx", "Fired", fired, target)
        rule_b = _alert("log_search_fired.json", b_id, "shop-web-slo-burn", "Fired", fired, target)
        with healer.client() as client, ThreadPoolExecutor(8) as pool:
            # The storm: rule A through two action groups plus retries, rule B sharing a group, concurrently.
            storm = [rule_a] * 6 + [rule_b] * 2
            statuses = list(pool.map(lambda b: client.post("/alerts/rollback", json=b).status_code, storm))
            tl.add("monitor", f"alert storm: {len(storm)} deliveries (rule A ×6 via two action groups with retries, "
                              f"rule B ×2) → HTTP {sorted(set(statuses))}")
            tl.check(all(s == 202 for s in statuses), "every delivery acknowledged with 202")
            bad = client.post("/alerts/rollback", content=b'{"schemaId":"Microsoft.Insights/activityLogs"}')
            tl.add("monitor", f"a payload in an unknown schema → HTTP {bad.status_code}: {bad.json()['error'][:80]}")
            tl.check(bad.status_code == 400, "unknown schema refused with a 400 and a reason")
            _wait_quiet(client, stack.azurite.connection_string, 90, min_records=2)
            resolved = copy.deepcopy(rule_a)
            resolved["data"]["essentials"]["monitorCondition"] = "Resolved"
            resolved["data"]["essentials"]["resolvedDateTime"] = dt.datetime.now(dt.timezone.utc).isoformat()
            r1 = client.post("/alerts/rollback", json=resolved).status_code
            r2 = client.post("/alerts/rollback", json=rule_a).status_code
            tl.add("monitor", f"rule A Resolved → HTTP {r1}; a late retry of rule A Fired → HTTP {r2}")
            records = _wait_quiet(client, stack.azurite.connection_string, 90, min_records=4)
            for rec in records:
                tl.add("healer", f"{rec['outcome']:<9} {rec['reason'][:150]}",
                       dt.datetime.fromisoformat(rec["at"]))
            counters = ctl.counters()
            prod = build_of(ctl, RG, APP)
            healer_swaps = counters["swaps_accepted"] - 1
            tl.add("arm", f"swaps accepted by ARM: {counters['swaps_accepted']} (1 pipeline + {healer_swaps} "
                          f"Healer); production now runs {prod}")
            outcomes = [r["outcome"] for r in records]
            tl.check(healer_swaps == 1, "exactly one swap by Healer")
            tl.check(prod == "v41", "production runs the last known good build v41")
            tl.check(outcomes.count("acted") == 1, "exactly one 'acted' decision")
            tl.check("recorded" in outcomes, "the Resolved delivery was recorded, not acted on")
            tl.check(not {"failed", "escalated", "dead-letter"} & set(outcomes), "nothing failed or escalated")
            dups = {sid: sum(1 for r in records if r["outcome"] == "duplicate" and r["subject"] == sid)
                    for sid in (a_id, b_id)}
            tl.check(dups == {a_id: 6, b_id: 1}, f"every repeated delivery recorded as a duplicate "
                                                 f"(rule A: {dups[a_id]}/6, rule B: {dups[b_id]}/1)")
            run_cases(tl, ctl, stack.arm_url, client)
    finally:
        healer.stop()
        ctl.close()
    return tl
