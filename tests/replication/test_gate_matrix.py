"""The replication healer through the gate matrix (tests/gate_matrix.py): same outcome class as every healer.

The gated side effect is publishing the wait's outcome event; whatever the gate says, the outcome itself is
decided and shown by the status API (`outcomeDelivery` tells what happened to the event)."""
from __future__ import annotations

import pytest

from drill.replication import acr_event
from healers.replication import shell
from shared.config import Settings
from shared.work import enqueue
from tests.gate_matrix import ASK_LIVE, COMBOS, EXPECTED, approve_only_pending, combo_env, fresh_state, set_env
from tests.replication.test_shell import (deliver, env, pump, push, queue_empty, replicator, status,  # noqa: F401
                                          topic, topic_events)

pytestmark = pytest.mark.integration
CLASS = {"published": "act", "killed": "killed", "refused": "refused", "dry-run": "dry-run", "pending": "pending"}
DELIVERY = {"act": "published", "killed": "skipped", "refused": "refused", "dry-run": "dry-run",
            "pending": "awaiting-approval"}
FINAL = set(CLASS)


def test_replication_gate_matrix(env, fleet, replicator, topic_events, monkeypatch):
    got = {}
    for i, c in enumerate(COMBOS):
        fresh_state(monkeypatch)
        repo = f"team/m{i}"
        image = push(fleet, repo, "v1")
        replicator.copy_now("eastus", ["westus", "northeurope"], repo, "v1")
        published_before = len(topic_events())
        if c.approved:
            set_env(monkeypatch, ASK_LIVE)
            deliver(acr_event("myreg", repo, image.digest, tag="v1"))
            assert pump(lambda: queue_empty() and status(repo, tag="v1")["status"] == "ready")[-1] == "pending"
            set_env(monkeypatch, combo_env(c))
            enqueue(Settings(), shell.QUEUE, approve_only_pending(Settings(), "replication"))
        else:
            set_env(monkeypatch, combo_env(c))
            deliver(acr_event("myreg", repo, image.digest, tag="v1"))
        results = pump(lambda: queue_empty() and status(repo, tag="v1").get("outcomeDelivery") not in
                       (None, "publishing", "awaiting-approval" if c.approved else None))
        got[c.name] = CLASS[results[-1]]
        view = status(repo, tag="v1")
        assert view["status"] == "ready" and view["outcomeDelivery"] == DELIVERY[got[c.name]], c.name
        assert (len(topic_events()) == published_before + 1) == (got[c.name] == "act"), c.name
    assert got == EXPECTED
