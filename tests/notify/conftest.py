from __future__ import annotations

import json

import pytest

from tests.notify_helpers import start_chat_hooks

LINK_SECRET = "s" * 40


@pytest.fixture(scope="session")
def chat(workdir):
    hooks = start_chat_hooks(workdir)
    yield hooks
    hooks.stop()


@pytest.fixture
def notify_env(storage_env, chat, monkeypatch):
    """Three destinations (teams, slack, generic), links on, retries without delay."""
    chat.reset()
    from shared import notify
    monkeypatch.setattr(notify, "BACKOFF_BASE_SECONDS", 0.0)
    monkeypatch.setenv("HEALER_NOTIFY_DESTINATIONS", json.dumps(chat.destinations()))
    monkeypatch.setenv("HEALER_PUBLIC_BASE_URL", "https://healer.example.net")
    monkeypatch.setenv("HEALER_APPROVAL_LINK_SECRET", LINK_SECRET)
    monkeypatch.delenv("HEALER_NOTIFY_WEBHOOK_URL", raising=False)
    return chat
