"""Forecast warnings: one per tenant per period and threshold, before the breach (healers.downshift.warn)."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healers.downshift import warn
from healers.downshift.core import DownshiftPolicy, DownshiftState, SpendObservation
from healers.downshift.ladder import Ladder
from healers.downshift.periods import period_at
from tests.downshift.test_core_properties import SETTINGS
from tests.downshift.test_shell import tick
from tests.downshift.test_shell_env import Clock, cost_rows, downshift_env, downshift_servers, drain, records  # noqa: F401

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
LADDER = Ladder(("gpt-4o", "gpt-4o-mini"), "gpt-4o-mini")


def obs(spend: float, forecast: float, at: dt.datetime = T0) -> SpendObservation:
    return SpendObservation(spend, 100.0, forecast, at - dt.timedelta(minutes=1), period_at(at).key)


def test_warns_once_per_threshold_per_period_with_the_day_it_is_reached():
    policy = DownshiftPolicy(LADDER, block=True)
    s = DownshiftState(app="a", tenant="acme")
    # $40 spent by March 10 12:00, forecast $160 at month end: $120 over 21.5 days = $5.58/day, so $40 more (80 %)
    # takes 7.2 days (the 17th) and $60 more (100 %) 10.75 days (the 21st).
    found, s = warn.forecast_warnings(obs(40.0, 160.0), s, policy, T0)
    assert [(w.threshold, w.reaches_on.day) for w in found] == [("downshift", 17), ("block", 21)]
    assert "reaches 100% of its budget" in found[1].text and "on the 21st" in found[1].text
    assert warn.forecast_warnings(obs(50.0, 170.0), s, policy, T0 + dt.timedelta(hours=5))[0] == []
    april = dt.datetime(2026, 4, 5, tzinfo=UTC)
    assert len(warn.forecast_warnings(obs(40.0, 160.0, april), s, policy, april)[0]) == 2   # a new period


def test_no_warning_once_reached_without_a_crossing_or_on_unknown_data():
    policy = DownshiftPolicy(LADDER)
    s = DownshiftState(app="a", tenant="acme")
    assert warn.forecast_warnings(obs(85.0, 120.0), s, policy, T0)[0] == []               # reached: no warning
    assert warn.forecast_warnings(obs(10.0, 60.0), s, policy, T0)[0] == []                # no crossing
    assert warn.forecast_warnings(SpendObservation(10.0, 100.0, None, T0, "2026-03"), s, policy, T0)[0] == []
    assert warn.forecast_warnings(None, s, policy, T0)[0] == []
    assert warn.forecast_warnings(obs(40.0, 160.0), s, DownshiftPolicy(LADDER, warn_forecast=False), T0)[0] == []


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 3000), st.floats(0, 1.2), st.floats(0, 3)), max_size=30))
def test_property_at_most_one_warning_per_threshold_per_period(steps):
    policy = DownshiftPolicy(LADDER, block=True)
    s, now, seen = DownshiftState(app="a", tenant="acme"), T0, set()
    for minutes, ratio, growth in steps:
        now += dt.timedelta(minutes=minutes)
        found, s = warn.forecast_warnings(obs(ratio * 100, ratio * 100 * (1 + growth), now), s, policy, now)
        for w in found:
            key = (period_at(now).key, w.threshold)
            assert key not in seen and ratio < w.ratio and w.reaches_on >= now.date()
            seen.add(key)


@pytest.mark.integration
def test_tick_records_one_forecast_warning_per_tenant_per_period(downshift_env):
    la, clock = downshift_env["la"], Clock(T0)
    # acme: $30 five days ago and $2.50 in the last 24 h → forecast $86 of $100 at month end: crosses 80 % (the
    # downshift) before it is reached, not 100 % (which would downshift at once).
    la.seed("AppMetrics", cost_rows("acme", 30.0, T0 - dt.timedelta(days=5)) + cost_rows("acme", 2.5, T0, n=5))
    assert [p[1:] for p in tick(clock).planned][0][1] == "forecast warning"
    drain(downshift_env["env"], clock)
    [w] = [r for r in records(clock, outcome="recorded") if r["details"].get("kind") == "forecast-warning"]
    assert w["subject"] == "acme" and w["details"]["threshold"] == "downshift" and "reaches 80%" in w["reason"]
    clock.advance(minutes=10)
    la.seed("AppMetrics", cost_rows("acme", 0.01, clock.now))
    assert tick(clock).planned == []                                 # warned once this period
