"""Replication healer benchmarks, each printed beside its baseline from the same run.

1. Readiness lag: from the moment the LAST required replica serves the digest to the ready event, p50/p95, over
   many pushes with random per-replica delays; beside the blind fixed sleep teams use today (time-to-deploy ratio
   and how often the sleep was too short). Run twice:
   a. SIMULATED CLOCK, production backoff (2 s x1.6, max 30 s, jitter 25%): the real shell (`shell.accept`,
      `shell.handle_check`) with Azurite for state and audit, but the registry and the queue's visibility
      timeouts are simulated, so hours of replication take seconds. Delays: 70% 5-60 s, 25% 60-300 s, 5% 5-15 min.
   b. REAL WIRE, short backoff (0.5 s x1.5, max 2 s): real docker-registry replicas copied on a schedule, real
      queue with real visibility timeouts, outcome events through EventGridPublisherClient to the topic stand-in.
   The goal is a ready event within about one backoff step of true readiness (reported as lag / step).
2. Probe cost: registry requests per wait per replica, beside a script polling every region every 2 s.
3. Concurrency: 500 pushes delivered at once; checks run by 8 workers on the real queue (Azurite), registry
   simulated in real time (replicas ready 1-10 s after the push). Not falling behind = the lag distribution stays
   that of an idle system and the queue drains right after the last replica is ready.

4-6. Probe states and pullability (bench/replication_probes.py): requests per wait per replica with blob checks
   beside manifest-only; lag under per-replica throttling beside the previous classification; time to a named failure
   with regional endpoints off beside the 30-minute timeout.

Run: `.venv/bin/python bench/replication.py [--sim 300] [--real 12] [--concurrent 500] [--workers 8] [--probes 6]
[--throttled 3] [--only probes]`
"""
from __future__ import annotations

import argparse
import datetime as dt
import heapq
import itertools
import json
import math
import os
import random
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drill.replication import acr_event, start_topic  # noqa: E402
from standins.harness import scratch_dir  # noqa: E402
from standins.stack import LocalAzure  # noqa: E402

REGIONS = ("eastus", "westus", "northeurope")
REGISTRY = "benchreg"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def configure(extra: dict[str, str]) -> None:
    os.environ.update({"HEALER_TABLE_PREFIX": "bench" + uuid.uuid4().hex[:8],
                       "HEALER_REPLICATION_REGISTRIES": json.dumps({REGISTRY: list(REGIONS)}), **extra})
    for name in ("HEALER_REPLICATION_BACKOFF", "HEALER_REPLICATION_TOPIC_ENDPOINT", "HEALER_REPLICATION_TOPIC_KEY",
                 "HEALER_REPLICATION_ENDPOINTS"):
        if name not in extra:
            os.environ.pop(name, None)


class SimRegistry:
    """Replica state as a function of a clock: a region serves (repo, digest) once clock >= ready_at."""

    def __init__(self, clock):
        self.clock = clock
        self.ready_at: dict[tuple[str, str], dict[str, float]] = {}
        self.requests = 0
        self.lock = threading.Lock()

    def observe_all(self, record, regions):
        from healers.replication.core import RegionObservation
        now = self.clock()
        out = []
        ready = self.ready_at[(record.repository, record.digest)]
        for region in regions:
            present = now >= ready[region]
            tags = {t: record.digest for t in record.tags} if present else {}
            with self.lock:
                self.requests += 1 + len(tags)
            out.append(RegionObservation(region=region, manifest="present" if present else "absent", tags=tags,
                                         observed_at=now))
        return out


class Recorder:
    """Stands in for OutcomePublisher where the topic is not what is measured."""

    def __init__(self, clock):
        self.clock, self.events, self.lock = clock, [], threading.Lock()

    def publish(self, events):
        with self.lock:
            self.events.extend((self.clock(), e) for e in events)


def sim_delay(rng: random.Random) -> float:
    r = rng.random()
    return rng.uniform(5, 60) if r < 0.70 else rng.uniform(60, 300) if r < 0.95 else rng.uniform(300, 900)


# ---------------------------------------------------------------------------------------------- 1a + 2: simulated

def bench_simulated(n: int, seed: int = 7) -> dict[str, Any]:
    from healers.replication import shell
    from healers.replication.core import check_message
    from healers.replication.events import parse_event
    from shared.config import Settings

    configure({"HEALER_REPLICATION_DEADLINE_SECONDS": "3600"})   # production backoff (defaults)
    settings = Settings()
    rng = random.Random(seed)
    t0 = time.time()
    clock = [t0]
    sim = SimRegistry(lambda: clock[0])
    rec = Recorder(lambda: clock[0])
    heap: list[tuple[float, int, str, Any]] = []
    seq = itertools.count()
    last_check: dict[str, float] = {}
    steps: dict[str, float] = {}

    def fake_send(_settings, record, delay=0.0):
        msg = {**json.loads(check_message(record)), "check": record.attempts}
        heapq.heappush(heap, (clock[0] + math.ceil(max(0.0, delay)), next(seq), "check", msg))

    pushes = {}
    for i in range(n):
        at = t0 + i * 2.0
        repo, digest = f"app{i % 37}/svc", "sha256:" + uuid.uuid4().hex * 2
        ready = {"eastus": at + rng.uniform(0, 2)} | {r: at + sim_delay(rng) for r in REGIONS[1:]}
        sim.ready_at[(repo, digest)] = ready
        pushes[digest] = (at, max(ready.values()))
        heapq.heappush(heap, (at, next(seq), "push", (repo, digest, at)))
    original = shell._send_check
    shell._send_check = fake_send
    wall = time.perf_counter()
    try:
        while heap:
            due, _, kind, payload = heapq.heappop(heap)
            clock[0] = due
            if kind == "push":
                repo, digest, at = payload
                ev = acr_event(REGISTRY, repo, digest, tag="v1", at=dt.datetime.fromtimestamp(at, dt.timezone.utc))
                shell.accept(settings, parse_event(ev), now=lambda: clock[0])
                continue
            digest = payload["digest"]
            if digest in last_check:
                steps[digest] = due - last_check[digest]
            last_check[digest] = due
            shell.handle_check(settings, payload, prober=sim, publisher=rec, now=lambda: clock[0])
    finally:
        shell._send_check = original
    wall = time.perf_counter() - wall
    lags, ratios, ttd, truth = [], [], [], []
    for at_pub, event in rec.events:
        digest = event.data["digest"]
        pushed, ready = pushes[digest]
        lag = at_pub - ready
        lags.append(lag)
        ratios.append(lag / steps.get(digest, 1.0))
        ttd.append(at_pub - pushed)
        truth.append(ready - pushed)
    naive_rounds = [math.floor(t / 2.0) + 1 for t in truth]     # poll all regions every 2 s until all serve
    return {"n": n, "published": len(rec.events), "lags": lags, "ratios": ratios, "ttd": ttd, "truth": truth,
            "requests_per_wait_replica": sim.requests / n / len(REGIONS),
            "naive_per_wait_replica": statistics.mean(naive_rounds),   # one tag HEAD per region per poll
            "wall": wall, "sim_span": clock[0] - t0}


# ---------------------------------------------------------------------------------------------- 1b: real wire

def pump_queue(stop: threading.Event, handler, workers: int, on_result) -> list[threading.Thread]:
    from azure.functions.queue import QueueMessage

    from healers.replication import shell
    from shared.storage import queue
    from shared.config import Settings

    def loop():
        q = queue(Settings(), shell.QUEUE)
        idle = 0.02
        while not stop.is_set():
            got = False
            for m in q.receive_messages(max_messages=8, visibility_timeout=60):
                got = True
                result = handler(QueueMessage(id=m.id, body=m.content, dequeue_count=m.dequeue_count))
                on_result(result, m.content)
                q.delete_message(m)
            if not got:
                stop.wait(idle)
                idle = min(0.2, idle * 2)
            else:
                idle = 0.02
    threads = [threading.Thread(target=loop, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    return threads


def bench_real(stack: LocalAzure, n: int, seed: int = 11) -> dict[str, Any]:
    from healers.replication import api, shell
    from standins.registries import Replicator, push_image, start_registries

    rng = random.Random(seed)
    fleet = start_registries(REGISTRY, REGIONS, stack.workdir / "bench-registries")
    topic, topic_url = start_topic(stack, key="bench-key")
    backoff = {"baseSeconds": 0.5, "factor": 1.5, "maxSeconds": 2, "minSeconds": 0.25, "jitter": 0.3}
    configure({"HEALER_REPLICATION_ENDPOINTS": json.dumps(fleet.endpoint_map()),
               "HEALER_REPLICATION_BACKOFF": json.dumps(backoff), "HEALER_REPLICATION_DEADLINE_SECONDS": "60",
               "HEALER_REPLICATION_TOPIC_ENDPOINT": f"{topic_url}/api/events",
               "HEALER_REPLICATION_TOPIC_KEY": "bench-key"})
    replicator = Replicator(fleet)
    published: dict[str, float] = {}
    lock = threading.Lock()

    def on_result(result, body):
        if result == "published":
            with lock:
                published[json.loads(body)["repository"]] = time.monotonic()
    stop = threading.Event()
    threads = pump_queue(stop, api.process, 2, on_result)
    truth: dict[str, float] = {}
    pushed_at: dict[str, float] = {}
    try:
        from healers.replication.events import parse_event
        from shared.config import Settings
        for i in range(n):
            repo = f"real/app{i}"
            image = push_image(fleet.url("eastus"), repo, "v1", seed=f"bench-{uuid.uuid4()}")
            delays = {r: rng.uniform(0.5, 4.0) for r in REGIONS[1:]}
            pushed_at[repo] = time.monotonic()
            replicator.schedule_copy("eastus", repo, "v1", delays)
            shell.accept(Settings(), parse_event(acr_event(REGISTRY, repo, image.digest, tag="v1")))
        deadline = time.monotonic() + 60
        while len(published) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        for label, at in replicator.done:
            repo = label.split()[1].split(":")[0]
            truth[repo] = max(truth.get(repo, 0.0), at)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        replicator.stop()
        topic.stop()
        fleet.stop()
    lags = [published[r] - truth[r] for r in published if r in truth]
    ttd = [published[r] - pushed_at[r] for r in published]
    return {"n": n, "published": len(published), "lags": lags, "ttd": ttd,
            "truth": [truth[r] - pushed_at[r] for r in truth], "errors": replicator.errors}


# ---------------------------------------------------------------------------------------------- 3: concurrency

def bench_concurrent(n: int, workers: int, seed: int = 13) -> dict[str, Any]:
    from healers.replication import shell
    from healers.replication.events import parse_event
    from shared.config import Settings
    from shared.work import run_queue_message

    backoff = {"baseSeconds": 0.5, "factor": 1.5, "maxSeconds": 2, "minSeconds": 0.25, "jitter": 0.3}
    configure({"HEALER_REPLICATION_BACKOFF": json.dumps(backoff), "HEALER_REPLICATION_DEADLINE_SECONDS": "120"})
    settings = Settings()
    rng = random.Random(seed)
    sim = SimRegistry(time.time)
    rec = Recorder(time.time)
    depth = [0]

    def handler(msg):
        return run_queue_message(settings, shell.QUEUE, msg.get_body(), 1,
                                 lambda m: shell.handle_check(settings, m, prober=sim, publisher=rec),
                                 shell.MAX_ATTEMPTS)
    results: list[str] = []
    stop = threading.Event()
    threads = pump_queue(stop, handler, workers, lambda r, _b: results.append(r))
    events = []
    for i in range(n):
        repo, digest = f"conc{i % 50}/svc", "sha256:" + uuid.uuid4().hex * 2
        events.append((repo, digest))
    delays = [{r: rng.uniform(1, 10) for r in REGIONS[1:]} for _ in events]
    accepted_lag: list[float] = []

    def push(i: int) -> None:
        # the push happens now; its replicas catch up 1-10 s later; the event reaches Healer right away
        repo, digest = events[i]
        now = time.time()
        sim.ready_at[(repo, digest)] = {"eastus": now} | {r: now + d for r, d in delays[i].items()}
        shell.accept(settings, parse_event(acr_event(REGISTRY, repo, digest, tag="v1")))
        accepted_lag.append(time.time() - now)
    t_intake = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(push, range(n)))
    intake_s = time.perf_counter() - t_intake
    from shared.storage import queue
    q = queue(settings, shell.QUEUE)
    deadline = time.time() + 120
    while len(rec.events) < n and time.time() < deadline:
        depth[0] = max(depth[0], q.get_queue_properties().approximate_message_count)
        time.sleep(0.25)
    done_at = time.time()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    last_ready = max(max(v.values()) for v in sim.ready_at.values())
    lags = [at - max(sim.ready_at[(e.data["repository"], e.data["digest"])].values()) for at, e in rec.events]
    return {"n": n, "published": len(rec.events), "intake_per_s": n / intake_s, "lags": lags,
            "intake_p95": pct(accepted_lag, 95), "intake_s": intake_s,
            "drain_after_last_ready": done_at - last_ready, "checks": len(results), "max_depth": depth[0],
            "checks_per_wait": len(results) / n, "workers": workers}


# ---------------------------------------------------------------------------------------------- report

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim", type=int, default=300)
    parser.add_argument("--real", type=int, default=12)
    parser.add_argument("--concurrent", type=int, default=500)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--probes", type=int, default=6, help="image indexes for the blob-check figure")
    parser.add_argument("--throttled", type=int, default=3, help="waits per variant under throttling")
    parser.add_argument("--only", choices=["probes"], help="run only the probe figures (4-6)")
    args = parser.parse_args()
    from bench import replication_probes as rp
    workdir = scratch_dir("healer-bench-repl-")
    if args.only == "probes":
        ok = rp.report(rp.bench_blob_cost(workdir, args.probes), rp.bench_throttling(workdir, args.throttled),
                       rp.bench_named_failure())
        return 0 if ok else 1
    stack = LocalAzure.start(workdir)
    os.environ.update(stack.env())
    try:
        s = bench_simulated(args.sim)
        r = bench_real(stack, args.real)
        c = bench_concurrent(args.concurrent, args.workers)
        probes = (rp.bench_blob_cost(workdir, args.probes), rp.bench_throttling(workdir, args.throttled),
                  rp.bench_named_failure())
    finally:
        stack.stop()

    f = lambda v: f"{v:10.1f} s"   # noqa: E731
    print("\nreplication benchmarks (2 cores, everything local)\n")
    print(f"1a. readiness lag — SIMULATED CLOCK, real shell + Azurite, simulated registry and queue delays; "
          f"production backoff; n={s['n']} pushes, {s['published']} ready events "
          f"({s['sim_span'] / 3600:.1f} simulated hours in {s['wall']:.0f} s)")
    print(f"    {'measure':<52}{'Healer':>14}{'baseline':>14}")
    print(f"    {'last replica serving -> ready event, p50':<52}{f(pct(s['lags'], 50)):>14}")
    print(f"    {'last replica serving -> ready event, p95':<52}{f(pct(s['lags'], 95)):>14}")
    print(f"    {'lag / backoff step that found it, p50 / p95':<52}"
          f"{pct(s['ratios'], 50):>10.2f} / {pct(s['ratios'], 95):.2f}")
    mean_ttd = statistics.mean(s["ttd"])
    print(f"    {'time to deploy (push -> go), mean':<52}{f(mean_ttd):>14}")
    for sleep in (120.0, 300.0, 600.0, max(s["truth"])):
        fail = sum(1 for t in s["truth"] if t > sleep) / len(s["truth"])
        name = f"blind sleep {sleep:.0f} s" + (" (oracle: longest true lag)" if sleep == max(s["truth"]) else "")
        print(f"    {'  vs ' + name + ': time-to-deploy ratio':<52}{mean_ttd / sleep:>14.2f}{f(sleep):>14}"
              f"   pulls fail ('manifest unknown') in {fail:.0%} of pushes")
    print(f"    true replication lag p50 / p95 / max: {pct(s['truth'], 50):.0f} / {pct(s['truth'], 95):.0f} / "
          f"{max(s['truth']):.0f} s")
    print(f"\n1b. readiness lag — REAL WIRE (docker-registry replicas, Azurite queue, topic stand-in), backoff "
          f"0.5 s x1.5 max 2 s; n={r['n']}, {r['published']} ready events")
    print(f"    {'last replica serving -> ready event, p50':<52}{f(pct(r['lags'], 50)):>14}")
    print(f"    {'last replica serving -> ready event, p95':<52}{f(pct(r['lags'], 95)):>14}"
          f"   (max backoff step 2 s + queue polling)")
    real_sleep = max(r["truth"]) if r["truth"] else float("nan")
    print(f"    {'time to deploy mean vs oracle blind sleep':<52}{f(statistics.mean(r['ttd'])):>14}"
          f"{f(real_sleep):>14}   ratio {statistics.mean(r['ttd']) / real_sleep:.2f}")
    print("\n2.  probe cost (simulated run 1a)")
    print(f"    {'registry requests per wait per replica':<52}{s['requests_per_wait_replica']:>14.1f}"
          f"{s['naive_per_wait_replica']:>14.1f}   script polling the tag on every region every 2 s")
    print(f"\n3.  {c['n']} concurrent pushes, {c['workers']} workers on the real queue (Azurite); registry "
          f"SIMULATED in real time (replicas ready 1-10 s after push); short backoff")
    print(f"    {'deliveries taken in per second (16 concurrent)':<52}{c['intake_per_s']:>14.0f}"
          f"   all {c['n']} in {c['intake_s']:.1f} s; one delivery p95 {c['intake_p95'] * 1000:.0f} ms")
    print(f"    {'ready events':<52}{c['published']:>14}")
    print(f"    {'last replica serving -> ready event, p50 / p95':<52}{pct(c['lags'], 50):>10.1f} s / "
          f"{pct(c['lags'], 95):.1f} s   (idle system, 1b: {pct(r['lags'], 50):.1f} / {pct(r['lags'], 95):.1f} s)")
    print(f"    {'all outcomes out, after the last replica was ready':<52}{f(c['drain_after_last_ready']):>14}")
    print(f"    {'checks per wait; max queue depth':<52}{c['checks_per_wait']:>14.1f}{c['max_depth']:>14}")
    ok = s["published"] == s["n"] and r["published"] == r["n"] and c["published"] == c["n"] and not r["errors"]
    ok = rp.report(*probes) and ok
    print("\nall waits produced exactly one outcome" if ok else "\nFAILED: missing outcomes")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
