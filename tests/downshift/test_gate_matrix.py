"""The downshift healer through the gate matrix (tests/gate_matrix.py): same outcome class as every healer."""
from __future__ import annotations

import uuid

import pytest

from healers.downshift import shell
from shared.config import Settings
from tests.downshift.test_shell import T0, capacity
from tests.downshift.test_shell_env import Clock, downshift_env, downshift_servers, kv  # noqa: F401
from tests.gate_matrix import ASK_LIVE, COMBOS, EXPECTED, approve_only_pending, combo_env, fresh_state, set_env

pytestmark = pytest.mark.integration
CLASS = {"acted": "act", "skipped": "killed", "refused": "refused", "dry-run": "dry-run", "pending": "pending"}


def test_downshift_gate_matrix(downshift_env, monkeypatch):
    ac, got = downshift_env["ac"], {}
    for i, c in enumerate(COMBOS):
        fresh_state(monkeypatch)
        tenant, clock = f"m{i}", Clock(T0)
        msg = capacity(str(uuid.uuid4()), "Fired", T0, tenant)
        if c.approved:
            set_env(monkeypatch, ASK_LIVE)
            assert shell.handle(Settings(), msg, owner="w", now=clock) == "pending"
            msg = approve_only_pending(Settings(), "downshift", now=T0)
        set_env(monkeypatch, combo_env(c))
        got[c.name] = CLASS[shell.handle(Settings(), msg, owner="w", now=clock)]
        written = kv(ac, tenant)
        assert (written is not None and written["value"] == "gpt-4o-mini") == (got[c.name] == "act"), c.name
    assert got == EXPECTED
