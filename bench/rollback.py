"""Rollback benchmarks, each printed beside its baseline from the same run.

1. Webhook acknowledge latency (HTTP POST → 202, through the Functions host stand-in and Azurite), p50/p99,
   beside the baseline of doing the work inline in the webhook (observe + swap + verify before answering).
2. Decision-to-swap-request overhead: from the work message's arrival to the swap request leaving, minus the
   time spent waiting on stand-ins (Azurite, identity, ARM), p50/p99; beside the pure decision core alone.
3. Storm: 1,000 duplicate deliveries at 50 concurrent → swaps performed (must be exactly 1) and deliveries
   acknowledged per second; beside the naive "swap on every Fired delivery" handler, whose swap count is the
   number of deliveries (a toggle that ends wherever the parity leaves it).
4. Re-arm trials (issue 14): rollback → re-arm without a new deployment → a new alert, over random timings:
   how often the known-bad build is swapped back into production; beside the latch-only rule (the memory of bad
   builds stripped), which did it in every trial.

Run: `.venv/bin/python bench/rollback.py [--acks 300] [--decisions 60] [--storm 1000] [--concurrency 50]`
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drill.host import start_healer  # noqa: E402
from standins.harness import scratch_dir  # noqa: E402
from standins.stack import LocalAzure, seed_bad_release, site_id  # noqa: E402
from tests.alert_samples import alert_body  # noqa: E402

RG, APP = "bench-rg", "bench-web"
TARGET = site_id(RG, APP)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def ms(v: float) -> str:
    return f"{v * 1000:8.2f} ms"


def alert(alert_id: str | None = None) -> dict:
    return alert_body("metric_fired.json", alert_id=alert_id,
                      custom_properties={"healer.target": TARGET, "healer.slot": "staging"})


def healer_settings() -> dict[str, str]:
    return {"HEALER_TABLE_PREFIX": "bench" + uuid.uuid4().hex[:8],
            "HEALER_POLICY": json.dumps({"version": 1, "rules": [{"action": "*", "resource": "*", "effect": "allow"}]}),
            "HEALER_ROLLBACK_TARGETS": json.dumps([{"resourceId": TARGET, "slot": "staging", "maxRollbacks": 1000}])}


class HttpClock:
    """Time spent in HTTP exchanges with the stand-ins (request sent to body read), per thread.

    Wraps azure-core's requests transport, through which every SDK call (tables, queues, identity, ARM) goes."""

    def __init__(self):
        from azure.core.pipeline.transport import RequestsTransport
        self.local = threading.local()
        original = RequestsTransport.send
        clock = self

        def timed(transport, *a, **kw):
            t = time.perf_counter()
            try:
                return original(transport, *a, **kw)
            finally:
                clock.local.spent = getattr(clock.local, "spent", 0.0) + time.perf_counter() - t
        RequestsTransport.send = timed

    def reset(self) -> None:
        self.local.spent = 0.0

    @property
    def spent(self) -> float:
        return getattr(self.local, "spent", 0.0)


def bench_decisions(stack: LocalAzure, n: int) -> dict[str, float]:
    from healers.rollback import arm, shell
    from healers.rollback.core import AppState, decide
    from shared.alerts import parse_alert
    from shared.config import Settings
    from shared.controls import Mode
    from shared.identity import credential
    from shared.policy import PolicyDecision
    from shared.webapps import reset_clients
    os.environ.update({**stack.env(), **healer_settings()})
    credential.cache_clear()
    reset_clients()
    clock = HttpClock()
    ctl = stack.arm_control()
    overheads, totals, cores = [], [], []
    for _ in range(n):
        ctl.reset()
        seed_bad_release(ctl, stack.arm_url, RG, APP)
        os.environ["HEALER_TABLE_PREFIX"] = "bench" + uuid.uuid4().hex[:8]
        msg = shell.work_message(parse_alert(alert()))
        marks: dict[str, float] = {}

        def step(name: str) -> None:
            if name == "intent":
                marks["intent"], marks["http"] = time.perf_counter(), clock.spent

        clock.reset()
        t0 = time.perf_counter()
        outcome = shell.handle(Settings(), msg, owner="bench", step=step)
        assert outcome == "acted", outcome
        # The swap request leaves right after the intent is recorded; the recording itself is a stand-in call.
        totals.append(marks["intent"] - t0)
        overheads.append(marks["intent"] - t0 - marks["http"])
    obs = arm.observe(Settings(), __import__("shared.resource_ids", fromlist=["x"]).parse_site_id(TARGET), "staging",
                      "appSetting:BUILD_ID")
    now = dt.datetime.now(dt.timezone.utc)
    for _ in range(2000):
        t = time.perf_counter()
        decide(fired_at=now, slot_name="staging", obs=obs, app=AppState(),
               mode=Mode(killed=False, dry_run=False, reason="live"),
               policy=PolicyDecision(effect="allow", reason="bench"), approved=False, max_rollbacks=5,
               window=dt.timedelta(hours=1), max_build_age=dt.timedelta(days=1), now=now)
        cores.append(time.perf_counter() - t)
    ctl.close()
    return {"overhead_p50": pct(overheads, 50), "overhead_p99": pct(overheads, 99),
            "total_p50": pct(totals, 50), "total_p99": pct(totals, 99),
            "core_p50": pct(cores, 50), "core_p99": pct(cores, 99), "n": n}


def bench_rearm_trials(n: int) -> dict[str, int]:
    """Pure core: the bad build after a re-arm, with Healer's memory of bad builds and without it (latch only)."""
    import random

    from healers.rollback.core import AppState, Observed, SlotView, SwapStatus, decide, remember_rollback
    from shared.controls import Mode
    from shared.policy import PolicyDecision
    rng = random.Random(14)
    healer = baseline = 0
    for i in range(n):
        t0 = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=rng.randint(0, 10000))
        rolled = t0 + dt.timedelta(minutes=rng.randint(1, 60))
        app = remember_rollback(AppState(), good=f"v{i}", bad=f"v{i}-bad", at=rolled, incident="a", reason="bench")
        app = app.model_copy(update={"latch": None})       # POST /api/rollback/rearm, no new deployment
        fired = rolled + dt.timedelta(minutes=rng.randint(1, 120))
        obs = Observed(production=SlotView(build=f"v{i}", last_deployed_at=t0 - dt.timedelta(days=1)),
                       slot=SlotView(build=f"v{i}-bad", last_deployed_at=t0 - dt.timedelta(minutes=30)),
                       last_swap=SwapStatus(at=rolled, source="staging", destination="production"))
        for state, counter in ((app, "healer"), (app.model_copy(update={"bad_builds": {}}), "baseline")):
            d = decide(fired_at=fired, slot_name="staging", obs=obs, app=state,
                       mode=Mode(killed=False, dry_run=False, reason="live"),
                       policy=PolicyDecision(effect="allow", reason="bench"), approved=False, max_rollbacks=5,
                       window=dt.timedelta(hours=24), max_build_age=dt.timedelta(days=2),
                       now=fired + dt.timedelta(seconds=30))
            if d.action == "swap" and d.good == f"v{i}-bad":
                if counter == "healer":
                    healer += 1
                else:
                    baseline += 1
    return {"n": n, "healer": healer, "baseline": baseline}


def bench_acks(stack: LocalAzure, n: int) -> dict[str, float]:
    ctl = stack.arm_control()
    ctl.reset()
    healer = start_healer(stack, healer_settings(), "healer-acks")
    acks, inline = [], []
    try:
        with healer.client() as client:
            client.post("/alerts/rollback", json=alert())  # warm-up
            for _ in range(n):
                body = alert()
                t = time.perf_counter()
                r = client.post("/alerts/rollback", json=body)
                acks.append(time.perf_counter() - t)
                assert r.status_code == 202, r.text
    finally:
        healer.stop()
    # Baseline: the webhook doing the work inline = the full handle() of an incident that needs a rollback.
    from healers.rollback import shell
    from shared.alerts import parse_alert
    from shared.config import Settings
    os.environ.update(healer_settings())
    for _ in range(min(n, 30)):
        ctl.reset()
        seed_bad_release(ctl, stack.arm_url, RG, APP)
        os.environ["HEALER_TABLE_PREFIX"] = "bench" + uuid.uuid4().hex[:8]
        msg = shell.work_message(parse_alert(alert()))
        t = time.perf_counter()
        outcome = shell.handle(Settings(), msg, owner="bench")
        inline.append(time.perf_counter() - t)
        assert outcome == "acted", outcome
    ctl.close()
    return {"ack_p50": pct(acks, 50), "ack_p99": pct(acks, 99), "inline_p50": pct(inline, 50),
            "inline_p99": pct(inline, 99), "n": n}


def clear_queues(stack: LocalAzure) -> None:
    from azure.storage.queue import QueueServiceClient
    service = QueueServiceClient.from_connection_string(stack.azurite.connection_string)
    for q in service.list_queues():
        service.get_queue_client(q.name).clear_messages()


def bench_storm(stack: LocalAzure, deliveries: int, concurrency: int) -> dict[str, float]:
    from azure.storage.queue import QueueClient
    clear_queues(stack)  # nothing left over from the other benchmarks
    ctl = stack.arm_control()
    ctl.reset()
    settings = healer_settings()
    healer = start_healer(stack, settings, "healer-storm")
    try:
        seed_bad_release(ctl, stack.arm_url, RG, APP)
        body = alert()
        with healer.client() as client, ThreadPoolExecutor(concurrency) as pool:
            t = time.perf_counter()
            statuses = list(pool.map(lambda _: client.post("/alerts/rollback", json=body).status_code,
                                     range(deliveries)))
            ack_elapsed = time.perf_counter() - t
            queue = QueueClient.from_connection_string(stack.azurite.connection_string, "healer-rollback")
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and queue.get_queue_properties().approximate_message_count:
                time.sleep(0.5)
            drained = time.perf_counter() - t
            records = client.get("/audit", params={"healer": "rollback", "limit": 1000}).json()["records"]
        swaps = ctl.counters()["swaps_accepted"] - 1
    finally:
        healer.stop()
        ctl.close()
    outcomes: dict[str, int] = {}
    for r in records:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    return {"deliveries": deliveries, "concurrency": concurrency, "acked": statuses.count(202),
            "acks_per_s": deliveries / ack_elapsed, "drain_s": drained, "swaps": swaps, "outcomes": outcomes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acks", type=int, default=300)
    parser.add_argument("--decisions", type=int, default=60)
    parser.add_argument("--storm", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rearm-trials", type=int, default=1000)
    args = parser.parse_args()
    stack = LocalAzure.start(scratch_dir("healer-bench-"))
    os.environ.update(stack.env())
    try:
        a = bench_acks(stack, args.acks)
        d = bench_decisions(stack, args.decisions)
        s = bench_storm(stack, args.storm, args.concurrency)
    finally:
        stack.stop()
    r = bench_rearm_trials(args.rearm_trials)
    print("\nrollback benchmarks (2 cores, everything local; stand-in time excluded where stated)\n")
    print(f"{'measure':<58}{'Healer':>16}{'baseline':>16}   baseline is")
    print(f"{'webhook acknowledge latency p50 (n=' + str(a['n']) + ')':<58}{ms(a['ack_p50']):>16}"
          f"{ms(a['inline_p50']):>16}   acting inline in the webhook")
    print(f"{'webhook acknowledge latency p99':<58}{ms(a['ack_p99']):>16}{ms(a['inline_p99']):>16}")
    print(f"{'decision→swap request, own overhead p50 (n=' + str(d['n']) + ')':<58}{ms(d['overhead_p50']):>16}"
          f"{ms(d['core_p50']):>16}   pure decision core alone")
    print(f"{'decision→swap request, own overhead p99':<58}{ms(d['overhead_p99']):>16}{ms(d['core_p99']):>16}")
    print(f"{'decision→swap request incl. stand-in calls p50 / p99':<58}"
          f"{ms(d['total_p50']):>16}{ms(d['total_p99']):>16}   (p50, p99 of the same)")
    print(f"{'storm: swaps for ' + str(s['deliveries']) + ' duplicate deliveries @' + str(s['concurrency']):<58}"
          f"{s['swaps']:>16}{s['deliveries']:>16}   naive swap-per-delivery toggle")
    print(f"{'storm: deliveries acknowledged per second':<58}{s['acks_per_s']:>16.0f}{'':>16}")
    print(f"{'storm: all deliveries processed after (s)':<58}{s['drain_s']:>16.1f}")
    print(f"storm: {s['acked']}/{s['deliveries']} acknowledged with 202; audit outcomes {s['outcomes']}")
    print(f"{'re-arm trials: known-bad build swapped back (n=' + str(r['n']) + ')':<58}{r['healer']:>16}"
          f"{r['baseline']:>16}   latch only (no memory of bad builds)")
    ok = s["swaps"] == 1 and s["acked"] == s["deliveries"] and r["healer"] == 0
    print("\nstorm check:", "exactly one swap" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
