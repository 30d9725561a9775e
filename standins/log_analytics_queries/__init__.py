"""Evaluators for the Log Analytics query stand-in (`python -m standins.log_analytics`).

A stand-in cannot run KQL. Each healer query starts with a marker comment line

    // healer-query: <name>

and the stand-in answers it with the Python evaluator registered under <name>, which computes the same
aggregation the KQL would over the raw rows seeded through the stand-in's `/_standin/` control API,
restricted to the request's `timespan`.

To add one, drop a module in this package (every module here is imported when the stand-in starts) or pass
`--evaluators some.module` to the stand-in:

    from standins.log_analytics_queries import QueryContext, Table, register

    @register("cost-by-tenant")
    def cost_by_tenant(ctx: QueryContext) -> Table:
        table = ctx.table_in_query("customMetrics", "AppMetrics")
        ...
        return Table(columns=[("tenant", "string"), ("cost", "real")], rows=[...])

Raise `QueryError(code, message)` to answer 400 like the real service does for a bad query.
"""
from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Union

COLUMN_TYPES = frozenset({"string", "int", "long", "real", "bool", "datetime", "timespan", "dynamic", "guid",
                          "decimal"})


@dataclass
class Table:
    """One result table, as the REST API returns it: columns are (name, Kusto type) pairs."""
    columns: list[tuple[str, str]]
    rows: list[list[Any]]
    name: str = "PrimaryResult"

    def __post_init__(self) -> None:
        for col, typ in self.columns:
            if typ not in COLUMN_TYPES:
                raise ValueError(f"column {col!r}: unknown Kusto type {typ!r}")
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"row {row!r} does not match columns {self.columns!r}")


class QueryError(Exception):
    """An error the evaluator wants answered as a failed query (HTTP 400 by default)."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class QueryContext:
    name: str  # the <name> of the `// healer-query: <name>` marker
    query: str  # the full KQL text as received
    window: tuple[dt.datetime | None, dt.datetime | None]  # [start, end) from the request timespan; None = open
    now: dt.datetime
    workspace_id: str | None = None  # set for POST /v1/workspaces/{id}/query
    resource_id: str | None = None  # set for POST /v1/{resourceId}/query
    additional_workspaces: list[str] = field(default_factory=list)
    _rows: Callable[[str], list[dict[str, Any]]] = field(default=lambda table: [], repr=False)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Seeded rows of `table` whose time column (timestamp / TimeGenerated, a datetime) is in the window."""
        return self._rows(table)

    def references(self, table: str) -> bool:
        """Whether the KQL text (comments removed) names `table` as a word."""
        code = re.sub(r"//[^\n]*", "", self.query)
        return re.search(rf"(?<![\w.]){re.escape(table)}(?![\w])", code) is not None

    def table_in_query(self, *candidates: str) -> str:
        """The first of `candidates` the query names: lets one evaluator serve classic and workspace tables."""
        for table in candidates:
            if self.references(table):
                return table
        raise QueryError("BadArgumentError", f"query {self.name!r} names none of the tables {list(candidates)}")


Evaluator = Callable[[QueryContext], Union[Table, list[Table]]]
EVALUATORS: dict[str, Evaluator] = {}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def register(name: str) -> Callable[[Evaluator], Evaluator]:
    if not NAME_RE.match(name):
        raise ValueError(f"bad evaluator name {name!r}")

    def mark(fn: Evaluator) -> Evaluator:
        existing = EVALUATORS.get(name)
        if existing is not None and existing is not fn:
            raise ValueError(f"evaluator {name!r} registered twice")
        EVALUATORS[name] = fn
        return fn
    return mark


def load_all(extra_modules: list[str] | tuple[str, ...] = ()) -> dict[str, Evaluator]:
    """Import every module of this package, then `extra_modules`; return the registry."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    for module in extra_modules:
        if module:
            importlib.import_module(module)
    return EVALUATORS
