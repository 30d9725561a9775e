"""Cold start: `import function_app` (what the Python worker does when the host starts) beside a one-function app
and beside the code before issue 12, in the same run; with and without Application Insights switched on.

Each figure is the median of `--runs` fresh interpreters: wall time of the import and modules it loaded. The
one-function app is the smallest Functions app there is (azure.functions + one HTTP route).

Run: `.venv/bin/python bench/coldstart.py [--runs 7] [--baseline COMMIT]`
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.storm import BASELINE, export  # noqa: E402
from standins.harness import REPO, scratch_dir  # noqa: E402

ONE_FUNCTION_APP = '''import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="hello", methods=["POST"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok", status_code=202)
'''
PROBE = ("import sys, time, json; n = len(sys.modules); t = time.perf_counter(); import function_app; "
         "print(json.dumps([time.perf_counter() - t, len(sys.modules) - n]))")
APP_INSIGHTS = {"APPLICATIONINSIGHTS_CONNECTION_STRING":
                "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9/",
                "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true", "OTEL_METRIC_EXPORT_INTERVAL": "3600000"}


def measure(code: Path, runs: int, env: dict[str, str] | None = None) -> tuple[float, int]:
    import os
    times, modules = [], 0
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PROBE], cwd=code, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONDONTWRITEBYTECODE": "", **(env or {})})
        if out.returncode:
            raise RuntimeError(out.stderr[-2000:])
        t, modules = json.loads(out.stdout.strip().splitlines()[-1])
        times.append(t)
    return statistics.median(times), modules


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", default=BASELINE)
    args = parser.parse_args()
    work = scratch_dir("healer-bench-cold-")
    one = work / "one"
    one.mkdir()
    (one / "function_app.py").write_text(ONE_FUNCTION_APP)
    base = export(args.baseline, work / "baseline")
    measure(REPO, 1), measure(base, 1)  # compile bytecode of both trees first: a deployed app ships it
    rows = {"one": measure(one, args.runs), "healer": measure(REPO, args.runs), "base": measure(base, args.runs),
            "healer_ai": measure(REPO, args.runs, APP_INSIGHTS), "base_ai": measure(base, args.runs, APP_INSIGHTS)}
    print(f"\ncold start: `import function_app`, median of {args.runs} fresh interpreters (baseline = commit "
          f"{args.baseline})\n")
    print(f"{'app':<52}{'time':>10}{'modules':>10}{'vs one-function app':>22}")
    for key, label in (("one", "one-function app (azure.functions + 1 route)"), ("healer", "Healer"),
                       ("base", "baseline Healer"), ("healer_ai", "Healer, App Insights on"),
                       ("base_ai", "baseline Healer, App Insights on")):
        t, n = rows[key]
        print(f"{label:<52}{t * 1000:>8.0f} ms{n:>10}{t / rows['one'][0]:>21.2f}x")
    ok = rows["healer"][0] <= 2 * rows["one"][0]
    print("\ncold start check:", "within 2x of a one-function app" if ok else "MORE than 2x a one-function app")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
