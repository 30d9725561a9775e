"""Budget periods in a tenant's IANA time zone (calendar month by default), DST-safe.

A period starts at local midnight on its first day. Local midnight is built with `fold=0`, which zoneinfo maps to
the earlier instant when midnight happens twice and to the instant the clocks jump when it does not exist, so the
start is always the first real instant of the day. All arithmetic is done on calendar dates, never by adding
hours, so a 23- or 25-hour day cannot shift a boundary.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Grain = Literal["month", "quarter", "year"]
GRAINS: tuple[str, ...] = ("month", "quarter", "year")
_MONTHS = {"month": 1, "quarter": 3, "year": 12}


class PeriodError(ValueError):
    pass


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name or len(name) > 64 or ".." in name or name.startswith("/"):
        raise PeriodError(f"invalid time zone {str(name)[:64]!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PeriodError(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class Period:
    key: str               # "2026-03" (month), "2026-Q1" (quarter), "2026" (year): stable, storable
    start: dt.datetime     # aware, in the tenant's zone
    end: dt.datetime       # exclusive: the next period's start

    @property
    def start_utc(self) -> dt.datetime:
        return self.start.astimezone(dt.UTC)

    @property
    def end_utc(self) -> dt.datetime:
        return self.end.astimezone(dt.UTC)

    def contains(self, when: dt.datetime) -> bool:
        return self.start_utc <= _aware(when).astimezone(dt.UTC) < self.end_utc

    def elapsed_fraction(self, now: dt.datetime) -> float:
        """Share of the period's real (UTC) duration that has passed, clamped to [0, 1]."""
        total = (self.end_utc - self.start_utc).total_seconds()
        done = (_aware(now).astimezone(dt.UTC) - self.start_utc).total_seconds()
        return min(1.0, max(0.0, done / total))


def _aware(when: dt.datetime) -> dt.datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise PeriodError("datetimes must be timezone-aware")
    return when


def _local_midnight(year: int, month: int, tz: ZoneInfo) -> dt.datetime:
    local = dt.datetime(year, month, 1, tzinfo=tz, fold=0)
    # Normalise through UTC so a non-existent midnight becomes the real instant the day starts.
    return local.astimezone(dt.UTC).astimezone(tz)


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


def period_at(now: dt.datetime, tz_name: str = "UTC", grain: str = "month") -> Period:
    """The budget period that contains `now` for a tenant in `tz_name`."""
    if grain not in _MONTHS:
        raise PeriodError(f"unknown period grain {grain!r}; use one of {', '.join(GRAINS)}")
    tz = zone(tz_name)
    local = _aware(now).astimezone(tz)
    step = _MONTHS[grain]
    first_month = ((local.month - 1) // step) * step + 1
    year, month = local.year, first_month
    start = _local_midnight(year, month, tz)
    if local < start:  # only possible inside a skipped midnight; belongs to the previous period
        year, month = _add_months(year, month, -step)
        start = _local_midnight(year, month, tz)
    end_year, end_month = _add_months(year, month, step)
    end = _local_midnight(end_year, end_month, tz)
    if grain == "month":
        key = f"{year:04d}-{month:02d}"
    elif grain == "quarter":
        key = f"{year:04d}-Q{(month - 1) // 3 + 1}"
    else:
        key = f"{year:04d}"
    return Period(key, start, end)


def linear_forecast(spend: float, period: Period, now: dt.datetime, min_elapsed: float = 0.02) -> float | None:
    """Straight-line spend at period end, or None (unknown) too early in the period to say."""
    f = period.elapsed_fraction(now)
    if f < min_elapsed:
        return None
    return spend / f
