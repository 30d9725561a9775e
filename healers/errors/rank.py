"""Rank groups: weighted count, spread and change against a 7-day baseline. Pure."""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable

from healers.errors.cluster import Group

NEW_AFTER_DEPLOY_BOOST = 4.0  # new, and first seen soon after a deployment reached production: ranks first
NEW_BOOST = 2.0
REGRESSED_BOOST = 1.5
REGRESSION_FACTOR = 2.0  # today above this multiple of the baseline's daily mean (and above its max)


@dataclass(frozen=True)
class Ranked:
    group: Group
    score: float
    change: str  # "new" | "regressed" | "steady"
    baseline_mean: float
    baseline_days: int
    reason: str
    deploy: str = ""  # "appeared 6 min after build 97 (...) reached production", when a deployment introduced it


def baseline_days(record: dict[str, Any] | None, day: dt.date, days: int) -> dict[str, int]:
    """Daily counts of the `days` days before `day` (never `day` itself, so re-runs see the same baseline)."""
    counts = (record or {}).get("days") or {}
    lo = day - dt.timedelta(days=days)
    out = {}
    for key, value in counts.items():
        try:
            d = dt.date.fromisoformat(key)
        except ValueError:
            continue
        if lo <= d < day and isinstance(value, int):
            out[key] = value
    return out


def change_of(today: int, history: dict[str, int], days: int) -> tuple[str, float, str]:
    if not history:
        return "new", 0.0, f"not seen in the previous {days} days"
    mean = sum(history.values()) / days  # absent days count as zero
    peak = max(history.values())
    if today > REGRESSION_FACTOR * mean and today > peak:
        return "regressed", mean, f"{today} today vs a {days}-day daily mean of {mean:.1f} (max {peak})"
    return "steady", mean, f"{today} today vs a {days}-day daily mean of {mean:.1f}"


def score(group: Group, change: str, after_deploy: bool = False) -> float:
    spread = (1 + 0.5 * math.log2(1 + len(group.operations))) * (1 + 0.5 * max(len(group.roles) - 1, 0))
    boost = NEW_BOOST if change == "new" else REGRESSED_BOOST if change == "regressed" else 1.0
    if after_deploy and change == "new":
        boost = NEW_AFTER_DEPLOY_BOOST
    return round(group.occurrences * spread * boost, 6)


def rank(groups: Iterable[Group], baselines: dict[str, dict[str, Any]], day: dt.date, days: int = 7,
         deploys: dict[str, str] | None = None) -> list[Ranked]:
    """Every group with its score, best first; ties broken by fingerprint (deterministic). `deploys`: fingerprint ->
    the sentence naming the deployment the group appeared after; a new group that appeared after a deployment ranks
    before every other group (NEW_AFTER_DEPLOY_BOOST on top of its score, and first in the order)."""
    out = []
    for g in groups:
        history = baseline_days(baselines.get(g.fingerprint), day, days)
        change, mean, why = change_of(g.occurrences, history, days)
        deploy = (deploys or {}).get(g.fingerprint, "") if change == "new" else ""
        out.append(Ranked(g, score(g, change, bool(deploy)), change, mean, len(history), why, deploy))
    out.sort(key=lambda r: (not r.deploy, -r.score, r.group.fingerprint))
    return out


def updated_baseline(record: dict[str, Any] | None, group: Group, day: dt.date, keep_days: int) -> dict[str, Any]:
    """The baseline record after counting `group` for `day` (idempotent: the day's count is set, not added)."""
    data = dict(record or {})
    counts = {k: v for k, v in (data.get("days") or {}).items()
              if _in_range(k, day - dt.timedelta(days=keep_days), day)}
    counts[day.isoformat()] = group.occurrences
    data.update({"days": dict(sorted(counts.items())), "title": group.title, "type": group.type,
                 "kind": group.kind, "template": group.template, "signature": group.signature[:1000]})
    return data


def _in_range(key: str, lo: dt.date, hi: dt.date) -> bool:
    try:
        d = dt.date.fromisoformat(key)
    except ValueError:
        return False
    return lo <= d <= hi
