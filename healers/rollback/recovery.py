"""Prove the recovery after a rollback swap (pure): judge re-check results, plan the next re-check.

"Production runs the good build" is not "the incident is over". After the swap, queued re-checks (never a sleeping
function) look at three things, each optional per app (`recovery` in HEALER_ROLLBACK_TARGETS):

* **instances** — every production instance (ARM `sites/instances`) serves the good build: the app's instance
  health URL is asked once per instance with the `ARRAffinity` cookie set to the instance id, and must answer with
  that instance id and the good build (an answer from another instance proves nothing);
* **health URLs** — each answers the expected status (and contains the expected text);
* **the alert's own signal** — the metric (or the log query) over the rule's window, from the swap on, no longer
  breaches the rule's threshold; a full window after the swap is needed before it can count as recovered.

Recovered when every configured check passes; still failing at the deadline → escalate with the evidence.
"""
from __future__ import annotations

import datetime as dt
import random
from typing import Literal

from pydantic import BaseModel, Field

from healers.rollback.signal import breaches

Status = Literal["proven", "waiting", "failed"]


class RecoveryOptions(BaseModel):
    """Per-app `recovery` options (all optional; an empty object re-checks the alert's signal only)."""
    minutes: float = Field(15, gt=0, le=24 * 60)                # deadline after the swap
    recheck_seconds: float = Field(30, alias="recheckSeconds", gt=0, le=3600)
    signal: bool = True
    health_checks: list[HealthCheck] = Field(default_factory=list, alias="healthChecks", max_length=10)
    instance_check: InstanceCheck | None = Field(None, alias="instanceCheck")
    model_config = {"populate_by_name": True, "extra": "forbid"}


class HealthCheck(BaseModel):
    url: str = Field(max_length=2000, pattern=r"^https?://")
    expect_status: int = Field(200, alias="expectStatus", ge=100, le=599)
    body_contains: str | None = Field(None, alias="bodyContains", max_length=500)
    model_config = {"populate_by_name": True, "extra": "forbid"}


class InstanceCheck(BaseModel):
    url: str = Field(max_length=2000, pattern=r"^https?://")
    build_field: str = Field("build", alias="buildField", max_length=100)
    instance_field: str = Field("instance", alias="instanceField", max_length=100)
    model_config = {"populate_by_name": True, "extra": "forbid"}


RecoveryOptions.model_rebuild()


class Point(BaseModel):
    at: dt.datetime
    value: float | None


class SignalReading(BaseModel):
    """The signal's values (one criterion) before the alert and since the swap."""
    name: str
    operator: str
    threshold: float
    aggregation: str
    before: list[Point] = Field(default_factory=list)
    after: list[Point] = Field(default_factory=list)
    error: str | None = None


class Results(BaseModel):
    instances: list[str] = Field(default_factory=list)       # one line per instance: "ok ..." or the problem
    instances_ok: bool | None = None                         # None: not configured
    health: list[str] = Field(default_factory=list)
    health_ok: bool | None = None
    signal: list[SignalReading] = Field(default_factory=list)


class Verdict(BaseModel):
    status: Status
    reason: str


def aggregate(values: list[float], aggregation: str) -> float | None:
    if not values:
        return None
    agg = aggregation.lower()
    if agg in ("total", "count"):
        return sum(values)
    if agg == "maximum":
        return max(values)
    if agg == "minimum":
        return min(values)
    return sum(values) / len(values)


def signal_state(r: SignalReading, *, swap_at: dt.datetime, now: dt.datetime, window: dt.timedelta) -> tuple[bool | None, str]:
    """(recovered?, what was seen). None: cannot tell yet (no full window since the swap, or no data)."""
    if r.error:
        return None, f"{r.name}: unreadable ({r.error})"
    lower = max(swap_at, now - window)  # a one-minute point counts when its minute overlaps [lower, now]
    last = [p.value for p in r.after if p.value is not None and p.at + dt.timedelta(minutes=1) > lower]
    value = aggregate(last, r.aggregation)
    shown = "no data" if value is None else f"{r.aggregation.lower()} {value:g}"
    if value is not None and breaches(r.operator, value, r.threshold):
        return False, f"{r.name} still {shown} ({r.operator} {r.threshold:g}) in the last window"
    if now - swap_at < window:
        return None, f"{r.name} {shown} so far; a full {int(window.total_seconds() // 60)} min window since the " \
                     f"swap is needed"
    if value is None:
        return None, f"{r.name}: no data since the swap"
    return True, f"{r.name} {shown}, no longer {r.operator} {r.threshold:g}"


def judge(results: Results, *, swap_at: dt.datetime, now: dt.datetime, deadline: dt.datetime,
          window: dt.timedelta) -> Verdict:
    parts, states = [], []
    if results.instances_ok is not None:
        states.append(results.instances_ok)
        parts.append("instances: " + ("all serve the good build" if results.instances_ok
                                      else "; ".join(x for x in results.instances if not x.startswith("ok"))[:400]))
    if results.health_ok is not None:
        states.append(results.health_ok)
        parts.append("health: " + ("all as expected" if results.health_ok
                                   else "; ".join(x for x in results.health if not x.startswith("ok"))[:400]))
    for reading in results.signal:
        ok, seen = signal_state(reading, swap_at=swap_at, now=now, window=window)
        states.append(ok)
        parts.append(seen)
    summary = "; ".join(parts) or "nothing to check"
    if all(s is True for s in states):
        return Verdict(status="proven", reason=f"recovery proven: {summary}")
    if now >= deadline:
        took = int((now - swap_at).total_seconds())
        return Verdict(status="failed", reason=f"not recovered {took // 60} min {took % 60} s after the swap: "
                                               f"{summary}")
    return Verdict(status="waiting", reason=summary)


def next_delay(attempt: int, base: float, *, deadline_in: float, cap: float = 300.0) -> float:
    """Backoff between re-checks (jittered, growing, capped), never past the deadline (plus one second)."""
    delay = min(cap, base * 2 ** min(attempt, 10)) * (0.8 + random.random() * 0.4)
    return max(1.0, min(delay, max(deadline_in, 0) + 1.0))
