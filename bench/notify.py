"""Notification benchmarks, each printed beside its baseline from the same run (Azurite + the Teams, Slack and
generic stand-ins, all local).

1. Decision-path cost of notifying: `audit.record` of an `escalated` decision with three destinations, one of them
   slow (the Teams stand-in answers after `--slow` seconds), p50/p99; beside the baseline the healers used before:
   the same audit insert plus an inline POST to each destination (the old `notify(...)` call, per destination).
2. Redelivery: `--records` notifying records whose delivery messages are each delivered `--copies` times (the
   host's at-least-once delivery) → notifications received per destination; beside a naive sender without the
   idempotency key (one POST per delivery).

Run: `.venv/bin/python bench/notify.py [--records 40] [--copies 3] [--slow 1.0] [--decisions 30]`
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from standins.harness import scratch_dir, start_azurite  # noqa: E402
from tests.notify_helpers import _client, drain, start_chat_hooks  # noqa: E402

APP = "/subscriptions/1/resourceGroups/prod/providers/Microsoft.Web/sites/bench-web"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=40)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--slow", type=float, default=1.0)
    parser.add_argument("--decisions", type=int, default=30)
    args = parser.parse_args()
    workdir = scratch_dir("healer-bench-notify-")
    azurite = start_azurite(workdir)
    chat = start_chat_hooks(workdir)
    try:
        dests = chat.destinations()
        os.environ.update({"AzureWebJobsStorage": azurite.connection_string,
                           "HEALER_TABLE_PREFIX": "bench" + uuid.uuid4().hex[:6],
                           "HEALER_NOTIFY_DESTINATIONS": json.dumps(dests)})
        from shared import audit, notify
        from shared.config import Settings
        from shared.notify_render import RENDERERS, build_notice
        from shared.work import enqueue
        notify.BACKOFF_BASE_SECONDS = 0.0
        settings = Settings()
        audit.record(settings, healer="bench", outcome="recorded", reason="warm-up")

        # 1. decision path
        httpx.post(chat.url("teams") + "/_standin/latency", json={"seconds": args.slow})
        healer = []
        for i in range(args.decisions):
            t0 = time.perf_counter()
            audit.record(settings, healer="rollback", outcome="escalated", reason=f"bench {i}", resource=APP)
            healer.append(time.perf_counter() - t0)
        drain()
        plain = Settings({**os.environ, "HEALER_NOTIFY_DESTINATIONS": ""})
        baseline = []
        for i in range(max(3, args.decisions // 6)):
            t0 = time.perf_counter()
            entry = audit.record(plain, healer="rollback", outcome="escalated", reason=f"inline {i}", resource=APP)
            for d in notify.destinations(settings):
                httpx.post(d.url, json=RENDERERS[d.format](build_notice(entry)), timeout=10)
            baseline.append(time.perf_counter() - t0)
        floor = []
        for i in range(args.decisions):
            t0 = time.perf_counter()
            audit.record(plain, healer="rollback", outcome="escalated", reason=f"floor {i}", resource=APP)
            floor.append(time.perf_counter() - t0)
        print(f"decision path, 3 destinations, one answering in {args.slow:.1f} s:")
        print(f"  audit insert alone       p50 {pct(floor, 50) * 1000:8.1f} ms   p99 {pct(floor, 99) * 1000:8.1f} ms")
        print(f"  Healer (queued)          p50 {pct(healer, 50) * 1000:8.1f} ms   p99 {pct(healer, 99) * 1000:8.1f} ms")
        print(f"  baseline (inline POSTs)  p50 {pct(baseline, 50) * 1000:8.1f} ms   p99 "
              f"{pct(baseline, 99) * 1000:8.1f} ms")

        # 2. redelivery
        chat.reset()
        for i in range(args.records):
            audit.record(settings, healer="rollback", outcome="acted", reason=f"redelivery {i}", resource=APP)
        messages, work = [], _client(notify.QUEUE)
        while batch := list(work.receive_messages(max_messages=32, visibility_timeout=60)):
            for m in batch:
                messages.append(json.loads(m.content))
                work.delete_message(m)
        for m in messages:
            for _ in range(args.copies):
                enqueue(settings, notify.QUEUE, m)
        drain()
        got = {f: len(chat.received(f)) for f in ("teams", "slack", "generic")}
        deliveries = len(messages) * args.copies
        print(f"redelivery: {args.records} records x 3 destinations, every delivery message delivered "
              f"{args.copies} times ({deliveries} deliveries):")
        print(f"  Healer notifications received  {got}  (one per record and destination)")
        print(f"  baseline (no idempotency key)  {deliveries} POSTs = {args.copies} per record and destination "
              f"(one per delivery, by construction)")
    finally:
        chat.stop()
        azurite.server.stop()


if __name__ == "__main__":
    main()
