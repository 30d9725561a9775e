"""Fixtures and helpers for the downshift shell tests: Azurite + identity + ARM (LocalAzure), the Log Analytics and
App Configuration stand-ins (HTTPS, test CA, tokens from the identity stand-in), each its own process, stopped by
PID. No tests here; test modules import the fixtures."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from standins.appconfig import start_appconfig
from standins.log_analytics import start_log_analytics
from standins.stack import SUBSCRIPTION, site_id
from tests.conftest import ALLOW_ALL

UTC = dt.timezone.utc
WORKSPACE_ID = "22222222-3333-4444-5555-666666666666"
AI_APP = site_id("ai-prod", "chat-web")
OPS_APP = site_id("ai-prod", "ops-bot")
LADDER = ["gpt-4o", "gpt-4o-mini", "gpt-35-turbo"]
KEY = "ai:model"
POLICY = {"ladder": LADDER, "min_dwell_s": 600, "max_dwell_s": 7200, "max_switches_per_hour": 4}


def app_config(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"resourceId": AI_APP, "actuator": "appConfiguration", "appConfigEndpoint": endpoint, "key": KEY,
            "role": "chat-web", "policy": dict(POLICY),
            "tenants": {"acme": {"budget": 100.0}, "globex": {"budget": 100.0},
                        "kiwi": {"budget": 100.0, "timezone": "Pacific/Auckland"}},
            "budgetNames": [], **extra}


def ops_app_config(**extra: Any) -> dict[str, Any]:
    """The app-setting fallback: app-wide, budget alerts as the backstop."""
    return {"resourceId": OPS_APP, "actuator": "appSetting", "key": "AI_MODEL", "role": "ops-bot",
            "policy": dict(POLICY), "tenants": {"*": {"budget": 1000.0}}, "budgetNames": ["test-budgetName",
                                                                                          "Test_actual_cost_budget"],
            **extra}


@pytest.fixture(scope="session")
def downshift_servers(local_azure, workdir):
    started = []
    try:
        la = start_log_analytics(workdir, local_azure.ca, local_azure.secret)
        started.append(la)
        ac = start_appconfig(workdir, local_azure.ca, local_azure.secret)
        started.append(ac)
        yield {"la": la, "ac": ac}
    finally:
        for s in reversed(started):
            s.stop()


def apply_env(monkeypatch, env: dict[str, str]) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from healers.downshift import shell
    from shared.webapps import reset_clients
    from shared.identity import credential
    credential.cache_clear()
    shell.clear_caches()
    reset_clients()


@pytest.fixture
def downshift_env(local_azure, storage_env, arm, downshift_servers, monkeypatch):
    la, ac = downshift_servers["la"], downshift_servers["ac"]
    la.reset()
    ac.reset()
    ac.seed([{"key": KEY, "value": "gpt-4o"}])
    arm.seed_app("ai-prod", "ops-bot", slots={"production": {"app_settings": {
        "AI_MODEL": "gpt-4o", "FEATURE_X": "on",
        "OPENAI_KEY": "@Microsoft.KeyVault(VaultName=kv;SecretName=openai-key)"}, "state": "Running"},
        "staging": {"app_settings": {"AI_MODEL": "gpt-4o"}, "state": "Running"}},
        sticky_app_settings=["SLOT_NAME"], sticky_connection_strings=["DB"],
        subscription_id=SUBSCRIPTION)
    env = {**local_azure.env(), **storage_env,
           "HEALER_POLICY": json.dumps(ALLOW_ALL),
           "HEALER_DOWNSHIFT_APPS": json.dumps([app_config(ac.endpoint), ops_app_config()]),
           "HEALER_DOWNSHIFT_SCHEMA": "workspace",
           "HEALER_DOWNSHIFT_WORKSPACE_ID": WORKSPACE_ID,
           "HEALER_DOWNSHIFT_LOGS_ENDPOINT": la.endpoint}
    apply_env(monkeypatch, env)
    return {"env": env, "la": la, "ac": ac, "arm": arm}


def cost_rows(tenant: str, amount: float, at: dt.datetime, role: str = "chat-web", n: int = 1,
              schema: str = "workspace") -> list[dict[str, Any]]:
    """`n` rows of the cost metric summing to `amount`, the newest 30 s before `at`, one per 10 minutes."""
    rows = []
    for i in range(n):
        when = (at - dt.timedelta(seconds=30, minutes=10 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if schema == "workspace":
            rows.append({"TimeGenerated": when, "Name": "agent.cost.usd", "Sum": amount / n, "ItemCount": 1,
                         "Properties": {"tenant": tenant}, "AppRoleName": role})
        else:
            rows.append({"timestamp": when, "name": "agent.cost.usd", "valueSum": amount / n, "valueCount": 1,
                         "customDimensions": {"tenant": tenant}, "cloud_RoleName": role})
    return rows


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def drain(settings_env: dict[str, str], clock, owner: str = "test-worker", limit: int = 200) -> list[str]:
    """Process every message on the downshift queue (as the queue trigger would), with the test's clock."""
    from healers.downshift import shell
    from shared.config import Settings
    from shared.storage import queue
    from shared.work import run_queue_message
    settings = Settings()
    q = queue(settings, shell.QUEUE)
    outcomes: list[str] = []
    for _ in range(limit):
        batch = list(q.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=30))
        if not batch:
            break
        for m in batch:
            outcomes.append(run_queue_message(settings, shell.QUEUE, m.content, m.dequeue_count or 1,
                                              lambda msg: shell.handle(settings, msg, owner=owner, now=clock),
                                              shell.MAX_ATTEMPTS))
            q.delete_message(m)
    return outcomes


def records(clock, healer: str = "downshift", **filters: str) -> list[dict[str, Any]]:
    from shared import audit
    from shared.config import Settings
    return list(audit.list_records(Settings(), day=clock().date(), healer=healer, limit=1000, **filters))


def kv(ac, tenant: str | None) -> dict[str, Any] | None:
    for item in ac.dump():
        if item["key"] == KEY and item["label"] == tenant:
            return item
    return None
