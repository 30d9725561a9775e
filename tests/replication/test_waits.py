"""POST /api/replication/waits through the registered function: opens or joins the same dedupe-keyed wait an Event
Grid delivery would, against real docker-registry replicas, Azurite and the Event Grid topic stand-in."""
from __future__ import annotations

import json

import pytest

from drill.replication import acr_event
from tests.functions import call, http, trigger
from tests.replication.test_shell import (  # noqa: F401  (fixtures and drivers shared with the shell tests)
    deliver, env, pump, push, queue_empty, records, replicator, status, topic, topic_events,
)

pytestmark = pytest.mark.integration


def post(functions, body, raw: bytes | None = None):
    req = http("POST", "replication/waits", raw if raw is not None else body)
    resp = call(functions, "replication_waits", req)
    return resp.status_code, json.loads(resp.get_body() or b"null"), dict(resp.headers)


@pytest.fixture
def waits_env(env, fleet, monkeypatch):
    # the login server resolves tags; locally it is the eastus instance
    monkeypatch.setenv("HEALER_REPLICATION_ENDPOINTS", json.dumps({**fleet.endpoint_map(),
                                                                   "myreg.azurecr.io": fleet.url("eastus")}))
    return env


def test_binding_is_an_intake_route(functions):
    t = trigger(functions["replication_waits"])
    assert (t["route"], t["methods"], t["authLevel"].upper()) == ("replication/waits", ["POST"], "FUNCTION")


def test_a_pipeline_opens_the_wait_and_the_late_event_joins_it(functions, waits_env, fleet, replicator, topic_events):
    image = push(fleet, "team/ondemand", "v1")
    replicator.schedule_copy("eastus", "team/ondemand", "v1", {"westus": 0.5, "northeurope": 1.0})
    code, body, headers = post(functions, {"registry": "myreg", "repository": "team/ondemand", "digest": image.digest,
                                           "tag": "v1"})
    assert code == 202 and body["intake"] == "recorded" and body["status"] == "pending"
    assert headers["Location"] == body["statusUrl"] and f"digest={image.digest}" in body["statusUrl"]
    again = post(functions, {"registry": "myreg", "repository": "team/ondemand", "digest": image.digest, "tag": "v1"})
    assert again[0] == 202 and again[1]["intake"] == "duplicate"        # the same wait, joined
    assert deliver(acr_event("myreg", "team/ondemand", image.digest, tag="v1")) == "duplicate"   # Event Grid too
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    [event] = topic_events()
    assert event["eventType"] == "Healer.ImageReplicated" and event["id"] == body["outcomeEventId"]
    assert status("team/ondemand", digest=image.digest)["status"] == "ready"


def test_a_tag_alone_is_resolved_at_the_login_server(functions, waits_env, fleet, replicator, topic_events):
    image = push(fleet, "team/bytag", "v3")
    replicator.copy_now("eastus", ["westus", "northeurope"], "team/bytag", "v3")
    code, body, _ = post(functions, {"registry": "myreg", "repository": "team/bytag", "tag": "v3"})
    assert code == 202 and body["digest"] == image.digest
    pump(lambda: len(topic_events()) >= 1 and queue_empty())
    assert status("team/bytag", tag="v3")["status"] == "ready"


def test_bad_requests_are_refused_with_a_reason(functions, waits_env, fleet):
    digest = "sha256:" + "c" * 64
    cases = [
        ({"registry": "myreg", "repository": "team/x"}, 400, "digest, a tag"),
        ({"registry": "myreg", "repository": "team/x", "digest": "sha256:1"}, 400, "digest must be"),
        ({"registry": "myreg", "repository": "Team X", "digest": digest}, 400, "valid names"),
        ({"registry": "myreg", "repository": "team/x", "digest": digest, "extra": 1}, 400, "unknown fields"),
        ({"registry": "myreg", "repository": "team/x", "tag": ["v1"]}, 400, "must be strings"),
        ({"registry": "other", "repository": "team/x", "digest": digest}, 404, "not watched"),
        ({"registry": "myreg", "repository": "team/none", "tag": "v1"}, 404, "not found at myreg.azurecr.io"),
        ([1, 2], 400, "JSON object"),
    ]
    for body, code, why in cases:
        got = post(functions, body)
        assert got[0] == code and why in got[1]["error"], (body, got)
    assert post(functions, None, raw=b"{not json")[0] == 400
    assert post(functions, None, raw=b"{" + b" " * 5000 + b"}")[0] == 413
    assert not records("recorded")


def test_healer_wait_cli_opens_the_wait_and_exits_0_once_pullable_everywhere(local_azure, fleet, replicator):
    """`healer wait` against Healer in the Functions host stand-in: no Event Grid delivery at all."""
    import os
    import subprocess
    import sys
    import uuid
    from pathlib import Path

    from drill.host import start_healer
    endpoints = {**fleet.endpoint_map(), "myreg.azurecr.io": fleet.url("eastus")}
    healer = start_healer(local_azure, {
        "HEALER_TABLE_PREFIX": "cliw" + uuid.uuid4().hex[:8],
        "HEALER_REPLICATION_REGISTRIES": json.dumps({"myreg": ["eastus", "westus", "northeurope"]}),
        "HEALER_REPLICATION_ENDPOINTS": json.dumps(endpoints),
        "HEALER_REPLICATION_BACKOFF": json.dumps({"baseSeconds": 0.5, "factor": 1.5, "maxSeconds": 1,
                                                  "minSeconds": 0.2, "jitter": 0.3})}, name="healer-cli-wait")
    try:
        image = push(fleet, "team/cliwait", "v9")
        replicator.schedule_copy("eastus", "team/cliwait", "v9", {"westus": 0.5, "northeurope": 1.0})
        env = {**os.environ, "HEALER_URL": healer.url, "HEALER_KEY": healer.key}
        run = lambda *a: subprocess.run([sys.executable, "-m", "cli", "--json", "wait", *a],  # noqa: E731
                                        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True,
                                        text=True, timeout=120)
        done = run("myreg", "team/cliwait", "--tag", "v9", "--poll", "0.5", "--timeout", "60")
        assert done.returncode == 0, done.stderr or done.stdout
        view = json.loads(done.stdout)
        assert view["status"] == "ready" and view["digest"] == image.digest
        assert {r["state"] for r in view["regions"].values()} == {"ready"}
        unwatched = run("other", "team/cliwait", "--tag", "v9")
        assert unwatched.returncode == 4 and "not watched" in unwatched.stdout
    finally:
        healer.stop()
