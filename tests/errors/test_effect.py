"""Effect after merge: the group's rate before and after the deployment that shipped the merged fix; a fall of at
least 80 % is marked fixed in the triage file, anything less is drafted again as a regression."""
from __future__ import annotations

import datetime as dt
import random

import pytest

from healers.errors import effect
from healers.errors.versions import Deployment
from tests.errors import synth
from tests.errors.conftest import OWNER, REPO

END = dt.datetime(2025, 3, 3, 6, tzinfo=dt.timezone.utc)
DAY2 = END + dt.timedelta(days=1)
SHIP = END + dt.timedelta(hours=4)


def _iso(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hourly(before: int, after: int) -> dict[str, int]:
    out = {}
    for h in range(24):
        at = END + dt.timedelta(hours=h)
        out[at.strftime("%Y-%m-%dT%H:00")] = before if at < SHIP else after
    return out


def test_judge_pure() -> None:
    ship = Deployment("9", "f" * 40, "98", "production", SHIP, "build 98")
    old = Deployment("8", "e" * 40, "97", "production", END - dt.timedelta(days=2), "build 97")
    merged = END + dt.timedelta(hours=1)
    fixed = effect.judge(merged, [old, ship], _hourly(30, 2), END, DAY2, {})
    assert fixed.verdict == "fixed" and fixed.before == 30 and 1.9 < fixed.after < 2.1 and fixed.deployment == ship
    assert "-93 %" in fixed.sentence() and "build 98" in fixed.sentence()
    assert effect.judge(merged, [old, ship], _hourly(30, 10), END, DAY2, {}).verdict == "regression"
    assert effect.judge(merged, [old], _hourly(30, 0), END, DAY2, {}).verdict == "not deployed"
    assert effect.judge(merged, [old, ship], _hourly(30, 0), END, SHIP + dt.timedelta(minutes=20), {}).verdict \
        == "too early"
    # a deployment at the window's start: the rate before comes from the baseline's days
    early = Deployment("10", "d" * 40, "99", "production", END, "build 99")
    judged = effect.judge(END - dt.timedelta(hours=1), [early], _hourly(0, 1), END, DAY2, {"2025-03-02": 720})
    assert judged.verdict == "fixed" and judged.before == 30


def _rows(cause: synth.Cause, start: dt.datetime, per_hour_before: int, per_hour_after: int, seed: int) -> list:
    rng = random.Random(seed)
    rows = []
    for h in range(24):
        at = start + dt.timedelta(hours=h)
        n = per_hour_before if at < SHIP else per_hour_after
        rows += [synth.exception_row("workspace", at + dt.timedelta(minutes=1 + 50 * i / max(n, 1)), cause, rng)
                 for i in range(n)]
    return rows


@pytest.mark.integration
def test_merged_fix_whose_rate_falls_is_marked_fixed_and_one_that_does_not_comes_back(errors_env):
    from healers.errors import shell
    from healers.errors.triage import Window
    from shared.config import Settings
    la, gh = errors_env["la"], errors_env["gh"]
    pricing, users = synth.CAUSES[1], synth.CAUSES[3]
    day1 = Window(END - dt.timedelta(days=1), END)
    la.seed("AppExceptions", _rows(pricing, day1.start, 6, 6, 1) + _rows(users, day1.start, 4, 4, 2))
    shell.run(Settings(), day1, now=lambda: END + dt.timedelta(minutes=5))
    prs = {("pricing" if "ZeroDivisionError" in p["title"] else "users"): p for p in gh.pulls()}
    for pr in prs.values():  # humans merge both fixes at 07:00, build 98 ships them at 10:00
        gh.merge(OWNER, REPO, pr["number"], at=_iso(END + dt.timedelta(hours=1)))
    main = gh.commit(OWNER, REPO, {"CHANGELOG.md": "98\n"}, message="release 98")
    gh.deployment(OWNER, REPO, main, ref="98", description="build 98", at=_iso(SHIP))

    day2 = Window(END, DAY2)
    la.seed("AppExceptions", _rows(pricing, day2.start, 20, 1, 3) + _rows(users, day2.start, 5, 5, 4))
    report = shell.run(Settings(), day2, now=lambda: DAY2 + dt.timedelta(minutes=5))
    results = {d["title"].split(" ")[0]: (d["result"], d["detail"]) for d in report.drafted}
    assert results["ZeroDivisionError"][0] == "updated" and "marked fixed" in results["ZeroDivisionError"][1]
    assert results["TypeError"][0] == "regression"
    pricing_pr = prs["pricing"]
    short = pricing_pr["head"]["ref"].rsplit("/", 1)[1]
    triage = gh.files(OWNER, REPO, pricing_pr["head"]["ref"])[f".healer/errors/{short}.md"]
    assert "## Effect of the merged fix" in triage and "- Status: **fixed**" in triage
    assert "rate 20.0/h before build 98" in triage and "1.0/h after (-95 %)" in triage
    merged = next(p for p in gh.pulls() if p["number"] == pricing_pr["number"])
    assert "effect of this merged fix" in merged["comments"][-1]["body"] and merged["state"] == "closed"
    assert not [p for p in gh.pulls() if p["head"]["ref"] == pricing_pr["head"]["ref"] and p["state"] == "open"]
    again = [p for p in gh.pulls() if p["head"]["ref"] == prs["users"]["head"]["ref"] and p["state"] == "open"]
    assert len(again) == 1 and "not fixed" in again[0]["body"] and again[0]["title"].startswith("[healer] Regression")
    # the next run over the same window writes nothing more
    before = len(gh.requests())
    rerun = shell.run(Settings(), day2, now=lambda: DAY2 + dt.timedelta(minutes=6))
    assert {d["result"] for d in rerun.drafted} == {"unchanged"}
    assert not [r for r in gh.requests()[before:] if r["method"] in ("PUT", "POST", "PATCH")]
