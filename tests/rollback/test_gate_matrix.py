"""The rollback healer through the gate matrix (tests/gate_matrix.py): same outcome class as every healer."""
from __future__ import annotations

import uuid

import pytest

from shared.config import Settings
from standins.stack import build_of, seed_bad_release
from tests.gate_matrix import ASK_LIVE, COMBOS, EXPECTED, approve_only_pending, combo_env, fresh_state, set_env
from tests.rollback.test_shell import APP, RG, fired_alert, handle, message

pytestmark = pytest.mark.integration
CLASS = {"acted": "act", "skipped": "killed", "refused": "refused", "dry-run": "dry-run", "pending": "pending"}


def test_rollback_gate_matrix(healer_env, arm, monkeypatch):
    got = {}
    for c in COMBOS:
        fresh_state(monkeypatch)
        arm.reset()
        seed_bad_release(arm, healer_env["HEALER_ARM_ENDPOINT"], RG, APP)
        msg = message(fired_alert(alert_id=str(uuid.uuid4())))
        if c.approved:
            set_env(monkeypatch, ASK_LIVE)
            assert handle(msg) == "pending"
            msg = approve_only_pending(Settings(), "rollback")
        set_env(monkeypatch, combo_env(c))
        got[c.name] = CLASS[handle(msg)]
        assert build_of(arm, RG, APP) == ("v41" if got[c.name] == "act" else "v42"), c.name
    assert got == EXPECTED
