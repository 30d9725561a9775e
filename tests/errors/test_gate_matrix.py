"""The errors healer through the gate matrix (tests/gate_matrix.py): same outcome class as every healer.

One group per run (top N = 1), a fresh repository per combination; "approved" approves the parked draft and runs
the approval's work message (a fresh collection of the window, that group only)."""
from __future__ import annotations

import datetime as dt

import pytest

from healers.errors import shell
from healers.errors.triage import Window
from shared.config import Settings
from tests.errors import synth
from tests.errors.conftest import OWNER, REPO
from tests.errors.test_pipeline import seed
from tests.gate_matrix import ASK_LIVE, COMBOS, EXPECTED, approve_only_pending, combo_env, fresh_state, set_env

pytestmark = pytest.mark.integration
DAY = dt.datetime(2025, 3, 3, 6, tzinfo=dt.timezone.utc)
CLASS = {"created": "act", "skipped": "killed", "refused": "refused", "dry-run": "dry-run", "pending": "pending"}


def test_errors_gate_matrix(errors_env, monkeypatch):
    la, gh, got = errors_env["la"], errors_env["gh"], {}
    monkeypatch.setenv("HEALER_ERRORS_TOP_N", "1")
    window = Window(DAY - dt.timedelta(days=1), DAY)
    seed(la, window, 120, 1)
    clock = lambda: window.end + dt.timedelta(minutes=5)  # noqa: E731
    for c in COMBOS:
        fresh_state(monkeypatch)
        gh.reset()
        gh.create_repo(OWNER, REPO, dict(synth.SOURCES))
        approved = None
        if c.approved:
            set_env(monkeypatch, ASK_LIVE)
            assert [d["result"] for d in shell.run(Settings(), window, now=clock).drafted] == ["pending"]
            approved = approve_only_pending(Settings(), "errors", now=clock())
        set_env(monkeypatch, combo_env(c))
        if approved:
            outcome = shell.handle(Settings(), approved, now=clock)
            report = None
        else:
            report = shell.run(Settings(), window, now=clock)
            outcome = report.outcome
        if outcome == "skipped":   # the kill switch stops the whole run
            got[c.name] = "killed"
        else:
            if report is None:
                from shared import audit
                rec = next(r for r in audit.list_records(Settings(), day=clock().date(), healer="errors")
                           if r["details"].get("approvalId") == approved["approvalId"] and r["outcome"] != "pending")
                result = {"acted": "created"}.get(rec["outcome"], rec["outcome"])
            else:
                [entry] = report.drafted
                result = entry["result"]
            got[c.name] = CLASS[result]
        assert (len(gh.pulls()) == 1) == (got[c.name] == "act"), c.name
    assert got == EXPECTED
