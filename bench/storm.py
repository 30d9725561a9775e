"""Alert storms and acknowledge latency through the Functions host stand-in, beside today's code in the same run.

The baseline is the code of commit BASELINE (before the intake dedupe, aggregated duplicate audit, shared transport
and host.json tuning), exported with `git archive` into a scratch directory and run in the same host stand-in
against the same Azurite and ARM stand-in.

1. Storm: N duplicate deliveries of one Fired alert at C concurrent (N = 1,000 and 5,000) → swaps (must be exactly
   1, in every run), deliveries acknowledged per second, and the time until the work queue is drained.
2. Acknowledge latency p50/p99 of distinct alerts posted one after another while the queue worker in the same
   process is busy with the alerts already acknowledged; beside the split deployment (webhook app with its queue
   functions disabled by `AzureWebJobs.<function>.Disabled`, a second worker app from the same code) and beside
   the baseline.

Run: `.venv/bin/python bench/storm.py [--storms 1000,5000] [--concurrency 50] [--acks 300] [--baseline COMMIT]`
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rollback import RG, APP, alert, clear_queues, healer_settings, pct  # noqa: E402
from drill.host import start_healer  # noqa: E402
from standins.harness import REPO, scratch_dir  # noqa: E402
from standins.stack import LocalAzure, seed_bad_release  # noqa: E402

BASELINE = "831e00e"  # main before issue 12
QUEUE_FUNCTIONS = ("rollback_worker", "rollback_dead_letter", "downshift_worker", "downshift_dead_letter",
                   "replication_worker", "replication_dead_letter", "errors_worker", "errors_dead_letter")
WEBHOOK_FUNCTIONS = ("rollback_alert", "downshift_alert", "downshift_budget", "replication_events")


def export(commit: str, into: Path) -> Path:
    """The tree of `commit`, extracted into `into` (no .git, nothing shared with the working copy)."""
    data = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], check=True,
                          capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def disabled(names: tuple[str, ...]) -> dict[str, str]:
    return {f"AzureWebJobs.{n}.Disabled": "true" for n in names}


def queue_depth(stack: LocalAzure, name: str = "healer-rollback") -> int:
    from azure.storage.queue import QueueClient
    return QueueClient.from_connection_string(stack.azurite.connection_string, name) \
        .get_queue_properties().approximate_message_count


def storm(stack: LocalAzure, code: Path | None, deliveries: int, concurrency: int) -> dict:
    clear_queues(stack)
    ctl = stack.arm_control()
    ctl.reset()
    healer = start_healer(stack, healer_settings(), "healer-storm", code=code)
    try:
        seed_bad_release(ctl, stack.arm_url, RG, APP)
        body = alert()
        local = threading.local()

        def deliver(_: int) -> int:
            """One delivery, as a sender does: its own connection, one retry on a connection error."""
            if not hasattr(local, "client"):
                local.client = healer.client()
            for attempt in (1, 2):
                try:
                    return local.client.post("/alerts/rollback", json=body).status_code
                except httpx.TransportError:
                    local.client = healer.client()
                    if attempt == 2:
                        raise
            return 0
        with healer.client() as client, ThreadPoolExecutor(concurrency) as pool:
            client.get("/controls")  # warm the connection and the app's first-call imports
            t = time.perf_counter()
            statuses = list(pool.map(deliver, range(deliveries)))
            acked = time.perf_counter() - t
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline and queue_depth(stack):
                time.sleep(0.1)
            drained = time.perf_counter() - t
        swaps = ctl.counters()["swaps_accepted"] - 1
    finally:
        healer.stop()
        ctl.close()
    return {"acks_per_s": deliveries / acked, "drain_s": drained, "swaps": swaps,
            "acked": statuses.count(202) == deliveries}


def acks(stack: LocalAzure, code: Path | None, n: int, mode: str) -> dict:
    """p50/p99 of sequential distinct deliveries; every one becomes worker work (decide → latched skip).

    mode: "same" (one app, its queue worker busy with what was acknowledged), "split" (a webhook app with its queue
    functions disabled, and a worker app), "idle" (the webhook app alone: no worker busy anywhere)."""
    clear_queues(stack)
    ctl = stack.arm_control()
    ctl.reset()
    settings = healer_settings()
    web = start_healer(stack, {**settings, **(disabled(QUEUE_FUNCTIONS) if mode != "same" else {})}, "healer-web",
                       code=code)
    worker = start_healer(stack, {**settings, **disabled(WEBHOOK_FUNCTIONS)}, "healer-worker", code=code) \
        if mode == "split" else None
    times: list[float] = []
    try:
        seed_bad_release(ctl, stack.arm_url, RG, APP)
        with web.client() as client:
            for _ in range(20):  # warm-up
                client.post("/alerts/rollback", json=alert())
            for _ in range(n):
                body = alert()
                t = time.perf_counter()
                r = client.post("/alerts/rollback", json=body)
                times.append(time.perf_counter() - t)
                assert r.status_code == 202, r.text
        busy = queue_depth(stack)
    finally:
        web.stop()
        if worker:
            worker.stop()
        ctl.close()
    return {"p50": pct(times, 50), "p99": pct(times, 99), "backlog": busy}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storms", default="1000,5000")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--acks", type=int, default=300)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--skip-baseline-storm", action="store_true", help="the baseline's 5k storm takes minutes")
    args = parser.parse_args()
    sizes = [int(x) for x in args.storms.split(",") if x]
    work = scratch_dir("healer-bench-storm-")
    base = export(args.baseline, work / "baseline")
    stack = LocalAzure.start(work)
    os.environ.update(stack.env())  # the pipeline's own swap (seed_bad_release) goes through ARM with a token
    rows = []
    try:
        a_new = acks(stack, None, args.acks, "same")
        a_split = acks(stack, None, args.acks, "split")
        a_idle = acks(stack, None, args.acks, "idle")
        a_base = acks(stack, base, args.acks, "same")
        for size in sizes:
            new = storm(stack, None, size, args.concurrency)
            old = None if args.skip_baseline_storm else storm(stack, base, size, args.concurrency)
            rows.append((size, new, old))
    finally:
        stack.stop()
    ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
    print(f"\nstorm and acknowledge benchmarks (2 cores, everything local; baseline = commit {args.baseline})\n")
    print(f"{'measure':<62}{'Healer':>22}{'baseline':>22}")
    print(f"{'ack p50 / p99, worker busy in the same app (n=' + str(args.acks) + ')':<62}"
          f"{ms(a_new['p50']) + ' / ' + ms(a_new['p99']):>22}{ms(a_base['p50']) + ' / ' + ms(a_base['p99']):>22}")
    print(f"{'ack p50 / p99, split apps (webhooks | workers), worker busy':<62}"
          f"{ms(a_split['p50']) + ' / ' + ms(a_split['p99']):>22}{'-':>22}")
    print(f"{'ack p50 / p99, no worker busy (webhook app alone)':<62}"
          f"{ms(a_idle['p50']) + ' / ' + ms(a_idle['p99']):>22}{'-':>22}")
    ok = True
    for size, new, old in rows:
        base = lambda key, spec: format(old[key], spec) if old else "-"  # noqa: E731
        print(f"{'storm ' + f'{size:,}' + ' duplicates @' + str(args.concurrency) + ': swaps':<62}{new['swaps']:>22}"
              f"{base('swaps', 'd'):>22}")
        print(f"{'  acknowledged per second':<62}{new['acks_per_s']:>14.0f}{base('acks_per_s', '.0f'):>22}")
        print(f"{'  queue drained after (s)':<62}{new['drain_s']:>14.1f}{base('drain_s', '.1f'):>22}")
        ok &= new["swaps"] == 1 and new["acked"] and (old is None or old["swaps"] == 1)
    if len(rows) >= 2:
        (s1, n1, o1), (s2, n2, o2) = rows[0], rows[-1]
        ratio = lambda a, b: f"{b['drain_s'] / a['drain_s']:.2f}x"  # noqa: E731
        print(f"{'drain time ' + f'{s2:,}' + ' vs ' + f'{s1:,}' + ' (goal <= 5.5x)':<62}{ratio(n1, n2):>22}"
              f"{(ratio(o1, o2) if o1 and o2 else '-'):>22}")
    print("\nstorm check:", "exactly one swap in every storm" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
