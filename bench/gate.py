"""What one gate costs per side effect, beside the hand-written gating it replaced, in one run (Azurite local).

1. Gate decision latency (an `act` verdict: configuration check, controls global/healer/resource, policy with
   conditions) vs the old per-healer code (controls global/resource, policy) — both read the same Azurite tables.
2. Configuration validation at load: the first full validation of every HEALER_* setting and JSON document, and
   the cached check every gate call makes.
3. A pre-action hook on 127.0.0.1, and a hook that never answers (timeout 0.2 s: deny).

    .venv/bin/python bench/gate.py [--n 300]
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

from standins.harness import free_port, scratch_dir, start_azurite, start_python_server  # noqa: E402

APP = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/shop-prod/providers/Microsoft.Web/sites/shop-web"
POLICY = {"version": 1, "default": "deny", "rules": [
    {"action": "rollback.*", "resource": "*", "effect": "allow"},
    {"action": "*", "resource": "*/sites/payments-*", "effect": "deny", "when": {"from": "2026-12-20T00:00:00Z",
                                                                                 "to": "2027-01-04T00:00:00Z"}},
    {"action": "downshift.switch", "resource": "*", "effect": "deny", "where": {"rung": {"gt": 1}}}]}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def line(label: str, values: list[float]) -> str:
    return f"  {label:<46} p50 {pct(values, 50):7.2f} ms   p99 {pct(values, 99):7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    n = parser.parse_args().n
    work = scratch_dir("healer-bench-gate-")
    azurite = start_azurite(work)
    hook_port = free_port()
    hook = start_python_server("policy-hook", "standins.policy_hook", ["--port", str(hook_port)], hook_port, work)
    try:
        os.environ.update({"AzureWebJobsStorage": azurite.connection_string,
                           "HEALER_TABLE_PREFIX": "bench" + uuid.uuid4().hex[:8], "HEALER_POLICY": json.dumps(POLICY)})
        from shared import config_check, gate
        from shared.config import Settings
        from shared.controls import read_mode
        from shared.policy import evaluate, load_policy
        from shared.state import Store
        settings = Settings()
        Store(settings, "controls"), Store(settings, "audit"), Store(settings, "dedupe")  # tables exist
        proposal = gate.Proposal(healer="rollback", action="rollback.swap", resource=APP, subject="bench",
                                 plan="swap staging into production", params={"slot": "staging"})

        def old_gating() -> None:
            mode = read_mode(settings, APP.lower())
            doc, why = load_policy(settings.policy_document)
            evaluate(doc, "rollback.swap", APP, why)
            assert not mode.killed

        def new_gate() -> None:
            assert gate.check(Settings(), proposal).act

        timed(old_gating, 20), timed(new_gate, 20)   # warm both
        baseline, healer = timed(old_gating, n), timed(new_gate, n)
        print(f"1. gate decision per side effect ({n} decisions, Azurite on 127.0.0.1)")
        print(line("hand-written gating (before): 2 reads + policy", baseline))
        print(line("shared.gate.check: config + 3 rows, 1 read + policy", healer))

        def full_validation() -> None:
            config_check._cache.clear()
            assert config_check.problems(Settings()) == []
        full = timed(full_validation, 50)
        cached = timed(lambda: config_check.problems(Settings()), n)
        print("2. configuration validation (every HEALER_* setting and JSON document)")
        print(line("full validation (app start, a changed setting)", full))
        print(line("cached check on every gate call", cached))

        for mode, timeout in (("allow", 3), ("slow", 0.2)):
            os.environ["HEALER_POLICY"] = json.dumps({"version": 1, "rules": [
                {"action": "*", "resource": "*", "effect": "allow",
                 "hook": {"url": f"http://127.0.0.1:{hook_port}/hook/{mode}", "timeoutSeconds": timeout}}]})
            samples = timed(lambda: gate.check(Settings(), proposal), 20 if mode == "slow" else n // 3)
            print(("3. " if mode == "allow" else "   ") + line(f"with a hook that answers {mode}" if mode == "allow"
                                                              else "with a hook that hangs (0.2 s timeout → deny)",
                                                              samples).strip())
    finally:
        hook.stop()
        azurite.stop()


if __name__ == "__main__":
    main()
