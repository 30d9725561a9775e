"""Effect of a merged fix: the group's rate before and after the deployment that shipped the merge. Pure.

The deployment that shipped a merge is the first one to reach the environment after the merge. The rate before is
the mean hourly count over the hours before that deployment (in the window, else the baseline's daily counts over
24), the rate after the mean over the hours since. A fall of at least FIXED_FALL marks the group fixed; anything
less is a regression, drafted again as before. A merge with no deployment after it yet is not judged.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from collections.abc import Iterable

from healers.errors.versions import Deployment

FIXED_FALL = 0.8
MIN_HOURS_AFTER = 1.0  # judge only after at least an hour of traffic on the new deployment


@dataclass(frozen=True)
class Effect:
    verdict: str  # "fixed" | "regression" | "not deployed" | "too early"
    before: float  # occurrences per hour
    after: float
    deployment: Deployment | None

    @property
    def fall(self) -> float:
        return 1.0 - self.after / self.before if self.before > 0 else 0.0

    def sentence(self) -> str:
        if self.deployment is None:
            if self.verdict == "regression":
                return "no deployment history to judge the fix by: it recurred"
            return "merged, but no deployment has reached production since: not judged yet"
        where = f"{self.deployment.label} at {self.deployment.at:%Y-%m-%d %H:%M} UTC"
        if self.verdict == "too early":
            return f"shipped by {where}: less than an hour of traffic since, not judged yet"
        return (f"rate {self.before:.1f}/h before {where}, {self.after:.1f}/h after "
                f"({-100 * self.fall:+.0f} %): {'fixed' if self.verdict == 'fixed' else 'not fixed'}")


def shipping_deployment(merged_at: dt.datetime, deployments: Iterable[Deployment],
                        environment: str = "") -> Deployment | None:
    after = [d for d in deployments if d.at >= merged_at and (not environment or d.environment == environment)]
    return min(after, key=lambda d: d.at, default=None)


def _hour(key: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(key).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def judge(merged_at: dt.datetime, deployments: Iterable[Deployment], hourly: dict[str, int],
          window_start: dt.datetime, window_end: dt.datetime, baseline: dict[str, int],
          environment: str = "") -> Effect:
    """The verdict on a merged fix from the window's hourly counts and the baseline's daily counts."""
    d = shipping_deployment(merged_at, deployments, environment)
    if d is None:
        return Effect("not deployed", 0.0, 0.0, None)
    hours_after = (window_end - max(d.at, window_start)).total_seconds() / 3600
    if hours_after < MIN_HOURS_AFTER:
        return Effect("too early", 0.0, 0.0, d)
    counts = [(h, n) for k, n in hourly.items() if (h := _hour(k)) is not None]
    after = sum(n for h, n in counts if h >= d.at) / hours_after
    hours_before = (d.at - window_start).total_seconds() / 3600
    if hours_before >= MIN_HOURS_AFTER:
        before = sum(n for h, n in counts if h + dt.timedelta(hours=1) <= d.at) / hours_before
    else:
        days = [n for day, n in baseline.items() if day < d.at.date().isoformat()]
        before = (sum(days) / len(days) / 24) if days else 0.0
    if before <= 0:
        return Effect("regression", before, after, d)
    return Effect("fixed" if 1.0 - after / before >= FIXED_FALL else "regression", before, after, d)
