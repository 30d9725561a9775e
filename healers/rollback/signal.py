"""The alert's own signal, from the common schema's `alertContext` (bounded): what fired, on what condition.

Used twice: its dimensions feed the dependency-outage hint before any swap, and its condition is re-evaluated
after a swap to prove the recovery (`verify.py`). Parsing is defensive: anything malformed yields no signal, never
an error (the alert itself was already validated by `shared.alerts`).
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field

OPERATORS = ("GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual", "Equals")
_DURATION = re.compile(r"^PT(?:(\d{1,3})H)?(?:(\d{1,4})M)?$|^P(\d{1,2})D$")


class Criterion(BaseModel):
    metric: str | None = Field(None, max_length=200)         # metric alerts
    namespace: str | None = Field(None, max_length=200)
    aggregation: str = Field("Average", max_length=20)
    query: str | None = Field(None, max_length=10000)         # log alerts: the rule's query
    measure: str | None = Field(None, max_length=200)         # log alerts: metricMeasureColumn (None: row count)
    operator: str = "GreaterThan"
    threshold: float
    value: float | None = None                                # the value that fired
    dimensions: list[tuple[str, str]] = Field(default_factory=list, max_length=20)


class Signal(BaseModel):
    kind: Literal["metric", "log", "other"] = "other"
    window_minutes: int = 5
    criteria: list[Criterion] = Field(default_factory=list, max_length=5)

    @property
    def dimensions(self) -> list[tuple[str, str]]:
        return [d for c in self.criteria for d in c.dimensions]


def window_minutes(text: Any, default: int = 5) -> int:
    m = _DURATION.match(text) if isinstance(text, str) else None
    if not m:
        return default
    h, mi, d = (int(x or 0) for x in m.groups())
    return max(1, min(d * 1440 + h * 60 + mi, 2 * 1440))


def _dims(raw: Any) -> list[tuple[str, str]]:
    out = []
    for d in raw if isinstance(raw, list) else []:
        if isinstance(d, dict) and isinstance(d.get("name"), str):
            out.append((d["name"][:100], str(d.get("value", ""))[:200]))
    return out[:20]


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_signal(body: Any) -> Signal:
    """The signal of a common-schema alert body; `Signal()` (kind other) when there is none Healer understands."""
    try:
        ctx = body["data"]["alertContext"]
        condition = ctx["condition"]
        all_of = condition["allOf"]
    except (KeyError, TypeError):
        return Signal()
    if not isinstance(all_of, list):
        return Signal()
    criteria = []
    for raw in all_of[:5]:
        if not isinstance(raw, dict):
            continue
        threshold, operator = _number(raw.get("threshold")), raw.get("operator")
        if threshold is None or operator not in OPERATORS:
            continue
        query = raw.get("searchQuery")
        criteria.append(Criterion(
            metric=str(raw["metricName"])[:200] if isinstance(raw.get("metricName"), str) else None,
            namespace=str(raw.get("metricNamespace") or "")[:200] or None,
            aggregation=str(raw.get("timeAggregation") or "Average")[:20],
            query=query[:10000] if isinstance(query, str) else None,
            measure=str(raw["metricMeasureColumn"])[:200] if isinstance(raw.get("metricMeasureColumn"), str) else None,
            operator=operator, threshold=threshold, value=_number(raw.get("metricValue")),
            dimensions=_dims(raw.get("dimensions"))))
    kind = "log" if criteria and all(c.query for c in criteria) else \
        "metric" if criteria and all(c.metric for c in criteria) else "other"
    return Signal(kind=kind, window_minutes=window_minutes(condition.get("windowSize")), criteria=criteria)


def breaches(operator: str, value: float, threshold: float) -> bool:
    return {"GreaterThan": value > threshold, "GreaterThanOrEqual": value >= threshold,
            "LessThan": value < threshold, "LessThanOrEqual": value <= threshold,
            "Equals": value == threshold}[operator]
