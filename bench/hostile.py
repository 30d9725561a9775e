"""Hostile-input benchmarks, each printed beside a baseline measured in the same run.

1. Redaction (healers/errors/redact.py): the worst case found over adversarial and random texts at the piece cap
   (16 KiB) and the call cap (128 KiB), beside ordinary exception text of the same size, and beside the previous
   rule set (kept below, for comparison only) on the same inputs at the piece cap.
2. Templating (healers/errors/templates.py, `message_template`): worst case at its cap (4,096 characters per
   message), beside ordinary text of that size.
3. Stack parsing (healers/errors/stacks.py): worst case at its cap (16,000 characters) for raw stacks and for
   `details` JSON, beside ordinary stacks of that size and the previous line patterns (kept below) on the same input.
4. HTTP handling: p50/p99 of every HTTP function on inputs generated from shared/openapi.json (the fuzzing
   strategies of tests/hostile/fuzzing.py), with Azurite for the paths that enqueue; beside it the bounded JSON
   reader against a plain `json.loads` on the same bodies.

Run: `.venv/bin/python bench/hostile.py [--requests 2000]`
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import string
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from healers.errors import redact as redaction, stacks, templates  # noqa: E402
from shared import safejson  # noqa: E402

GOAL_MS = 100.0


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def fit(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def adversarial(size: int, seed: int = 7) -> dict[str, str]:
    r = random.Random(seed)
    units = ["a.", "a-", "a%", "eyJ-", "sk-", "xoxb-", "AKC", "a:", "//", " (", "(", ":line 1 ", "\\\"", "'",
             "password=", "Password=a ", "Authorization:", "_secret_key_", "key=", "@a.", "a@", "://", ":1",
             "-----BEGIN RSA PRIVATE KEY-----", "\"a\":\"", "=\"", "<<", "[[", "{{", " " * 8]
    out = {f"repeat {u.strip() or 'spaces'!r}": fit(u, size) for u in units}
    out["random printable"] = "".join(r.choice(string.printable) for _ in range(size))
    out["random base64"] = "".join(r.choice(string.ascii_letters + string.digits + "+/") for _ in range(size))
    out["one long line of words"] = " ".join(r.choice(["user", "id", "=", "42", "token", "x", "@", ".com"])
                                             for _ in range(size // 3))[:size]
    return out


def ordinary_exception_text(size: int) -> str:
    line = ("   at Shop.Api.Orders.OrderService.<PlaceAsync>d__7.MoveNext() in /src/Orders/OrderService.cs:line 88\n"
            "System.InvalidOperationException: Sequence contains no elements (order 4711, tenant acme)\n")
    return fit(line, size)


# ---------------------------------------------------------------------------------------------- previous rule set
# The redaction rules as they were before issue 10, kept here only to measure them beside the current ones.
_OLD_RULES = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
    re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/@:]*:[^\s/@]+@"),
    re.compile(r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd|ClientSecret|Client_Secret|"
               r"ApiKey|Api_Key|AccessKey|Access_Key|Secret|Token|Sig)\s*=\s*(\"[^\"]*\"|'[^']*'|"
               r"[^;&\s\"',]+(?:[ \t]+[^;&\s\"',=]+)*(?=;)|[^;&\s\"',]+)"),
    re.compile(r"(?i)\b(Bearer|Basic|Token|SharedAccessSignature)\s+[A-Za-z0-9\-._~+/]{8,}=*"),
    re.compile(r"(?i)\b(Authorization|Proxy-Authorization|X-Api-Key|Api-Key|Ocp-Apim-Subscription-Key"
               r"|X-Functions-Key)\s*[:=]\s*[^\r\n,;]+"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"),
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{20,}"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"(?i)(\"?\b(?:password|passwd|pwd|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?token|"
               r"refresh[_-]?token|auth[_-]?token|token|private[_-]?key|connection[_-]?string|sas)\b\"?\s*[:=]\s*)"
               r"(\"[^\"]*\"|'[^']*'|[^\s,;&\"'}]+)"),
    re.compile(r"(?<![\w.+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"),
    re.compile(r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9+/]*[0-9])(?=[A-Za-z0-9+/]*[A-Z])[A-Za-z0-9+/]{40,}={0,2}"
               r"(?![A-Za-z0-9+/=])"),
]


def old_redact(text: str) -> str:
    for pattern in _OLD_RULES:
        text = pattern.sub("<redacted>", text)
    return text


_OLD_STACK_LINES = [
    re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<fn>.+?)\s*$'),
    re.compile(r"^\s*at (?P<fn>[\w$.<>/]+)\((?P<file>[^:)]*)(?::(?P<line>\d+))?\)\s*$"),
    re.compile(r"^\s*at (?P<fn>[^\s(][^(]*\([^)]*\))(?: in (?P<file>.+?):line (?P<line>\d+))?\s*$"),
    re.compile(r"^\s*at (?P<fn>.+?) \((?P<file>.+?)(?::(?P<line>\d+))?(?::\d+)?\)\s*$"),
    re.compile(r"^\s*at (?P<file>(?:/|[A-Za-z]:\\|node:|file://|webpack:)[^\s]+?)(?::(?P<line>\d+))?(?::\d+)?\s*$"),
]


def old_parse(stack: str) -> None:
    for line in stack[:stacks.MAX_STACK_CHARS].splitlines():
        for pattern in _OLD_STACK_LINES:
            if pattern.match(line):
                break


# ---------------------------------------------------------------------------------------------- sections

def worst(fn: Callable[[str], object], inputs: dict[str, str]) -> tuple[float, str]:
    return max((timed(lambda: fn(text)), name) for name, text in inputs.items())


def section_redaction() -> None:
    redaction.redact("warm-up AKIAIOSFODNN7EXAMPLE")
    print("1. Redaction (goal: worst case <= 100 ms per input at the cap)")
    for cap in (redaction.PIECE_CHARS, redaction.MAX_CHARS):
        inputs = adversarial(cap)
        ms_new, name = worst(redaction.redact, inputs)
        ordinary = timed(lambda: redaction.redact(ordinary_exception_text(cap)))
        line = f"   cap {cap // 1024:>4} KiB  Healer worst {ms_new:8.1f} ms ({name}); ordinary text {ordinary:7.1f} ms"
        if cap == redaction.PIECE_CHARS:
            ms_old, old_name = worst(old_redact, inputs)
            line += f"; previous rules worst {ms_old:8.1f} ms ({old_name})"
        print(line + ("   OK" if ms_new <= GOAL_MS else "   over goal"))


def section_templating() -> None:
    cap = templates.MAX_MESSAGE_CHARS
    inputs = adversarial(cap)
    ms_new, name = worst(templates.message_template, inputs)
    ordinary = timed(lambda: templates.message_template(ordinary_exception_text(cap)))
    print(f"2. Templating, cap {cap} characters per message: worst {ms_new:8.1f} ms ({name}); ordinary text "
          f"{ordinary:6.1f} ms" + ("   OK" if ms_new <= GOAL_MS else "   over goal"))


def section_stacks() -> None:
    cap = stacks.MAX_STACK_CHARS
    raw = {name: text for name, text in adversarial(cap).items()}
    raw |= {"node ' (' line": "    at " + fit(" (", cap), "python trailing spaces": '  File "x.py", line 1, in a'
            + " " * cap + "b", "dotnet '(' line": "   at " + fit("(", cap), "node bare ':1'": "    at /" + fit(":1", cap),
            "16 long node lines": ("    at a (" + fit("b:1", 990) + "\n") * 16}
    ms_new, name = worst(stacks.parse_text, raw)
    ms_old, old_name = worst(old_parse, raw)
    ordinary = timed(lambda: stacks.parse_text(fit("   at Shop.Api.Orders.OrderService.PlaceAsync() in "
                                                   "/src/Orders/OrderService.cs:line 88\n", cap)))
    details = {name: json.dumps([{"rawStack": text}])[:cap * 4] for name, text in raw.items()}
    details["cut parsedStack"] = json.dumps([{"parsedStack": [{"method": "A.B" * 50, "fileName": "/x.cs", "line": 1}]
                                              * 2000}])[:cap * 4]
    details["deep"] = "[" * cap + "]" * cap
    ms_details, details_name = worst(stacks.parse_details, details)
    print(f"3. Stack parsing, cap {cap} characters (1,000 per line): worst {ms_new:8.1f} ms ({name}); "
          f"details JSON worst {ms_details:6.1f} ms ({details_name}); ordinary stack {ordinary:5.1f} ms; previous line "
          f"patterns worst {ms_old:8.1f} ms ({old_name})" + ("   OK" if max(ms_new, ms_details) <= GOAL_MS else
                                                               "   over goal"))


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def section_http(requests: int) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    from standins.harness import scratch_dir
    from standins.stack import LocalAzure
    from tests.hostile import fuzzing

    stack = LocalAzure.start(scratch_dir("healer-bench-hostile-"))
    try:
        os.environ.update({"AzureWebJobsStorage": stack.azurite.connection_string,
                           "HEALER_TABLE_PREFIX": "bench" + uuid.uuid4().hex[:8],
                           "HEALER_REPLICATION_REGISTRIES": json.dumps({"myreg": ["eastus"]})})
        import function_app
        functions = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}
        ops = [(p, m, o) for p, ms in fuzzing.SPEC["paths"].items() for m, o in ms.items()]
        times: list[float] = []
        bodies: list[bytes] = []
        per_op = max(1, requests // len(ops))
        for path, method, op in ops:
            fn = functions[op["operationId"]]

            @settings(max_examples=per_op, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(fuzzing.request_for(path, method, op))
            def run(req) -> None:
                t = time.perf_counter()
                resp = fn(req)
                times.append(time.perf_counter() - t)
                if resp.status_code >= 500:
                    raise AssertionError(f"{method.upper()} {path} answered {resp.status_code}")
                if req.get_body():
                    bodies.append(req.get_body())
            run()
        reader = [timed(lambda b=b: _read(b)) for b in bodies]
        plain = [timed(lambda b=b: _plain(b)) for b in bodies]
        p99 = pct(times, 99) * 1000
        print(f"4. HTTP handling of {len(times)} generated requests over {len(ops)} operations (Azurite behind "
              f"the enqueueing ones): p50 {pct(times, 50) * 1000:6.2f} ms, p99 {p99:6.2f} ms (goal < 50 ms)"
              + ("   OK" if p99 < 50 else "   over goal"))
        print(f"   JSON reader on the {len(bodies)} bodies: safejson p50 {pct(reader, 50):6.3f} ms, p99 "
              f"{pct(reader, 99):6.3f} ms; plain json.loads p50 {pct(plain, 50):6.3f} ms, p99 {pct(plain, 99):6.3f} ms")
    finally:
        stack.stop()


def _read(body: bytes) -> None:
    try:
        safejson.loads(body, 256 * 1024)
    except ValueError:
        pass


def _plain(body: bytes) -> None:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    section_redaction()
    section_templating()
    section_stacks()
    section_http(args.requests)


if __name__ == "__main__":
    main()
