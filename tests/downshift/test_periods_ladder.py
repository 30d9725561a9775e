"""Budget periods in tenant time zones (DST, month end) and approved ladders."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healers.downshift.ladder import Ladder, LadderError
from healers.downshift.periods import PeriodError, linear_forecast, period_at

UTC = dt.timezone.utc


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("now, tz, key, start_utc, end_utc", [
    # Auckland is UTC+13 (NZDT) in March: April starts at 2025-03-31T11:00Z.
    (utc(2025, 3, 31, 10, 59), "Pacific/Auckland", "2025-03", utc(2025, 2, 28, 11), utc(2025, 3, 31, 11)),
    (utc(2025, 3, 31, 11, 0), "Pacific/Auckland", "2025-04", utc(2025, 3, 31, 11), utc(2025, 4, 30, 12)),
    # NZ DST ends 2025-04-06 (+13 → +12): April is 30 days but 721 hours long; May starts at 12:00Z.
    (utc(2025, 4, 6, 14), "Pacific/Auckland", "2025-04", utc(2025, 3, 31, 11), utc(2025, 4, 30, 12)),
    # NZ DST starts 2025-09-28 (+12 → +13): October starts at 11:00Z.
    (utc(2025, 9, 30, 11, 30), "Pacific/Auckland", "2025-10", utc(2025, 9, 30, 11), utc(2025, 10, 31, 11)),
    # Los Angeles: PST (−8) in February, PDT (−7) from 2025-03-09; March is 743 hours long.
    (utc(2025, 3, 1, 7, 59), "America/Los_Angeles", "2025-02", utc(2025, 2, 1, 8), utc(2025, 3, 1, 8)),
    (utc(2025, 3, 15), "America/Los_Angeles", "2025-03", utc(2025, 3, 1, 8), utc(2025, 4, 1, 7)),
    # PDT ends 2025-11-02: November starts in PDT (07:00Z), December in PST (08:00Z).
    (utc(2025, 11, 2, 9, 30), "America/Los_Angeles", "2025-11", utc(2025, 11, 1, 7), utc(2025, 12, 1, 8)),
    # Year end: 2025-12-31T23:30 in LA is already 2026 in UTC but still December locally.
    (utc(2026, 1, 1, 7, 30), "America/Los_Angeles", "2025-12", utc(2025, 12, 1, 8), utc(2026, 1, 1, 8)),
    (utc(2026, 1, 1, 8, 0), "America/Los_Angeles", "2026-01", utc(2026, 1, 1, 8), utc(2026, 2, 1, 8)),
    (utc(2025, 12, 31, 11, 0), "Pacific/Auckland", "2026-01", utc(2025, 12, 31, 11), utc(2026, 1, 31, 11)),
    # Leap February.
    (utc(2024, 2, 29, 23), "UTC", "2024-02", utc(2024, 2, 1), utc(2024, 3, 1)),
])
def test_month_periods(now, tz, key, start_utc, end_utc):
    p = period_at(now, tz)
    assert (p.key, p.start_utc, p.end_utc) == (key, start_utc, end_utc)
    assert p.start.hour == 0 and p.start.day == 1 and p.contains(now)


def test_the_same_instant_is_in_different_months_per_tenant():
    now = utc(2025, 3, 31, 12)  # 01:00 on 1 April in Auckland, 05:00 on 31 March in Los Angeles
    assert period_at(now, "Pacific/Auckland").key == "2025-04"
    assert period_at(now, "America/Los_Angeles").key == "2025-03"
    assert period_at(now, "UTC").key == "2025-03"


def test_midnight_that_does_not_exist_starts_the_period_when_clocks_jump():
    # Paraguay moved its clocks 00:00 → 01:00 (−04 → −03) on 2017-10-01: October starts at 01:00 local = 04:00Z.
    october = period_at(utc(2017, 10, 15), "America/Asuncion")
    assert october.key == "2017-10" and october.start_utc == utc(2017, 10, 1, 4)
    assert (october.start.hour, october.start.utcoffset()) == (1, dt.timedelta(hours=-3))
    assert period_at(utc(2017, 10, 1, 3, 59, 59), "America/Asuncion").key == "2017-09"
    assert period_at(utc(2017, 9, 15), "America/Asuncion").end_utc == october.start_utc


@pytest.mark.parametrize("grain, now, key", [
    ("quarter", utc(2025, 6, 30, 12), "2025-Q2"), ("quarter", utc(2025, 6, 30, 12, 30), "2025-Q2"),
    ("year", utc(2025, 12, 31, 11), "2026"),
])
def test_quarter_and_year(grain, now, key):
    tz = "Pacific/Auckland" if grain == "year" else "UTC"
    assert period_at(now, tz, grain).key == key


def test_bad_zone_and_naive_times_are_refused():
    with pytest.raises(PeriodError):
        period_at(utc(2025, 1, 1), "Mars/Olympus_Mons")
    with pytest.raises(PeriodError):
        period_at(dt.datetime(2025, 1, 1), "UTC")
    with pytest.raises(PeriodError):
        period_at(utc(2025, 1, 1), "UTC", "fortnight")


@settings(max_examples=150, deadline=None)
@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC)),
       st.sampled_from(["Pacific/Auckland", "America/Los_Angeles", "Australia/Lord_Howe", "Europe/London",
                        "America/Santiago", "Asia/Kolkata", "Pacific/Chatham", "UTC"]),
       st.sampled_from(["month", "quarter", "year"]))
def test_periods_tile_time(now, tz, grain):
    p = period_at(now, tz, grain)
    assert p.start_utc <= now < p.end_utc
    nxt = period_at(p.end_utc, tz, grain)
    assert nxt.start_utc == p.end_utc and nxt.key > p.key
    prev = period_at(p.start_utc - dt.timedelta(microseconds=1), tz, grain)
    assert prev.end_utc == p.start_utc and prev.key < p.key
    assert 0.0 <= p.elapsed_fraction(now) <= 1.0


def test_linear_forecast_is_unknown_early_in_the_period():
    p = period_at(utc(2025, 4, 1, 0, 30), "UTC")
    assert linear_forecast(5.0, p, utc(2025, 4, 1, 0, 30)) is None
    assert linear_forecast(50.0, p, utc(2025, 4, 16)) == pytest.approx(100.0)


# ---------------------------------------------------------------------------------------------- ladders

LADDER = Ladder(("gpt-4.1", "gpt-4o", "gpt-4o-mini", "gpt-35-turbo"), floor="gpt-4o-mini")


def test_ladder_steps_and_floor():
    assert LADDER.primary == "gpt-4.1"
    assert LADDER.step_down("gpt-4.1") == "gpt-4o"
    assert LADDER.step_down("gpt-4o") == "gpt-4o-mini"
    assert LADDER.step_down("gpt-4o-mini") is None          # the floor
    assert LADDER.step_up("gpt-4o-mini") == "gpt-4o"
    assert LADDER.step_up("gpt-4o", toward="gpt-4o") is None  # never past the restore target
    assert LADDER.step_up("gpt-4.1") is None
    assert not LADDER.allowed("gpt-35-turbo") and not LADDER.allowed("gpt-5") and not LADDER.allowed(None)
    with pytest.raises(LadderError):
        LADDER.step_down("gpt-35-turbo")


@pytest.mark.parametrize("raw", [[], {"models": ["a"], "floor": "b"}, ["a", "a"], ["bad model!"], "gpt-4o",
                                 {"models": "gpt-4o"}, [f"m{i}" for i in range(40)]])
def test_invalid_ladders(raw):
    with pytest.raises(LadderError):
        Ladder.from_config(raw)


def test_ladder_from_config():
    assert Ladder.from_config(["gpt-4o", "gpt-4o-mini"]).floor == "gpt-4o-mini"
    ladder = Ladder.from_config({"models": ["gpt-4o", "gpt-4o-mini", "gpt-35-turbo"], "floor": "gpt-4o-mini"})
    assert Ladder.from_config(ladder.to_config()) == ladder
