"""The downshift tick's enqueueing: planned evaluations go out in chunks, and a tenant already queued is not queued
again.

At 10,000 tenants the tick used to send one queue message per planned tenant (thousands of sends, most of the
tick's time). Now:

* the plan of an app is cut into chunks of `CHUNK` tenants (a plan of up to `SINGLES_UP_TO` tenants goes out one
  per message, evaluated in parallel); a chunk of one is today's per-tenant `tick` message, a larger one a
  `tick-batch` message the worker evaluates tenant by tenant (each still under its own lease);
* before a chunk is sent, a marker row `~queued:<id>` listing its tenants is written to the app's partition of the
  downshift table (the one the tick lists anyway), in table transactions of up to 100; sends run on a few threads;
* the next tick skips tenants named by a marker younger than `QUEUED_HORIZON` (their evaluation is still queued or
  running); the worker removes the marker when the chunk is done, or narrows it to the tenants it must retry. A
  marker whose message was lost only delays those tenants until it ages out.

The evaluation itself (`shell.Evaluation`) is unchanged: a tenant evaluated twice decides from fresh state.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from collections.abc import Callable, Iterable

from shared.config import Settings
from shared.work import RetryLater, busy_delay, enqueue

log = logging.getLogger("healer.downshift")
CHUNK = 100
SINGLES_UP_TO = 8  # a plan this small goes out one tenant per message: evaluated in parallel, as before
SPREAD = 32  # a larger plan goes out in at least this many messages (host.json: 24 run at once per instance)
SEND_THREADS = 8
QUEUED_PREFIX = "~queued:"
QUEUED_HORIZON = dt.timedelta(minutes=30)

Plan = list[tuple[str, Any, str]]  # (tenant, spend observation, why) as shell.plan_app returns it
Evaluate = Callable[[str, Any], str]  # (tenant, spend dict) -> outcome


def queued_tenants(markers: Iterable[dict[str, Any]], now: dt.datetime) -> set[str]:
    """Tenants named by markers written less than `QUEUED_HORIZON` ago (their work is still queued or running)."""
    out: set[str] = set()
    for data in markers:
        try:
            at = dt.datetime.fromisoformat(data["at"])
        except (KeyError, TypeError, ValueError):
            continue
        if now - at < QUEUED_HORIZON:
            out.update(str(t)[:64] for t in data.get("tenants", []) if isinstance(t, str))
    return out


def chunks(plan: Plan, size: int) -> list[Plan]:
    """The plan in messages: one tenant each for a small plan; else at most `size` tenants each, and at least
    `SPREAD` messages (so a mid-sized plan is still evaluated by that many workers at once)."""
    size = 1 if len(plan) <= SINGLES_UP_TO else max(1, min(size, -(-len(plan) // SPREAD)))
    return [plan[i:i + size] for i in range(0, len(plan), size)]


def message(app_key: str, marker: str, chunk: Plan, spend_to_dict: Callable[[Any], Any]) -> dict[str, Any]:
    """One chunk's work message: today's per-tenant `tick` message for one tenant, a `tick-batch` for more."""
    if len(chunk) == 1:
        tenant, obs, _ = chunk[0]
        return {"v": 1, "kind": "tick", "app": app_key, "tenant": tenant, "spend": spend_to_dict(obs),
                "queued": marker, "attempt": 0}
    return {"v": 1, "kind": "tick-batch", "app": app_key, "queued": marker, "attempt": 0,
            "tenants": [{"tenant": t, "spend": spend_to_dict(obs)} for t, obs, _ in chunk]}


def enqueue_plan(settings: Settings, table: str, partition: str, app_key: str, plan: Plan, now: dt.datetime,
                 spend_to_dict: Callable[[Any], Any], queue_name: str) -> int:
    """Mark and send the plan in chunks. Returns the number of messages sent."""
    from shared.storage import table as table_client
    if not plan:
        return 0
    parts = chunks(plan, CHUNK)
    ids = [uuid.uuid4().hex[:16] for _ in parts]
    rows = [{"PartitionKey": partition, "RowKey": QUEUED_PREFIX + i,
             "data": json.dumps({"tenants": [t for t, _, _ in part], "at": now.isoformat()}, separators=(",", ":"))}
            for i, part in zip(ids, parts)]
    client = table_client(settings, table)
    for i in range(0, len(rows), 100):  # one entity group transaction per 100 markers (same partition)
        client.submit_transaction([("upsert", row) for row in rows[i:i + 100]])
    messages = [message(app_key, QUEUED_PREFIX + i, part, spend_to_dict) for i, part in zip(ids, parts)]
    if len(messages) == 1:
        enqueue(settings, queue_name, messages[0])
    else:
        with ThreadPoolExecutor(min(SEND_THREADS, len(messages))) as pool:
            list(pool.map(lambda m: enqueue(settings, queue_name, m), messages))
    return len(messages)


def items(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """The (tenant, spend) items of a queued `tick` or `tick-batch` message."""
    if msg.get("kind") == "tick":
        return [{"tenant": msg.get("tenant") or "*", "spend": msg.get("spend")}]
    got = msg.get("tenants")
    return [i for i in got if isinstance(i, dict)] if isinstance(got, list) else []


def handle_queued(settings: Settings, table: str, partition: str, msg: dict[str, Any], evaluate: Evaluate,
                  now: dt.datetime) -> str:
    """Evaluate each tenant of a queued chunk. Tenants that must be retried (busy lease, a failure) are narrowed
    into the message and its marker and come back later together (RetryLater); finished ones are never redone.
    Returns the outcome (of the one tenant, or a count per outcome for a batch)."""
    from shared.state import Store
    todo, outcomes, retry, reasons = items(msg), [], [], []
    for item in todo:
        tenant = str(item.get("tenant") or "*")[:64]
        try:
            outcomes.append(evaluate(tenant, item.get("spend")))
        except RetryLater as exc:
            retry.append(item)
            reasons.append(f"{tenant}: {exc.reason}")
        except Exception as exc:  # one tenant's failure must not redo or block the others
            log.warning("downshift evaluation of %s failed: %s", tenant, type(exc).__name__, exc_info=True)
            retry.append(item)
            reasons.append(f"{tenant}: {type(exc).__name__}")
    store, marker = Store(settings, table), str(msg.get("queued") or "")
    if retry:
        if msg.get("kind") == "tick":
            msg["spend"] = retry[0].get("spend")
        else:
            msg["tenants"] = retry
        if marker.startswith(QUEUED_PREFIX) and len(retry) < len(todo):  # the marker names only what is left
            _narrow(store, partition, marker, [str(i.get("tenant") or "*") for i in retry], now)
        raise RetryLater(busy_delay(int(msg.get("attempt", 0))), "; ".join(reasons)[:500])
    if marker.startswith(QUEUED_PREFIX):
        try:
            store.delete(partition, marker)
        except Exception:  # it ages out
            log.info("could not remove downshift marker %s", marker)
    if len(todo) == 1 and outcomes:
        return outcomes[0]
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    return "batch " + ", ".join(f"{k}×{v}" for k, v in sorted(counts.items()))


def _narrow(store: Any, partition: str, marker: str, tenants: list[str], now: dt.datetime) -> None:
    from shared.state import Record
    try:
        store.upsert(Record(partition, marker, {"tenants": tenants, "at": now.isoformat()}))
    except Exception:
        log.info("could not narrow downshift marker %s", marker)
