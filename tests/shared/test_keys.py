"""Senders and operators hold different keys: the per-function key an action group or Event Grid subscription holds
opens only its intake function (the Functions host stand-in checks keys as Azure does), and operator routes need
the operator key on top of any function key."""
from __future__ import annotations

import secrets
import sys

import httpx
import pytest

from standins.harness import free_port, start_process
from tests.conftest import OPERATOR, OPERATOR_KEY
from tests.functions import trigger

pytestmark = pytest.mark.integration
INTAKE = ("rollback_alert", "downshift_alert", "downshift_budget")
OPERATOR_ROUTES = [("POST", "approvals/rollback/abc", {"decision": "approve", "by": "me"}),
                   ("POST", "controls", {"kill": False, "by": "me"}),
                   ("POST", "rollback/rearm", {"resourceId": "/subscriptions/x", "by": "me"}),
                   ("POST", "downshift/release", {"resourceId": "/subscriptions/x", "tenant": "*", "by": "me"}),
                   ("POST", "errors/run", {"hours": 1, "by": "me"})]


@pytest.fixture
def host(local_azure, storage_env, workdir):
    port, host_key = free_port(), secrets.token_hex(16)
    keys = {name: secrets.token_hex(16) for name in (*INTAKE, "eventgrid_extension")}
    server = start_process("keys-host", [sys.executable, "-m", "standins.funchost", "--port", str(port),
                                         f"--key={host_key}", *(f"--function-key={n}={k}" for n, k in keys.items())],
                           {"http": port}, workdir, env={**local_azure.env(), **storage_env})
    try:
        yield httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30), host_key, keys
    finally:
        server.stop()


def _path(route: str) -> str:
    return "/api/" + route.replace("{healer}", "rollback").replace("{id}", "abc")


def test_an_intake_key_opens_only_its_intake_function(host, functions):
    client, host_key, keys = host
    http_functions = {name: trigger(f) for name, f in functions.items() if trigger(f)["type"] == "httpTrigger"
                      and trigger(f)["authLevel"].upper() != "ANONYMOUS"}
    anonymous = {name: trigger(f) for name, f in functions.items() if trigger(f)["type"] == "httpTrigger"
                 and trigger(f)["authLevel"].upper() == "ANONYMOUS"}
    # Without a key: the console's static files (GET only, no data) and the signed approval links (the HMAC
    # signature is the credential: tests/notify).
    assert all(t["methods"] == ["GET"] for n, t in anonymous.items() if n != "approval_link")
    assert set(anonymous) == {"console_page", "console_asset", "approval_link"}
    for intake in INTAKE:
        key = {"x-functions-key": keys[intake], **OPERATOR}   # even with the operator key stolen alongside
        for name, t in http_functions.items():
            if name == intake:
                continue
            for method in t["methods"]:
                resp = client.request(method.upper(), _path(t["route"]), headers=key, json={})
                assert resp.status_code == 401, (intake, name, method, resp.status_code)
        own = client.post(_path(http_functions[intake]["route"]), headers={"x-functions-key": keys[intake]},
                          json={"not": "an alert"})
        assert own.status_code == 400          # its own function: opened, and the body judged
    for method, route, body in OPERATOR_ROUTES:  # every operator route, every intake key: 401 or 403
        for intake in INTAKE:
            resp = client.request(method, f"/api/{route}", headers={"x-functions-key": keys[intake]}, json=body)
            assert resp.status_code in (401, 403), (route, intake)


def test_operator_routes_need_the_operator_key_even_with_the_host_key(host):
    client, host_key, keys = host
    for method, route, body in OPERATOR_ROUTES:
        bare = client.request(method, f"/api/{route}", headers={"x-functions-key": host_key}, json=body)
        wrong = client.request(method, f"/api/{route}", headers={"x-functions-key": host_key,
                                                                  "x-healer-operator-key": "guess"}, json=body)
        right = client.request(method, f"/api/{route}", headers={"x-functions-key": host_key,
                                                                  "x-healer-operator-key": OPERATOR_KEY}, json=body)
        assert bare.status_code == 401 and "x-healer-operator-key" in bare.text, route
        assert wrong.status_code == 403, route
        assert right.status_code not in (401, 403), (route, right.status_code, right.text)
    reader = client.get("/api/audit", headers={"x-functions-key": host_key})
    assert reader.status_code == 200                           # reading needs no operator key
    eventgrid = client.post("/runtime/webhooks/eventgrid?functionName=replication_events",
                            headers={"x-functions-key": keys["rollback_alert"]}, json=[])
    assert eventgrid.status_code == 401                        # an action group's key is not Event Grid's
