"""`python -m drill [--only NAME,...]`: start the local stand-ins, run each healer's scenario, print timelines.

Exit status 0 only if every scenario did exactly what it expects.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

from standins.harness import scratch_dir
from standins.stack import LocalAzure

SCENARIOS = ["rollback", "errors", "replication", "replication_probes", "downshift"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="comma-separated scenario names (default: all): " + ", ".join(SCENARIOS))
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else SCENARIOS
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    workdir = scratch_dir("healer-drill-")
    t0 = time.monotonic()
    print(f"starting local stand-ins in {workdir} ...", flush=True)
    stack = LocalAzure.start(workdir)
    os.environ.update(stack.env())  # the drill's own "pipeline" and "operator" are Azure clients too
    failed: list[str] = []
    try:
        for name in names:
            try:
                timeline = importlib.import_module(f"drill.{name}").run(stack)
            except Exception as exc:  # a crashed scenario is a failed one; the others still run
                print(f"== {name} ==\n  result: FAILED: scenario crashed: {type(exc).__name__}: {str(exc)[:500]}",
                      flush=True)
                failed.append(name)
                continue
            print(timeline.render(), flush=True)
            if timeline.failures:
                failed.append(name)
    finally:
        stack.stop()
    print(f"\ndrill finished in {time.monotonic() - t0:.1f}s: "
          + ("all scenarios OK" if not failed else f"FAILED: {', '.join(failed)}"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
