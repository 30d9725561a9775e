"""The error healer's registered functions, called through function_app's callables with real azure.functions
objects: HTTP run request → queue → worker → draft PRs; the timer; dead letters."""
from __future__ import annotations

import base64
import datetime as dt
import json

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from tests.errors import synth
from tests.functions import call

pytestmark = pytest.mark.integration


def post(body) -> func.HttpRequest:
    from tests.conftest import OPERATOR
    return func.HttpRequest(method="POST", url="http://localhost/api/errors/run", headers=dict(OPERATOR), params={},
                            route_params={}, body=json.dumps(body).encode())


def queued(env, name="healer-errors") -> list[dict]:
    from azure.storage.queue import QueueClient
    q = QueueClient.from_connection_string(env["AzureWebJobsStorage"], name)
    return [json.loads(base64.b64decode(m.content)) for m in q.peek_messages(max_messages=32)]


def test_http_run_request_is_queued_and_the_worker_drafts(functions, errors_env):
    la, gh = errors_env["la"], errors_env["gh"]
    end = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = end - dt.timedelta(hours=6)
    la.seed("AppExceptions", synth.day_of_rows("workspace", start - dt.timedelta(hours=18), 600, 11))
    resp = call(functions, "errors_run", post({"start": start.isoformat(), "end": end.isoformat(), "by": "oncall"}))
    assert resp.status_code == 202
    [msg] = queued(errors_env["env"])
    assert msg["kind"] == "run" and msg["start"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    call(functions, "errors_worker", QueueMessage(id="m1", body=json.dumps(msg).encode(), dequeue_count=1))
    assert len(gh.pulls()) == 5


@pytest.mark.parametrize("body,fragment", [
    ({"start": "2025-03-02T00:00:00+00:00", "end": "2025-03-01T00:00:00+00:00", "by": "x"}, "before"),
    ({"start": "2025-01-01T00:00:00+00:00", "end": "2025-03-01T00:00:00+00:00", "by": "x"}, "7 days"),
    ({"start": "2025-03-01T00:00:00", "end": "2025-03-02T00:00:00", "by": "x"}, "UTC offset"),
    ({"hours": 500, "by": "x"}, "hours"),
    ({"hours": 24}, "'by'"),
])
def test_http_run_request_rejects_bad_windows(functions, errors_env, body, fragment):
    resp = call(functions, "errors_run", post(body))
    assert resp.status_code == 400 and fragment in json.loads(resp.get_body())["error"]
    assert queued(errors_env["env"]) == []


def test_timer_runs_the_last_day_up_to_the_last_whole_hour(functions, errors_env):
    la, gh = errors_env["la"], errors_env["gh"]
    end = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    la.seed("AppExceptions", synth.day_of_rows("workspace", end - dt.timedelta(hours=24), 300, 12))
    call(functions, "errors_daily", TimerRequest(past_due=False))
    assert len(gh.pulls()) == 5
    (q,) = la.queries()
    assert q["timespan"].startswith((end - dt.timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%S"))


def test_malformed_and_poison_messages_are_audited(functions, errors_env):
    call(functions, "errors_worker", QueueMessage(id="m2", body=b"\xff garbage", dequeue_count=1))
    [dead] = queued(errors_env["env"], "healer-errors-poison")
    assert "malformed message" in dead["deadLetterReason"]
    call(functions, "errors_dead_letter", QueueMessage(id="m3", body=json.dumps(dead).encode(), dequeue_count=1))
    from shared import audit
    from shared.config import Settings
    records = list(audit.list_records(Settings(), day=dt.datetime.now(dt.timezone.utc).date(), healer="errors",
                                      outcome="dead-letter"))
    assert len(records) == 1 and "malformed" in records[0]["reason"]


def test_invalid_setting_refuses_the_timer_run_through_the_gate(functions, errors_env, monkeypatch):
    """A malformed setting is a configuration error found at load: the run is refused (audited), not attempted."""
    from shared import audit
    from shared.config import Settings
    monkeypatch.setenv("HEALER_ERRORS_TOP_N", "many")
    call(functions, "errors_daily", TimerRequest(past_due=False))  # no exception: nothing was attempted
    today = dt.datetime.now(dt.timezone.utc).date()
    [refused] = list(audit.list_records(Settings(), day=today, healer="errors", outcome="refused"))
    assert "HEALER_ERRORS_TOP_N" in refused["reason"] and "configuration invalid" in refused["reason"]
    [invalid] = list(audit.list_records(Settings(), day=today, outcome="config-invalid"))
    assert invalid["details"]["problems"][0]["setting"] == "HEALER_ERRORS_TOP_N"


@pytest.mark.parametrize("setting,value,error,fragment", [
    ("HEALER_ERRORS_GITHUB_TOKEN", None, "ConfigError", "configure HEALER_ERRORS_GITHUB_TOKEN or a GitHub App"),
    ("HEALER_ERRORS_GITHUB_REPOSITORY", "no-slash", "GitHubError", "repository must be 'owner/name'"),
])
def test_timer_failures_are_audited_without_secrets_and_re_raised(functions, errors_env, monkeypatch, setting, value,
                                                                   error, fragment):
    from shared import audit
    from shared.config import Settings
    from shared.state import Store, acquire_lease, release_lease
    if value is None:
        monkeypatch.delenv(setting)
    else:
        monkeypatch.setenv(setting, value)
    with pytest.raises(Exception) as info:
        call(functions, "errors_daily", TimerRequest(past_due=False))
    assert type(info.value).__name__ == error  # re-raised: the host records the failed invocation
    today = dt.datetime.now(dt.timezone.utc).date()
    [record] = list(audit.list_records(Settings(), day=today, healer="errors", outcome="failed"))
    assert record["reason"].startswith(f"daily run failed: {error}: ") and fragment in record["reason"]
    token = errors_env["env"]["HEALER_ERRORS_GITHUB_TOKEN"]
    assert token not in json.dumps(record) and token[4:16] not in json.dumps(record)
    lease = acquire_lease(Store(Settings(), "ops"), "errors", "run", "next", 900,
                          dt.datetime.now(dt.timezone.utc))
    assert lease is not None  # the failed run let go of its lease
    release_lease(Store(Settings(), "ops"), lease)
