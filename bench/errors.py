"""Benchmark: one day of synthetic exception rows (default 1,000,000, before KQL aggregation) through cluster and rank.

    python -m bench.errors [--rows 1000000] [--seed 7]

Side by side, each approach in its own process (time and peak RSS measured per process), same seeded rows
streamed from a generator (never all in memory):

  (each process first times generating the rows alone, the cost both share, subtracted in "net" figures)
  healer    what Healer does: the KQL aggregation (mask GUID/hex/digits, sum itemCount by problem id / type /
            shape / role, counts per hour, one sample each) — done by Kusto in production, timed here in Python
            as an upper bound — then healers.errors.cluster + rank on the aggregated rows
  naive     the baseline: pull every raw row and fingerprint each one client-side (parse every stack, template
            every message), count per fingerprint, rank

Both must find the same root causes; the run prints the groups found and checks it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import resource
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any, Iterator

from tests.errors import synth

START = dt.datetime(2025, 3, 2, 6, tzinfo=dt.timezone.utc)
FIRST = ("alice", "bruno", "chen", "dana", "emeka", "fatima", "gus", "hana", "ivan", "jade", "kofi", "lena", "mateo",
         "nora", "omar", "priya", "quinn", "rosa", "sven", "tara")
NAMES = [f"{a}.{b}" for a in FIRST for b in ("smith", "garcia", "kim", "okafor", "novak", "silva", "berg", "khan")]
TENANTS = ["contoso", "fabrikam", "northwind", "adventure-works", "tailspin"]
INSTANCES = [f"{i:02d}8dc4f1a2b3" for i in range(24)]
BUILDS = (88, 97)
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HEX = re.compile(r"0x[0-9a-fA-F]+|[0-9a-fA-F]{16,}")
NUM = re.compile(r"[0-9]+")

Row = tuple  # (seconds, problem, type, message, role, operation, item_count, stack)


def rows(n: int, seed: int) -> Iterator[Row]:
    """n raw rows: the drill's causes (stacks in 4 languages, ids in messages) plus a high-cardinality
    message-only error whose words vary (user names/tenants: not masked by KQL, grouped by templates)."""
    rng = random.Random(seed)
    causes = list(synth.CAUSES)
    weights = [c.weight for c in causes] + [0.1]
    stacks_cache: dict[tuple[int, int, int], str] = {}
    for _ in range(n):
        k = rng.choices(range(len(weights)), weights)[0]
        seconds = rng.random() * 86_400
        count = rng.randint(2, 10) if rng.random() < 0.3 else 1
        if k == len(causes):
            msg = f"User {rng.choice(NAMES)} not found in tenant {rng.choice(TENANTS)} (request {rng.getrandbits(32)})"
            yield (seconds, "KeyNotFoundException at Users.Find", "System.Collections.Generic.KeyNotFoundException",
                   msg, rng.choice(("shop-api", "identity")), "GET /users", count, "")
            continue
        c = causes[k]
        stack = ""
        if c.stack:
            key = (k, rng.randrange(len(BUILDS)), rng.randrange(len(INSTANCES)))
            stack = stacks_cache.get(key) or stacks_cache.setdefault(key, c.stack(BUILDS[key[1]], INSTANCES[key[2]]))
        yield (seconds, c.problem, c.type, c.message(rng), rng.choice(c.roles), rng.choice(c.operations), count, stack)


def shape(message: str) -> str:
    return NUM.sub("<n>", HEX.sub("<hex>", GUID.sub("<guid>", message[:300])))


def healer(n: int, seed: int) -> dict[str, Any]:
    from healers.errors.cluster import cluster
    from healers.errors.kql import ErrorRow
    from healers.errors.rank import rank
    t0 = time.perf_counter()
    groups: dict[tuple[str, str, str, str], list[Any]] = {}
    for sec, problem, kind, msg, role, op, count, stack in rows(n, seed):  # what Kusto's summarize does
        key = (problem, kind, shape(msg), role)
        g = groups.get(key)
        if g is None:
            g = groups[key] = [0, defaultdict(int), sec, sec, set(), msg, stack]
        g[0] += count
        g[1][int(sec // 3600)] += count
        g[2], g[3] = min(g[2], sec), max(g[3], sec)
        if len(g[4]) < 20:
            g[4].add(op)
    t1 = time.perf_counter()
    aggregated = [ErrorRow("exceptions", k[0], k[1], k[2], k[3], g[0], START + dt.timedelta(seconds=g[2]),
                           START + dt.timedelta(seconds=g[3]),
                           {(START + dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H:00"): v for h, v in g[1].items()},
                           sorted(g[4]), g[5], g[6]) for k, g in groups.items()]
    found = cluster(aggregated)
    ranked = rank(found, {}, START.date())
    t2 = time.perf_counter()
    return {"aggregate_s": t1 - t0, "cluster_rank_s": t2 - t1, "aggregated_rows": len(aggregated),
            "groups": len(found), "top": [(r.group.title[:70], r.group.occurrences) for r in ranked[:8]]}


def naive(n: int, seed: int) -> dict[str, Any]:
    from healers.errors import stacks
    from healers.errors.templates import message_template
    t0 = time.perf_counter()
    counts: dict[str, int] = defaultdict(int)
    titles: dict[str, str] = {}
    for sec, problem, kind, msg, role, op, count, stack in rows(n, seed):
        sig = stacks.stack_signature(kind, stacks.parse_text(stack)) if stack else None
        if sig is None:
            sig = stacks.message_signature(kind, message_template(msg))
        counts[sig] += count
        titles.setdefault(sig, sig[:70])
    top = sorted(counts.items(), key=lambda kv: -kv[1])
    t1 = time.perf_counter()
    return {"cluster_rank_s": t1 - t0, "groups": len(counts), "top": [(titles[k], v) for k, v in top[:8]]}


def generate(n: int, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    total = sum(r[6] for r in rows(n, seed))
    return {"generate_s": time.perf_counter() - t0, "occurrences": total}


def child(approach: str, n: int, seed: int) -> None:
    gen = generate(n, seed)  # same process, same conditions: the shared cost to subtract
    t0 = time.perf_counter()
    out = {"healer": healer, "naive": naive}[approach](n, seed)
    out["wall_s"] = time.perf_counter() - t0
    out.update(gen)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", choices=["healer", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.rows, args.seed)
        return 0
    results = {}
    for approach in ("healer", "naive"):
        proc = subprocess.run([sys.executable, "-m", "bench.errors", "--child", approach, "--rows", str(args.rows),
                               "--seed", str(args.seed)], capture_output=True, text=True, check=True)
        results[approach] = json.loads(proc.stdout.strip().splitlines()[-1])
    h, nv = results["healer"], results["naive"]
    print(f"{args.rows:,} synthetic exception rows ({h['occurrences']:,} occurrences with itemCount), seed {args.seed}")
    print(f"{'':36}{'healer (KQL agg + cluster/rank)':>34}{'naive (per-row fingerprint)':>30}")
    print(f"{'generating the rows alone, s':36}{h['generate_s']:>34.2f}{nv['generate_s']:>30.2f}")
    print(f"{'wall time incl. generation, s':36}{h['wall_s']:>34.2f}{nv['wall_s']:>30.2f}")
    print(f"{'net time (minus generation), s':36}{h['wall_s'] - h['generate_s']:>34.2f}"
          f"{nv['wall_s'] - nv['generate_s']:>30.2f}")
    print(f"{'  cluster + rank in Healer, s':36}{h['cluster_rank_s']:>34.3f}{'(all of it)':>30}")
    print(f"{'peak RSS of the process, MB':36}{h['peak_rss_mb']:>34.0f}{nv['peak_rss_mb']:>30.0f}")
    print(f"{'rows into clustering':36}{h['aggregated_rows']:>34,}{args.rows:>30,}")
    print(f"{'groups found':36}{h['groups']:>34}{nv['groups']:>30}")
    print("healer top groups (by score: weighted count x spread x change):")
    for title, n in h["top"]:
        print(f"  {n:>9,}  {title}")
    print("naive top groups:")
    for title, n in nv["top"]:
        print(f"  {n:>9,}  {title}")
    expected = len(synth.CAUSES) + 1
    ok = h["groups"] == expected
    print(f"healer found {h['groups']} root causes (expected {expected}): {'OK' if ok else 'MISMATCH'}; naive found "
          f"{nv['groups']} (per-row message templates do not merge word variants)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
