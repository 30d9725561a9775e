"""The whole pipeline over the wire: LogsQueryClient → Log Analytics stand-in, githubkit → GitHub stand-in (real
git), Table storage on Azurite. Draft PRs, idempotent re-runs, next-day updates, regressions, safety gates."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from healers.errors import shell
from healers.errors.triage import Window
from shared import audit
from shared.config import Settings
from tests.errors import synth
from tests.errors.conftest import OWNER, REPO, assert_only_triage_writes

pytestmark = pytest.mark.integration
DAY1 = dt.datetime(2025, 3, 3, 6, tzinfo=dt.timezone.utc)
W1 = Window(DAY1 - dt.timedelta(days=1), DAY1)
W2 = Window(DAY1, DAY1 + dt.timedelta(days=1))


def seed(la, window: Window, n: int, seed_: int, **kw) -> list[dict]:
    rows = synth.day_of_rows("workspace", window.start, n, seed_, **kw)
    la.seed("AppExceptions", rows)
    return rows


def run(window: Window) -> shell.Report:
    return shell.run(Settings(), window, now=lambda: window.end + dt.timedelta(minutes=5))


def writes(gh) -> list[dict]:
    return [r for r in gh.requests() if r["method"] in ("POST", "PUT", "PATCH", "DELETE")]


def test_first_day_drafts_one_pr_per_root_cause_and_rerun_changes_nothing(errors_env):
    la, gh = errors_env["la"], errors_env["gh"]
    rows = seed(la, W1, 600, 1)
    report = run(W1)
    assert report.outcome == "ok" and report.rows < len(rows) / 3  # aggregated in KQL
    assert report.groups == len(synth.CAUSES)  # noise and roles merged: one group per root cause
    created = [d for d in report.drafted if d["result"] == "created"]
    assert len(created) == 5  # top N
    pulls = gh.pulls()
    assert len(pulls) == 5 and all(p["draft"] and p["state"] == "open" for p in pulls)
    assert all(p["head"]["ref"].startswith("healer/errors/") for p in pulls)
    assert len({p["head"]["ref"] for p in pulls}) == 5
    # the branch holds the triage file, committed with real git
    pr = next(p for p in pulls if "OrderService.PlaceAsync" in p["title"])
    short = pr["head"]["ref"].rsplit("/", 1)[1]
    files = gh.files(OWNER, REPO, pr["head"]["ref"])
    triage = files[f".healer/errors/{short}.md"]
    assert "## Counts per hour" in triage and "AppExceptions" in triage and "shop-api" in triage
    assert "shop-worker" in triage  # merged across roles
    assert files["src/Orders/OrderService.cs"] == synth.SOURCES["src/Orders/OrderService.cs"]  # base untouched
    assert gh.files(OWNER, REPO, "main").keys() == synth.SOURCES.keys()  # never merges, base untouched
    expected = sum(r["ItemCount"] for r in rows if r["ExceptionType"] == "System.InvalidOperationException")
    assert f"**{expected}**" in triage  # itemCount honoured

    assert_only_triage_writes(gh)
    assert "<!-- healer-errors:triage sha256=" in pr["body"]  # ties the PR to the triage it reports

    before = len(writes(gh))
    again = run(W1)
    assert [d["result"] for d in again.drafted] == ["unchanged"] * 5
    assert len(writes(gh)) == before and len(gh.pulls()) == 5
    assert all(p["comments"] == [] for p in gh.pulls())


def test_next_day_updates_triage_and_comments_then_merged_comes_back_as_regression(errors_env):
    la, gh = errors_env["la"], errors_env["gh"]
    seed(la, W1, 400, 2)
    run(W1)
    seed(la, W2, 500, 3, build_line=97)  # a new build: line numbers and instance paths moved
    report = run(W2)
    assert sorted(d["result"] for d in report.drafted) == ["updated"] * 5
    pulls = gh.pulls()
    assert len(pulls) == 5 and all(len(p["comments"]) == 1 for p in pulls)
    assert all("Healer update for 2025-03-03T06:00:00Z" in p["comments"][0]["body"] for p in pulls)
    pr = pulls[0]
    short = pr["head"]["ref"].rsplit("/", 1)[1]
    assert "- Window: 2025-03-03T06:00:00Z to 2025-03-04T06:00:00Z" in \
        gh.files(OWNER, REPO, pr["head"]["ref"])[f".healer/errors/{short}.md"]

    # a human merges one; the error comes back the day after → a new draft marked regression
    gh.merge(OWNER, REPO, pr["number"])
    w3 = Window(W2.end, W2.end + dt.timedelta(days=1))
    seed(la, w3, 400, 4)
    report3 = run(w3)
    results = {d["fingerprint"][:12]: d["result"] for d in report3.drafted}
    assert results[short] == "regression"
    new = [p for p in gh.pulls() if p["head"]["ref"] == pr["head"]["ref"] and p["state"] == "open"]
    assert len(new) == 1 and new[0]["title"].startswith("[healer] Regression: ") and new[0]["draft"]
    assert f"after pull request {pr['number']} was merged" in new[0]["body"]
    assert_only_triage_writes(gh)


def test_closed_without_merge_is_not_drafted_again(errors_env):
    la, gh = errors_env["la"], errors_env["gh"]
    seed(la, W1, 300, 5)
    run(W1)
    victim = gh.pulls()[0]
    gh.close(OWNER, REPO, victim["number"])
    seed(la, W2, 300, 6)
    report = run(W2)
    assert {d["fingerprint"][:12]: d["result"] for d in report.drafted}[victim["head"]["ref"].rsplit("/", 1)[1]] \
        == "dismissed"
    assert len(gh.pulls()) == 5


def test_secret_and_email_never_reach_github(errors_env):
    la, gh = errors_env["la"], errors_env["gh"]
    rng = __import__("random").Random(9)
    cause = synth.CAUSES[4]
    leak = f"Login failed for user ops@contoso.com; connection {synth.SECRET_CONN}"
    la.seed("AppExceptions", [synth.exception_row("workspace", W1.start + dt.timedelta(hours=h), cause, rng,
                                                  message=leak, item_count=50) for h in range(3)])
    run(W1)
    wire = gh.sent_text()
    key = synth.SECRET_CONN.split("AccountKey=")[1].split(";")[0]
    assert key not in wire and key[:12] not in wire and "ops@contoso.com" not in wire
    assert "AccountKey=<redacted>" in wire and "<email>" in wire




def test_dry_run_kill_switch_and_policy_deny_draft_nothing(errors_env, monkeypatch):
    la, gh = errors_env["la"], errors_env["gh"]
    seed(la, W1, 200, 7)
    monkeypatch.setenv("HEALER_DRY_RUN", "true")
    report = run(W1)
    assert {d["result"] for d in report.drafted} == {"dry-run"} and gh.pulls() == []
    monkeypatch.setenv("HEALER_DRY_RUN", "false")
    monkeypatch.setenv("HEALER_POLICY", json.dumps({"version": 1, "default": "deny", "rules": []}))
    assert {d["result"] for d in run(W1).drafted} == {"refused"} and gh.pulls() == []
    monkeypatch.setenv("HEALER_KILL_SWITCH", "true")
    assert run(W1).outcome == "skipped"
    assert writes(gh) == []
    outcomes = {r["outcome"] for r in audit.list_records(Settings(), day=(W1.end + dt.timedelta(minutes=5)).date(),
                                                          healer="errors", limit=100)}
    assert {"dry-run", "refused", "skipped"} <= outcomes


def test_partial_results_are_used_and_reported_and_throttling_retried(errors_env):
    la, gh = errors_env["la"], errors_env["gh"]
    seed(la, W1, 200, 8)
    la.fault("throttle", count=1, retry_after=1)
    la.fault("partial", message="Query result set has exceeded the internal record count limit.")
    report = run(W1)
    assert report.partial and "PartialError" in report.partial[0]
    assert len(gh.pulls()) == 5
    assert [q["status"] for q in la.queries()] == [429, 200]


def test_failed_query_raises_collect_error_and_queue_retries_later(errors_env):
    la = errors_env["la"]
    la.fault("error", status=400, code="BadArgumentError", message="bad")
    with pytest.raises(shell.CollectError) as info:
        run(W1)
    assert info.value.status == 400
    from shared.work import RetryLater
    la.fault("error", status=503, code="ServiceUnavailable", message="down", count=4)
    with pytest.raises(RetryLater):
        shell.handle(Settings(), shell.work_message(W1, "test"), now=lambda: W1.end)


def test_classic_schema_queries_the_app_insights_resource(errors_env, monkeypatch):
    la, gh = errors_env["la"], errors_env["gh"]
    resource = ("/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/shop/providers/"
                "microsoft.insights/components/shop-ai")
    monkeypatch.setenv("HEALER_ERRORS_SCHEMA", "classic")
    monkeypatch.setenv("HEALER_ERRORS_RESOURCE_ID", resource)
    monkeypatch.setenv("HEALER_ERRORS_TOP_N", "2")
    la.seed("exceptions", synth.day_of_rows("classic", W1.start, 300, 10))
    report = run(W1)
    assert report.groups == len(synth.CAUSES) and len(gh.pulls()) == 2
    assert la.queries()[0]["resource_id"] == resource


def test_github_unreachable_fails_each_draft_but_the_run_finishes_and_counts_the_day(errors_env, monkeypatch):
    """A refused connection (or timeout) is githubkit's RequestError, not RequestFailed: it must fail that group's
    draft (audited), not abort the run before the baseline is written and the run recorded."""
    from healers.errors.rank import baseline_days
    from shared.state import Store
    from standins.harness import free_port
    la = errors_env["la"]
    seed(la, W1, 200, 11)
    monkeypatch.setenv("HEALER_ERRORS_GITHUB_API_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens
    report = run(W1)
    assert report.outcome == "ok" and len(report.drafted) == 5
    assert {d["result"] for d in report.drafted} == {"failed"}
    assert all("RequestError" in d["detail"] for d in report.drafted)
    stored = {r.row: r.data for r in Store(Settings(), shell.BASELINE_TABLE).query(shell.BASELINE_PARTITION)}
    assert len(stored) == report.groups and all(baseline_days(d, W1.day + dt.timedelta(days=1), 7)
                                                for d in stored.values())
    failed = list(audit.list_records(Settings(), day=(W1.end + dt.timedelta(minutes=5)).date(), healer="errors",
                                     outcome="failed", limit=50))
    assert len(failed) == 5


def test_a_crash_between_the_triage_commit_and_its_comment_is_recovered_by_the_next_run(errors_env):
    """The update path commits the triage, then comments. When the run stops between the two (here GitHub refuses
    the comment), the next run of the same window sees the triage already committed but no Healer comment
    carrying its hash, and posts the comment; the run after that changes nothing."""
    from healers.errors.triage import record_marker
    la, gh = errors_env["la"], errors_env["gh"]
    seed(la, W1, 300, 12)
    run(W1)
    seed(la, W2, 300, 13)
    gh.fault("POST", r"/issues/\d+/comments$", 422, count=2)
    crashed = run(W2)
    assert sorted(d["result"] for d in crashed.drafted) == ["failed"] * 2 + ["updated"] * 3
    lost = [p for p in gh.pulls() if not p["comments"]]
    assert len(lost) == 2
    for p in lost:  # the triage was committed before the comment failed
        short = p["head"]["ref"].rsplit("/", 1)[1]
        assert "- Window: 2025-03-03T06:00:00Z to" in gh.files(OWNER, REPO, p["head"]["ref"])[
            f".healer/errors/{short}.md"]
    # someone else quoting the current triage's marker does not count as Healer's comment
    victim = lost[0]
    short = victim["head"]["ref"].rsplit("/", 1)[1]
    triage = gh.files(OWNER, REPO, victim["head"]["ref"])[f".healer/errors/{short}.md"]
    gh.comment(OWNER, REPO, victim["number"], "copy of " + record_marker(triage, 1), login="mallory")

    recovered = run(W2)
    assert sorted(d["result"] for d in recovered.drafted) == ["unchanged"] * 3 + ["updated"] * 2
    assert all("missing update comment was posted" in d["detail"] for d in recovered.drafted
               if d["result"] == "updated")
    for p in gh.pulls():
        mine = [c for c in p["comments"] if c["user"]["login"] == "healer[bot]"]
        assert len(mine) == 1 and "Healer update for 2025-03-03T06:00:00Z" in mine[0]["body"], p["number"]
        assert "(previous triage:" in mine[0]["body"]  # figures before, from the PR body's marker
    before = len(writes(gh))
    assert {d["result"] for d in run(W2).drafted} == {"unchanged"}
    assert len(writes(gh)) == before


def _stepping_clock(start: dt.datetime, step_s: float, hook=None):
    """A clock that moves `step_s` seconds on every reading; `hook(n, now)` runs at reading n (1-based)."""
    readings: list[dt.datetime] = []

    def clock() -> dt.datetime:
        now = start + dt.timedelta(seconds=step_s * len(readings))
        readings.append(now)
        if hook is not None:
            hook(len(readings), now)
        return now
    return clock, readings


def test_the_run_lease_is_renewed_per_group_and_keeps_another_run_out(errors_env):
    from shared.state import Store, acquire_lease, release_lease
    la = errors_env["la"]
    seed(la, W1, 300, 14)
    ops = Store(Settings(), "ops")
    intruders: list[object] = []
    # each reading is 400 s later: the run outlives its first 900-s lease several times over
    clock, readings = _stepping_clock(W1.end, 400,
                                      lambda n, now: n > 1 and intruders.append(  # reading 1: before the run's own
                                          acquire_lease(ops, shell.HEALER, "run", "intruder", 900, now)))
    report = shell.run(Settings(), W1, now=clock, budget_seconds=10_000)
    assert [d["result"] for d in report.drafted] == ["created"] * 5 and report.deferred == []
    assert (readings[-1] - readings[0]).total_seconds() > 2 * 900
    assert len(intruders) >= 6 and all(i is None for i in intruders)  # never free while the run went on
    after = acquire_lease(ops, shell.HEALER, "run", "next", 900, readings[-1])
    assert after is not None  # released at the end
    release_lease(ops, after)


def test_a_run_near_its_time_budget_defers_groups_and_the_next_run_drafts_them_first(errors_env, monkeypatch):
    la, gh = errors_env["la"], errors_env["gh"]
    seed(la, W1, 300, 15)
    clock, _ = _stepping_clock(W1.end + dt.timedelta(minutes=5), 300)
    report = shell.run(Settings(), W1, now=clock, budget_seconds=1000)  # no model: a group needs up to 60 s
    results = [d["result"] for d in report.drafted]
    assert results == ["created"] * 3 + ["deferred"] * 2 and len(gh.pulls()) == 3
    assert report.deferred == [d["fingerprint"] for d in report.drafted[3:]]
    day = (W1.end + dt.timedelta(minutes=5)).date()
    skipped = list(audit.list_records(Settings(), day=day, healer="errors", outcome="skipped", limit=50))
    assert sorted(r["subject"] for r in skipped) == sorted(f[:12] for f in report.deferred)
    assert all("deferred to the next run: the run is near its time budget" in r["reason"] for r in skipped)
    [summary] = [r for r in audit.list_records(Settings(), day=day, healer="errors", outcome="recorded", limit=50)
                 if "run over" in r["reason"]]
    assert summary["details"]["deferred"] == report.deferred and "2 deferred" in summary["reason"]

    # the next run drafts the deferred groups first, even when they are no longer in its top N
    monkeypatch.setenv("HEALER_ERRORS_TOP_N", "1")
    nxt = run(W1)
    assert [(d["fingerprint"], d["result"], d.get("carried")) for d in nxt.drafted] == \
        [(fp, "created", True) for fp in report.deferred] + [(report.drafted[0]["fingerprint"], "unchanged", None)]
    assert len(gh.pulls()) == 5 and nxt.deferred == []
    assert [d["result"] for d in run(W1).drafted] == ["unchanged"]  # carried over once, then cleared


def test_a_run_that_lost_its_lease_stops_drafting(errors_env):
    from shared.state import Store, acquire_lease
    la, gh = errors_env["la"], errors_env["gh"]
    seed(la, W1, 300, 16)
    ops = Store(Settings(), "ops")
    taken: list[object] = []

    def take_over(n: int, now: dt.datetime) -> None:
        if n == 3:  # after the first group, another run finds the lease expired (the host froze us) and takes it
            taken.append(acquire_lease(ops, shell.HEALER, "run", "other", 900, now + dt.timedelta(hours=1)))
    clock, _ = _stepping_clock(W1.end + dt.timedelta(minutes=5), 1, take_over)
    report = shell.run(Settings(), W1, now=clock)
    assert taken and taken[0] is not None
    assert [d["result"] for d in report.drafted] == ["created"] + ["deferred"] * 4 and len(gh.pulls()) == 1
    skipped = list(audit.list_records(Settings(), day=(W1.end + dt.timedelta(minutes=5)).date(), healer="errors",
                                      outcome="skipped", limit=50))
    assert len(skipped) == 4 and all("lost its lease" in r["reason"] for r in skipped)
    assert ops.get(shell.HEALER, "run").data["lease"]["owner"] == "other"  # ours was not released over theirs
