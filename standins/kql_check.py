"""Offline KQL validation against the Application Insights table schemas (classic and workspace-based).

Runs `node tools/kql/validate.mjs` once per call for a whole batch of queries; the Kusto language service
(@kusto/language-service-next) does the parsing and semantic analysis against `tools/kql/schemas/<schema>.json`.

    diags = validate_kql({"cost": COST_QUERY}, "workspace")
    assert not errors(diags["cost"])
    assert_valid_kql({"cost": COST_QUERY}, "workspace")   # raises AssertionError listing every error
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools"
VALIDATOR = TOOLS / "kql" / "validate.mjs"
SCHEMAS = TOOLS / "kql" / "schemas"
SCHEMA_NAMES = ("classic", "workspace")
MAX_OUTPUT_BYTES = 16 * 1024 * 1024


class KqlToolingMissing(RuntimeError):
    """node or the npm packages the validator needs are not installed."""


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # "Error", "Warning", "Suggestion" or "Information" (Kusto.Language.DiagnosticSeverity)
    code: str  # e.g. KS142 unknown column, KS204 unknown table, KS211 unknown function, KS006 syntax
    message: str
    offset: int  # character offset in the query text
    length: int
    line: int  # 1-based
    column: int  # 1-based

    @property
    def is_error(self) -> bool:
        return self.severity == "Error"

    def __str__(self) -> str:
        return f"{self.line}:{self.column} {self.severity} {self.code}: {self.message}"


def errors(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if d.is_error]


def _node() -> str:
    node = shutil.which("node")
    if not node:
        raise KqlToolingMissing("node is not on PATH: install Node.js 20 to validate KQL (tools/kql/validate.mjs)")
    if not (TOOLS / "node_modules" / "@kusto" / "language-service-next").is_dir():
        raise KqlToolingMissing(
            "npm package @kusto/language-service-next is missing: run `npm ci` in tools/ (scripts/bootstrap.sh)")
    return node


def validate_kql(queries: dict[str, str], schema: str, *, analyzers: bool = False,
                 timeout: float = 120.0) -> dict[str, list[Diagnostic]]:
    """Validate each query (name -> KQL text) against `schema` ("classic" or "workspace").

    Returns name -> diagnostics (empty list: the query is valid). `analyzers=True` adds the language service's
    best-practice warnings. Raises KqlToolingMissing when node / the npm packages are absent, and
    RuntimeError when the validator itself fails.
    """
    if schema not in SCHEMA_NAMES and not (SCHEMAS / f"{schema}.json").is_file():
        raise ValueError(f"unknown KQL schema {schema!r}; expected one of {SCHEMA_NAMES}")
    if not queries:
        return {}
    node = _node()
    request = {"schema": schema, "analyzers": analyzers,
               "queries": [{"name": name, "text": text} for name, text in queries.items()]}
    proc = subprocess.run([node, str(VALIDATOR)], input=json.dumps(request).encode(), capture_output=True,
                          timeout=timeout, cwd=str(TOOLS))
    if proc.returncode == 3:
        raise KqlToolingMissing(proc.stderr.decode(errors="replace").strip())
    if proc.returncode != 0:
        raise RuntimeError(f"KQL validator failed ({proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace').strip()[-2000:]}")
    if len(proc.stdout) > MAX_OUTPUT_BYTES:
        raise RuntimeError("KQL validator output too large")
    results = json.loads(proc.stdout)["results"]
    return {name: [Diagnostic(**{k: d[k] for k in Diagnostic.__dataclass_fields__}) for d in results[name]]
            for name in queries}


def assert_valid_kql(queries: dict[str, str], schema: str) -> None:
    """Raise AssertionError listing every error diagnostic, per query, if any query is invalid."""
    problems = {name: errors(diags) for name, diags in validate_kql(queries, schema).items()}
    problems = {name: errs for name, errs in problems.items() if errs}
    if problems:
        lines = [f"KQL invalid against the {schema} schema:"]
        for name, errs in problems.items():
            lines.append(f"  {name}:")
            lines.extend(f"    {e}" for e in errs)
        raise AssertionError("\n".join(lines))
