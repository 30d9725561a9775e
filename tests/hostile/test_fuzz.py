"""Property-based fuzzing of every HTTP function (from shared/openapi.json), the Event Grid function and every queue
worker, with real azure.functions objects: 10,000+ generated inputs in all. Asserted: never a 5xx, never an
uncaught exception, every 4xx names its reason and is a status the description documents, and no action reaches
the stand-ins (no ARM or GitHub write)."""
from __future__ import annotations

import json

import pytest
from azure.functions.queue import QueueMessage
from hypothesis import HealthCheck, Phase, given, settings

from standins.funchost import decode_eventgrid
from tests.errors.conftest import errors_env, errors_servers  # noqa: F401 (fixtures)
from tests.hostile import fuzzing

pytestmark = pytest.mark.integration
OPS = [(path, method, op) for path, ops in fuzzing.SPEC["paths"].items() for method, op in ops.items()]
PLAN = {"http": 400, "eventgrid": 1400, "worker": 500, "dead_letter": 200}
WORKERS = ["rollback_worker", "downshift_worker", "replication_worker", "errors_worker"]
DEAD_LETTERS = ["rollback_dead_letter", "downshift_dead_letter", "replication_dead_letter", "errors_dead_letter"]
FUZZ = dict(deadline=None, derandomize=True, database=None, phases=[Phase.generate],
            suppress_health_check=list(HealthCheck))


def test_the_plan_is_at_least_ten_thousand_inputs():
    total = PLAN["http"] * len(OPS) + PLAN["eventgrid"] + PLAN["worker"] * len(WORKERS) + \
        PLAN["dead_letter"] * len(DEAD_LETTERS)
    assert total >= 10_000, total


@pytest.fixture
def fuzz_env(healer_env, errors_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HEALER_REPLICATION_REGISTRIES", json.dumps({"myreg": ["eastus", "westus"]}))
    yield {**healer_env, **errors_env}


def assert_no_action(env, arm) -> None:
    arm_writes = [r for r in arm.requests() if r["method"] in ("POST", "PUT", "PATCH", "DELETE")]
    assert not arm_writes, arm_writes[:3]
    gh_writes = [r for r in env["gh"].requests() if r["method"] in ("POST", "PUT", "PATCH", "DELETE")]
    assert not gh_writes, gh_writes[:3]


@pytest.mark.parametrize("path,method,op", OPS, ids=[f"{m.upper()} {p}" for p, m, _ in OPS])
def test_http_function(functions, fuzz_env, arm, path, method, op):
    fn = functions[op["operationId"]].get_user_function()
    documented = {int(code) for code in op["responses"]}
    seen = []

    @settings(max_examples=PLAN["http"], **FUZZ)
    @given(fuzzing.request_for(path, method, op))
    def check(req):
        seen.append(1)
        resp = fn(req)
        assert resp.status_code < 500, (resp.status_code, resp.get_body()[:300])
        assert resp.status_code in documented, (resp.status_code, resp.get_body()[:300])
        if resp.status_code >= 400:
            if (resp.mimetype or "").endswith("json"):
                error = json.loads(resp.get_body())["error"]
            else:   # the console's static assets answer in plain text
                error = resp.get_body().decode()
            assert isinstance(error, str) and len(error) > 5
    check()
    assert len(seen) >= 0.9 * PLAN["http"]
    assert_no_action(fuzz_env, arm)


def test_event_grid_function(functions, fuzz_env, arm):
    fn = functions["replication_events"].get_user_function()
    seen = []

    @settings(max_examples=PLAN["eventgrid"], **FUZZ)
    @given(fuzzing.acr_events())
    def check(item):
        seen.append(1)
        try:
            event = decode_eventgrid(item)  # the Python worker's own decoding (it refuses e.g. a bad eventTime
        except (ValueError, TypeError, KeyError, AttributeError):  # before any function runs): not Healer's code
            return
        fn(event)                           # refused events are audited; nothing may raise
    check()
    assert len(seen) >= 0.9 * PLAN["eventgrid"]
    assert_no_action(fuzz_env, arm)


@pytest.mark.parametrize("name", WORKERS + DEAD_LETTERS)
def test_queue_function(functions, fuzz_env, arm, name):
    fn = functions[name].get_user_function()
    plan = PLAN["worker"] if name in WORKERS else PLAN["dead_letter"]
    seen = []

    @settings(max_examples=plan, **FUZZ)
    @given(fuzzing.queue_messages())
    def check(body):
        seen.append(1)
        fn(QueueMessage(id="fuzz", body=body, dequeue_count=1))
    check()
    assert len(seen) >= 0.9 * plan
    assert_no_action(fuzz_env, arm)
