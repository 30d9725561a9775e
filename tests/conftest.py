"""Session-wide local servers (started by the test run, stopped by PID) and per-test isolated Healer settings."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from standins.harness import scratch_dir
from standins.stack import LocalAzure, site_id

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def alert_payload(name: str) -> dict:
    return json.loads((FIXTURES / "alerts" / name).read_text())


@pytest.fixture(scope="session")
def registered_functions():
    """Everything function_app.py registers, by function name. `get_functions()` may run once per process."""
    import function_app
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


@pytest.fixture(scope="session")
def functions(registered_functions):
    return registered_functions


@pytest.fixture(scope="session")
def workdir():
    return scratch_dir("healer-tests-")


@pytest.fixture(scope="session")
def local_azure(workdir):
    stack = LocalAzure.start(workdir)
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def azurite(local_azure):
    return local_azure.azurite


@pytest.fixture
def storage_env(azurite, monkeypatch):
    """Environment for Healer with its own table prefix and empty queues on the shared Azurite."""
    env = {"AzureWebJobsStorage": azurite.connection_string,
           "HEALER_TABLE_PREFIX": "t" + uuid.uuid4().hex[:12], "HEALER_OPERATOR_KEY": OPERATOR_KEY}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from azure.storage.queue import QueueServiceClient
    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    for q in service.list_queues():
        service.get_queue_client(q.name).clear_messages()
    return env


OPERATOR_KEY = "op-" + uuid.uuid4().hex   # operator routes need it in function-key mode (shared.auth)
OPERATOR = {"x-healer-operator-key": OPERATOR_KEY}
ALLOW_ALL = {"version": 1, "default": "deny", "rules": [{"action": "*", "resource": "*", "effect": "allow"}]}
SHOP = site_id("shop-prod", "shop-web")


@pytest.fixture
def arm(local_azure):
    ctl = local_azure.arm_control()
    ctl.reset()
    yield ctl
    ctl.close()


@pytest.fixture
def healer_env(local_azure, storage_env, arm, monkeypatch):
    """Healer pointed at Azurite + identity + ARM stand-ins, one allowlisted app, a permissive policy."""
    env = {**local_azure.env(), **storage_env,
           "HEALER_POLICY": json.dumps(ALLOW_ALL),
           "HEALER_ROLLBACK_TARGETS": json.dumps([{"resourceId": SHOP, "slot": "staging"}])}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from shared.identity import credential
    credential.cache_clear()
    from shared.webapps import reset_clients
    reset_clients()
    return env
