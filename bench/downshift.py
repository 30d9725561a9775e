"""Downshift benchmarks, each printed beside its baseline from the same run.

1. Spend evaluation for N tenants (default 10,000) per timer tick through the real LogsQueryClient against the Log
   Analytics stand-in: wall time, peak Python memory (tracemalloc) and query round trips, for Healer's one KQL
   aggregation, beside (a) pulling the raw cost rows and summing in Python, and (b) one query per tenant (measured
   on a sample, extrapolated to N).
2. Planning a tick for N tenants: the pure core over the whole snapshot (which tenants need a serialised
   evaluation), tenants per second.
3. Decision throughput: `core.decide` calls per second over varied inputs.
4. Spend from token metrics with a rate card (gpt-4o / gpt-4o-mini prompt and completion tokens per tenant), priced
   in the same single aggregation, beside pulling the raw token rows and pricing them in Python; both checked
   against hand-computed totals.

Run: `.venv/bin/python bench/downshift.py [--tenants 10000] [--rows-per-tenant 3] [--per-tenant-sample 100]`
"""
from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from healers.downshift import spend as spend_mod  # noqa: E402
from healers.downshift.actuators import Current  # noqa: E402
from healers.downshift.core import (CapacitySignal, DownshiftPolicy, DownshiftState, Inputs, ObservedModel,  # noqa: E402
                                    SpendObservation, decide)
from healers.downshift.periods import period_at  # noqa: E402
from standins.harness import scratch_dir  # noqa: E402
from standins.harness import make_test_ca  # noqa: E402
from standins.log_analytics import start_log_analytics  # noqa: E402

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
WORKSPACE = "33333333-4444-5555-6666-777777777777"
SECRET = "bench-only-token-secret-0123456789abcdef"
LADDER = ["gpt-4o", "gpt-4o-mini", "gpt-35-turbo"]


class Credential:
    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        from standins.tokens import mint
        token, exp = mint(SECRET, "https://api.loganalytics.io", object_id="bench", app_id="bench")
        return AccessToken(token, exp)


def seed(la, tenants: int, per_tenant: int) -> int:
    rng = random.Random(7)
    rows, total = [], 0
    for i in range(tenants):
        for j in range(per_tenant):
            when = NOW - dt.timedelta(hours=rng.uniform(0.1, 400))
            rows.append({"TimeGenerated": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "Name": "agent.cost.usd",
                         "Sum": round(rng.uniform(0, 40), 4), "ItemCount": 1, "AppRoleName": "chat-web",
                         "Properties": {"tenant": f"t{i:05d}"}})
        if len(rows) >= 2000:
            total = la.seed("AppMetrics", rows)
            rows = []
    if rows:
        total = la.seed("AppMetrics", rows)
    return total


def measure(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, elapsed, peak


def healer_spend(client, tenants: int):
    source = spend_mod.Source("workspace", WORKSPACE, None, "")
    start = period_at(NOW).start_utc
    result = spend_mod.query_spend(client, source, "agent.cost.usd", "tenant", [start], NOW, ["chat-web"])
    period = period_at(NOW)
    obs = {f"t{i:05d}": spend_mod.observation(result, "chat-web", f"t{i:05d}", period, 100.0)
           for i in range(tenants)}
    return obs, result.round_trips


def raw_spend(client, tenants: int):
    query = ("// healer-query: downshift-bench-raw\nAppMetrics\n| where Name == \"agent.cost.usd\"\n"
             "| project t = TimeGenerated, tenant = tostring(Properties[\"tenant\"]), amount = Sum")
    answer = client.query_workspace(WORKSPACE, query, timespan=(period_at(NOW).start_utc, NOW))
    totals: dict[str, float] = {}
    rows = answer.tables[0].rows
    for row in rows:
        totals[row[1]] = totals.get(row[1], 0.0) + (row[2] or 0.0)
    return totals, len(rows)


def per_tenant_spend(client, sample: int):
    start = period_at(NOW).start_utc
    base = spend_mod.spend_query("workspace", "agent.cost.usd", "tenant", [start], NOW, ["chat-web"])
    totals = {}
    for i in range(sample):
        tenant = f"t{i:05d}"
        query = base.replace("\n| summarize", f"\n| where tenant == \"{tenant}\"\n| summarize")
        answer = client.query_workspace(WORKSPACE, query, timespan=(start, NOW))
        totals[tenant] = sum(r[2] for r in answer.tables[0].rows)
    return totals


def seed_tokens(la, tenants: int) -> tuple[int, dict[str, float]]:
    """Prompt/completion token rows (two models) per tenant, and the hand-computed money per tenant this period."""
    rng = random.Random(11)
    rows, total, expected = [], 0, {}
    start = period_at(NOW).start_utc
    for i in range(tenants):
        tenant, money = f"t{i:05d}", 0.0
        for model in ("gpt-4o", "gpt-4o-mini"):
            when = NOW - dt.timedelta(hours=rng.uniform(0.1, 400))
            for name, n in (("Prompt Tokens", rng.randint(0, 100_000)), ("Completion Tokens", rng.randint(0, 20_000))):
                rows.append({"TimeGenerated": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "Name": name, "Sum": n,
                             "ItemCount": 1, "AppRoleName": "chat-web",
                             "Properties": {"tenant": tenant, "model": model}})
                if when.replace(microsecond=0) >= start:
                    price = EXAMPLE_PRICES[model][0 if name == "Prompt Tokens" else 1]
                    money += n / 1000 * price
        expected[tenant] = money
        if len(rows) >= 4000:
            total = la.seed("AppMetrics", rows)
            rows = []
    if rows:
        total = la.seed("AppMetrics", rows)
    return total, expected


EXAMPLE_PRICES = {"gpt-4o": (0.0025, 0.01), "gpt-4o-mini": (0.00015, 0.0006)}   # USD per 1K tokens, 2026-12-02


def healer_token_spend(client, tenants: int):
    from healers.downshift.rates import EXAMPLE, RateCard
    source = spend_mod.Source("workspace", WORKSPACE, None, "")
    result = spend_mod.query_spend(client, source, "unused", "tenant", [period_at(NOW).start_utc], NOW,
                                   ["chat-web"], RateCard.from_config(EXAMPLE))
    period = period_at(NOW)
    return {f"t{i:05d}": spend_mod.observation(result, "chat-web", f"t{i:05d}", period, 100.0)
            for i in range(tenants)}


def raw_token_spend(client):
    query = ("// healer-query: downshift-bench-raw-tokens\nAppMetrics\n"
             "| where Name in (\"Prompt Tokens\", \"Completion Tokens\")\n"
             "| project tenant = tostring(Properties[\"tenant\"]), Name, model = tostring(Properties[\"model\"]), Sum")
    answer = client.query_workspace(WORKSPACE, query, timespan=(period_at(NOW).start_utc, NOW))
    totals: dict[str, float] = {}
    for tenant, name, model, tokens in answer.tables[0].rows:
        price = EXAMPLE_PRICES[model][0 if name == "Prompt Tokens" else 1]
        totals[tenant] = totals.get(tenant, 0.0) + (tokens or 0) / 1000 * price
    return totals, len(answer.tables[0].rows)


def plan_throughput(tenants: int, obs: dict[str, SpendObservation | None]) -> tuple[float, int]:
    """The tick's pure planning step (what `shell.plan_app` runs per tenant): decide over the snapshot."""
    policy = DownshiftPolicy.from_config({"ladder": LADDER})
    t0 = time.perf_counter()
    planned = 0
    for i in range(tenants):
        tenant = f"t{i:05d}"
        state = DownshiftState(app="bench", tenant=tenant)
        decision, after = decide(Inputs(observed=Current("gpt-4o").observed, spend=obs.get(tenant)), state, policy,
                                 NOW)
        planned += decision.writes or after.status != state.status
    return time.perf_counter() - t0, planned


def decision_throughput(n: int) -> float:
    policy = DownshiftPolicy.from_config({"ladder": LADDER, "min_dwell_s": 60})
    rng = random.Random(3)
    inputs = []
    for i in range(1000):
        spend = SpendObservation(rng.uniform(0, 120), 100.0, rng.uniform(0, 200), NOW - dt.timedelta(minutes=5),
                                 "2026-03") if rng.random() < 0.8 else None
        cap = CapacitySignal(f"a{i % 7}", rng.choice(["Fired", "Resolved"]), NOW) if rng.random() < 0.3 else None
        inputs.append(Inputs(observed=ObservedModel(rng.choice(LADDER[:2])), spend=spend, capacity=cap))
    state = DownshiftState(app="bench", tenant="t")
    t0 = time.perf_counter()
    now = NOW
    for i in range(n):
        now += dt.timedelta(seconds=30)
        _, state = decide(inputs[i % len(inputs)], state, policy, now)
        if state.status == "HELD":
            state = DownshiftState(app="bench", tenant="t")
    return n / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--rows-per-tenant", type=int, default=3)
    parser.add_argument("--per-tenant-sample", type=int, default=100)
    parser.add_argument("--decisions", type=int, default=50_000)
    args = parser.parse_args()
    work = scratch_dir("healer-bench-downshift-")
    ca = make_test_ca(work / "tls")
    import os
    os.environ.update(ca.env)
    la = start_log_analytics(work, ca, SECRET)
    try:
        from azure.monitor.query import LogsQueryClient
        client = LogsQueryClient(Credential(), endpoint=la.endpoint, audience="https://api.loganalytics.io")
        rows = seed(la, args.tenants, args.rows_per_tenant)
        healer_spend(client, 10)  # warm the connection and the token
        before = la.stats()["round_trips"]
        (obs, trips), h_time, h_peak = measure(lambda: healer_spend(client, args.tenants))
        h_trips = la.stats()["round_trips"] - before
        known = sum(1 for o in obs.values() if o is not None and o.spend is not None)
        before = la.stats()["round_trips"]
        (totals, raw_n), r_time, r_peak = measure(lambda: raw_spend(client, args.tenants))
        r_trips = la.stats()["round_trips"] - before
        sample = max(1, min(args.per_tenant_sample, args.tenants))
        _, p_time, p_peak = measure(lambda: per_tenant_spend(client, sample))
        p_est = p_time / sample * args.tenants
        mismatch = sum(1 for t, o in obs.items() if abs((o.spend or 0) - totals.get(t, 0)) > 1e-6)
        _, expected = seed_tokens(la, args.tenants)
        before = la.stats()["round_trips"]
        tok_obs, t_time, t_peak = measure(lambda: healer_token_spend(client, args.tenants))
        t_trips = la.stats()["round_trips"] - before
        (tok_raw, tok_n), tr_time, tr_peak = measure(lambda: raw_token_spend(client))
        tok_worst = max(abs((o.spend if o else -1) - expected[t]) for t, o in tok_obs.items())
        tok_raw_worst = max(abs(tok_raw.get(t, 0.0) - expected[t]) for t in expected)
        plan_s, planned = plan_throughput(args.tenants, obs)
        per_s = decision_throughput(args.decisions)
    finally:
        la.stop()
    print(f"\ndownshift benchmarks ({args.tenants} tenants, {rows} cost rows in the stand-in; 2 shared cores)\n")
    print(f"{'spend evaluation per tick':<44}{'time':>12}{'peak mem':>12}{'round trips':>14}{'rows back':>11}")
    print(f"{'Healer: one KQL aggregation':<44}{h_time:>11.2f}s{h_peak / 2**20:>10.1f}MB{h_trips:>14}"
          f"{args.tenants:>11}")
    print(f"{'baseline: raw rows, summed in Python':<44}{r_time:>11.2f}s{r_peak / 2**20:>10.1f}MB{r_trips:>14}"
          f"{raw_n:>11}")
    print(f"{'baseline: one query per tenant (extrap.)':<44}{p_est:>11.1f}s{p_peak / 2**20:>10.1f}MB"
          f"{args.tenants:>14}{'':>11}   measured {sample} tenants in {p_time:.2f}s")
    print(f"\nspend known for {known}/{args.tenants} tenants; Healer vs raw-row totals differ for {mismatch}")
    print(f"\n{'spend from token metrics (rate card)':<44}{'time':>12}{'peak mem':>12}{'round trips':>14}"
          f"{'rows back':>11}")
    print(f"{'Healer: priced in the one KQL aggregation':<44}{t_time:>11.2f}s{t_peak / 2**20:>10.1f}MB{t_trips:>14}"
          f"{args.tenants:>11}")
    print(f"{'baseline: raw token rows, priced in Python':<44}{tr_time:>11.2f}s{tr_peak / 2**20:>10.1f}MB{1:>14}"
          f"{tok_n:>11}")
    print(f"largest difference from the hand-computed totals ({4 * args.tenants} token rows): Healer "
          f"${tok_worst:.2e}, baseline ${tok_raw_worst:.2e}")
    print(f"tick planning (pure core over the snapshot): {args.tenants / plan_s:,.0f} tenants/s "
          f"({plan_s * 1000:.0f} ms for {args.tenants}; {planned} need an evaluation)")
    print(f"decision throughput (core.decide): {per_s:,.0f} decisions/s")
    return 0 if mismatch == 0 and h_trips == 1 and t_trips == 1 and tok_worst < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
