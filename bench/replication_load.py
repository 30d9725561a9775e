"""Replication under load: N concurrent waits (default 1,000) checked by as many concurrent handlers as one
instance runs with host.json's queue settings (batchSize + newBatchThreshold), beside the handlers the previous
host.json gave (8 + 4), in one run. Real queue (Azurite) and Healer's real shell; registry simulated in real time
(replicas ready 1-10 s after the push), short backoff (0.5 s x1.5, max 2 s). Reports intake (events/s) and ready
lag p95 in backoff steps (goal: within 2 steps of the 2 s step the waits are on by then).

Run: `.venv/bin/python bench/replication_load.py [--concurrent 1000] [--baseline-handlers 12]`
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.replication import bench_concurrent, pct  # noqa: E402
from standins.harness import REPO, scratch_dir  # noqa: E402
from standins.stack import LocalAzure  # noqa: E402

STEP_S = 2.0  # the backoff step a wait is on once its replicas lag more than a few seconds (max of 0.5 s x1.5)


def host_concurrency() -> int:
    q = json.loads((REPO / "host.json").read_text())["extensions"]["queues"]
    return int(q.get("batchSize", 16)) + int(q.get("newBatchThreshold", int(q.get("batchSize", 16)) // 2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrent", type=int, default=1000)
    parser.add_argument("--baseline-handlers", type=int, default=12, help="8 + 4: host.json before issue 12")
    args = parser.parse_args()
    stack = LocalAzure.start(scratch_dir("healer-bench-repl-load-"))
    os.environ.update(stack.env())
    handlers = host_concurrency()
    try:
        new = bench_concurrent(args.concurrent, handlers)
        old = bench_concurrent(args.concurrent, args.baseline_handlers)
    finally:
        stack.stop()
    print(f"\nreplication under load: {args.concurrent} concurrent waits (2 shared cores; registry simulated in real "
          f"time; backoff 0.5 s x1.5 max {STEP_S:.0f} s)\n")
    print(f"{'measure':<56}{'host.json now':>16}{'before':>12}")
    print(f"{'concurrent check handlers per instance':<56}{handlers:>16}{args.baseline_handlers:>12}")
    for label, key in (("intake, events/s (16 concurrent deliveries)", "intake_per_s"),):
        print(f"{label:<56}{new[key]:>16.0f}{old[key]:>12.0f}")
    for p in (50, 95):
        a, b = pct(new["lags"], p), pct(old["lags"], p)
        print(f"{'ready lag p' + str(p) + ' (s) / in backoff steps':<56}{f'{a:.1f} / {a / STEP_S:.1f}':>16}"
              f"{f'{b:.1f} / {b / STEP_S:.1f}':>12}")
    print(f"{'ready events':<56}{new['published']:>16}{old['published']:>12}")
    print(f"{'all outcomes out, after the last replica was ready (s)':<56}{new['drain_after_last_ready']:>16.1f}"
          f"{old['drain_after_last_ready']:>12.1f}")
    ok = new["published"] == args.concurrent and pct(new["lags"], 95) <= 2 * STEP_S
    print("\nload check:", "ready lag p95 within two backoff steps" if ok else "NOT within two backoff steps")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
