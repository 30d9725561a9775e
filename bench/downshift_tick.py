"""The WHOLE downshift tick (spend query, state and value listings, planning, enqueueing) and the drain of what it
queued, at 1,000 / 10,000 / 50,000 tenants, beside today's per-tenant enqueueing (the code of commit BASELINE), in
one run against the same stand-ins (Azurite, Log Analytics, App Configuration).

Scenario: one AI app with a default budget of 100 per tenant; 2 tenants in 7 have spent 90 (over 80 %: each needs
an evaluation that writes), the others 1. The tick runs in a child process on the chosen code tree; the drain
then runs the queued work with `--workers` concurrent handlers (host.json: batchSize + newBatchThreshold per
instance) for at most `--drain-cap` seconds; beyond that the drain time is extrapolated from the rate so far.
The goal: the whole tick within 2 s at 10k and 8 s at 50k, and its work drained within one tick interval (600 s).

Run: `.venv/bin/python bench/downshift_tick.py [--tenants 1000,10000,50000] [--workers 24] [--drain-cap 120]`
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

# The child process runs the code tree under test (BENCH_CODE_DIR: Healer's, or the exported baseline's).
sys.path.insert(0, os.environ.get("BENCH_CODE_DIR") or str(Path(__file__).resolve().parent.parent))

UTC = dt.timezone.utc
WORKSPACE_ID = "22222222-3333-4444-5555-666666666666"
APP = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/ai-prod/providers/Microsoft.Web/sites/chat-web"
KEY = "ai:model"
TICK_INTERVAL_S = 600


def app_settings(appconfig: str, logs: str) -> dict[str, str]:
    cfg = {"resourceId": APP, "actuator": "appConfiguration", "appConfigEndpoint": appconfig, "key": KEY,
           "role": "chat-web", "defaultBudget": 100.0,
           "policy": {"ladder": ["gpt-4o", "gpt-4o-mini", "gpt-35-turbo"], "min_dwell_s": 600},
           "tenants": {"*": {"budget": 10_000_000.0}}, "budgetNames": []}
    return {"HEALER_POLICY": json.dumps({"version": 1, "rules": [{"action": "*", "resource": "*",
                                                                   "effect": "allow"}]}),
            "HEALER_DOWNSHIFT_APPS": json.dumps([cfg]), "HEALER_DOWNSHIFT_SCHEMA": "workspace",
            "HEALER_DOWNSHIFT_WORKSPACE_ID": WORKSPACE_ID, "HEALER_DOWNSHIFT_LOGS_ENDPOINT": logs}


def seed(la, tenants: int, now: dt.datetime) -> int:
    rows, over = [], 0
    when = (now - dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for i in range(tenants):
        spend = 90.0 if i % 7 < 2 else 1.0
        over += spend > 80
        rows.append({"TimeGenerated": when, "Name": "agent.cost.usd", "Sum": spend, "ItemCount": 1,
                     "AppRoleName": "chat-web", "Properties": {"tenant": f"bt{tenants}-{i:05d}"}})
        if len(rows) >= 5000:
            la.seed("AppMetrics", rows)
            rows = []
    if rows:
        la.seed("AppMetrics", rows)
    return over


# ---------------------------------------------------------------------------------------------- child

def child(workers: int, drain_cap: float) -> None:
    """Runs inside the code tree under test (its directory first on sys.path): one tick, then the drain."""
    from azure.storage.queue import QueueClient

    from healers.downshift import shell
    from shared.config import Settings
    from shared.work import run_queue_message
    import azure.appconfiguration  # noqa: F401  (a warm worker has these imported; the tick is timed, not imports)
    import azure.monitor.query  # noqa: F401
    settings = Settings()
    evaluated = [0]
    run_one = shell.Evaluation.run

    def counted(self, *a, **kw):
        out = run_one(self, *a, **kw)
        with lock:
            evaluated[0] += 1
        return out
    lock = threading.Lock()
    shell.Evaluation.run = counted
    t0 = time.perf_counter()
    report = shell.tick(settings, owner="bench-tick")
    tick_s = time.perf_counter() - t0
    q = QueueClient.from_connection_string(os.environ["AzureWebJobsStorage"], shell.QUEUE)
    messages = q.get_queue_properties().approximate_message_count
    done, stop = [0], threading.Event()

    def work():
        from azure.storage.queue import BinaryBase64DecodePolicy
        client = QueueClient.from_connection_string(os.environ["AzureWebJobsStorage"], shell.QUEUE,
                                                    message_decode_policy=BinaryBase64DecodePolicy())
        while not stop.is_set():
            got = list(client.receive_messages(max_messages=1, visibility_timeout=600))
            if not got:
                return
            body = got[0].content
            run_queue_message(settings, shell.QUEUE, body, 1,
                              lambda m: shell.handle(settings, m, owner=uuid.uuid4().hex[:8]), shell.MAX_ATTEMPTS)
            client.delete_message(got[0])
            with lock:
                done[0] += 1
    t1 = time.perf_counter()
    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    deadline = t1 + drain_cap
    while any(t.is_alive() for t in threads) and time.perf_counter() < deadline:
        time.sleep(0.2)
    stop.set()
    drain_s = time.perf_counter() - t1
    finished = not any(t.is_alive() for t in threads)
    print(json.dumps({"tick_s": tick_s, "planned": len(report.planned), "messages": messages,
                      "drain_s": drain_s, "drained_messages": done[0], "evaluations_done": evaluated[0],
                      "finished": finished}))


# ---------------------------------------------------------------------------------------------- parent

def run(code: Path, env: dict[str, str], workers: int, drain_cap: float) -> dict:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "--workers", str(workers),
                          "--drain-cap", str(drain_cap)],
                         cwd=code, env={**os.environ, **env, "BENCH_CODE_DIR": str(code)}, capture_output=True,
                         text=True, timeout=3600)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", default="1000,10000,50000")
    parser.add_argument("--workers", type=int, default=24)
    parser.add_argument("--drain-cap", type=float, default=120.0)
    parser.add_argument("--baseline", default=None)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.workers, args.drain_cap)
        return 0
    from bench.storm import BASELINE, export
    from standins.appconfig import start_appconfig
    from standins.harness import REPO, scratch_dir
    from standins.log_analytics import start_log_analytics
    from standins.stack import LocalAzure
    work = scratch_dir("healer-bench-tick-")
    base = export(args.baseline or BASELINE, work / "baseline")
    stack = LocalAzure.start(work)
    servers = []
    rows = []
    try:
        la = start_log_analytics(work, stack.ca, stack.secret)
        servers.append(la)
        ac = start_appconfig(work, stack.ca, stack.secret)
        servers.append(ac)
        for n in [int(x) for x in args.tenants.split(",") if x]:
            la.reset()
            over = seed(la, n, dt.datetime.now(UTC))
            result = {}
            for name, code in (("healer", REPO), ("baseline", base)):
                ac.reset()
                ac.seed([{"key": KEY, "value": "gpt-4o"}])
                env = {**stack.env(), **app_settings(ac.endpoint, la.endpoint),
                       "HEALER_TABLE_PREFIX": "bt" + uuid.uuid4().hex[:10]}
                from azure.core.exceptions import ResourceExistsError
                from azure.storage.queue import QueueClient
                q = QueueClient.from_connection_string(stack.azurite.connection_string, "healer-downshift")
                try:
                    q.create_queue()
                except ResourceExistsError:
                    q.clear_messages()
                result[name] = run(code, env, args.workers, args.drain_cap)
            rows.append((n, over, result))
    finally:
        for s in reversed(servers):
            s.stop()
        stack.stop()
    print(f"\ndownshift whole tick and drain (2 shared cores; baseline = per-tenant enqueueing, commit "
          f"{args.baseline or BASELINE}; drain by {args.workers} concurrent handlers, capped at {args.drain_cap:.0f} s "
          f"then extrapolated)\n")
    print(f"{'tenants':>8}{'need eval':>10}  {'':<9}{'tick':>9}{'messages':>10}{'drain':>12}{'drained in 1 tick':>19}")
    ok = True
    for n, over, result in rows:
        for name in ("healer", "baseline"):
            r = result[name]
            rate = r["evaluations_done"] / r["drain_s"] if r["drain_s"] else 0
            drain = r["drain_s"] if r["finished"] else (r["planned"] / rate if rate else float("inf"))
            mark = "" if r["finished"] else " (ext.)"
            within = drain <= TICK_INTERVAL_S
            print(f"{n:>8,}{over:>10,}  {name:<9}{r['tick_s']:>8.2f}s{r['messages']:>10,}{drain:>10.0f}s{mark:<6}"
                  f"{'yes' if within else 'no':>13}")
            if name == "healer":
                goal = 2.0 if n == 10_000 else 8.0 if n == 50_000 else None
                ok &= goal is None or r["tick_s"] <= goal
    print("\ntick goals (<= 2 s at 10k, <= 8 s at 50k):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
