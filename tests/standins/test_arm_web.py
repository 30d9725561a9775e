"""The real azure-mgmt-web client + ManagedIdentityCredential against the identity and ARM Microsoft.Web stand-ins."""
from __future__ import annotations

import ssl
import time
from types import SimpleNamespace

import httpx
import pytest

from standins import tokens
from standins.arm_web import ArmWebControl
from standins.harness import free_port, make_test_ca, scratch_dir, start_python_server

pytestmark = pytest.mark.integration

SECRET = "standin-token-secret-not-a-real-one"
SUB = "00000000-0000-0000-0000-00000000a5b1"
RG = "rg-shop"
APP = "shop-web"
ARM_SCOPE = "https://management.azure.com/.default"
TIMEOUT = 15


@pytest.fixture(scope="module")
def stack():
    work = scratch_dir("healer-armweb-")
    ca = make_test_ca(work / "tls")
    id_port, arm_port = free_port(), free_port()
    identity = start_python_server("identity", "standins.identity", [
        "--port", str(id_port), "--secret", SECRET], id_port, work)  # plain http, as IDENTITY_ENDPOINT is in Azure
    try:
        arm = start_python_server("arm_web", "standins.arm_web", [
            "--port", str(arm_port), "--cert", str(ca.cert_path), "--key", str(ca.key_path),
            "--token-secret", SECRET, "--retry-after", "0.02"], arm_port, work)
    except Exception:
        identity.stop()
        raise
    ns = SimpleNamespace(ca=ca, identity_url=f"http://127.0.0.1:{id_port}/msi/token",
                         arm_url=f"https://127.0.0.1:{arm_port}", identity=identity, arm=arm)
    ns.control = ArmWebControl(ns.arm_url, ca.ca_path)
    yield ns
    ns.control.close()
    arm.stop()
    identity.stop()


@pytest.fixture(autouse=True)
def seeded(stack):
    c = stack.control
    c.reset()
    c.seed_app(RG, APP, subscription_id=SUB, sticky_app_settings=["SLOT_NAME"], slots={
        "production": {
            "app_settings": {"BUILD_ID": "100", "SLOT_NAME": "production", "SHARED": "prod"},
            "linux_fx_version": "PYTHON|3.11",
            "deployments": [{"id": "d100", "message": "build 100", "author": "ci",
                             "start_time": "2025-01-01T10:00:00Z", "end_time": "2025-01-01T10:02:00Z"}],
        },
        "staging": {
            "app_settings": {"BUILD_ID": "101", "SLOT_NAME": "staging", "SHARED": "stage"},
            "linux_fx_version": "PYTHON|3.12",
            "deployments": [{"id": "d101", "message": "build 101", "author": "ci",
                             "start_time": "2025-01-02T10:00:00Z", "end_time": "2025-01-02T10:02:00Z"}],
        },
    })
    yield c


def make_client(stack, credential=None):
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.web import WebSiteManagementClient

    return WebSiteManagementClient(credential or ManagedIdentityCredential(), SUB, base_url=stack.arm_url,
                                   credential_scopes=[ARM_SCOPE])


@pytest.fixture
def client(stack, monkeypatch):
    monkeypatch.setenv("IDENTITY_ENDPOINT", stack.identity_url)
    monkeypatch.setenv("IDENTITY_HEADER", SECRET)
    for k, v in stack.ca.env.items():
        monkeypatch.setenv(k, v)
    for var in ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "AZURE_CLIENT_ID"):
        monkeypatch.delenv(var, raising=False)
    with make_client(stack) as c:
        yield c


def entity(target="staging"):
    from azure.mgmt.web.models import CsmSlotEntity

    return CsmSlotEntity(target_slot=target, preserve_vnet=True)


def settings(client, slot=None) -> dict:
    if slot:
        return dict(client.web_apps.list_application_settings_slot(RG, APP, slot).properties)
    return dict(client.web_apps.list_application_settings(RG, APP).properties)


def wait_until(predicate, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met before the deadline")
        time.sleep(0.01)


# ------------------------------------------------------------------------------------------------ identity

def test_identity_endpoint_follows_the_app_service_contract(stack):
    params = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
    assert httpx.get(stack.identity_url, params=params).status_code == 401
    assert httpx.get(stack.identity_url, params=params, headers={"X-IDENTITY-HEADER": "wrong"}).status_code == 401
    r = httpx.get(stack.identity_url, params=params, headers={"X-IDENTITY-HEADER": SECRET})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["resource"] == params["resource"]
    assert int(body["expires_on"]) > time.time() + 600
    claims, code, _ = tokens.verify(body["access_token"], SECRET, tokens.ARM_AUDIENCES)
    assert code == "" and claims["oid"] and claims["appid"]


def test_managed_identity_credential_gets_a_token_over_http(client, stack):
    from azure.identity import ManagedIdentityCredential

    token = ManagedIdentityCredential().get_token(ARM_SCOPE)
    claims, code, _ = tokens.verify(token.token, SECRET, ["https://management.azure.com/"])
    assert code == "" and claims["aud"] == "https://management.azure.com"


# ------------------------------------------------------------------------------------------------ reads

def test_get_site_and_slot(client):
    site = client.web_apps.get(RG, APP)
    assert site.state == "Running" and site.default_host_name == f"{APP}.azurewebsites.net"
    assert site.id.endswith(f"/resourceGroups/{RG}/providers/Microsoft.Web/sites/{APP}")
    assert site.slot_swap_status is None and site.target_swap_slot is None
    assert site.site_config.linux_fx_version == "PYTHON|3.11"
    slot = client.web_apps.get_slot(RG, APP, "staging")
    assert slot.name == f"{APP}/staging" and slot.default_host_name == f"{APP}-staging.azurewebsites.net"


def test_unknown_site_or_slot_is_an_arm_404(client):
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError) as exc:
        client.web_apps.get(RG, "nope")
    assert exc.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as exc:
        client.web_apps.get_slot(RG, APP, "canary")
    assert exc.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as exc:
        client.web_apps.get("rg-missing", APP)
    assert exc.value.error.code == "ResourceGroupNotFound"


def test_app_settings_put_replaces_the_whole_dictionary(client):
    from azure.mgmt.web.models import StringDictionary

    assert settings(client)["BUILD_ID"] == "100"
    out = client.web_apps.update_application_settings(RG, APP, StringDictionary(properties={"ONLY": "one"}))
    assert dict(out.properties) == {"ONLY": "one"}
    assert settings(client) == {"ONLY": "one"}
    client.web_apps.update_application_settings_slot(RG, APP, "staging",
                                                     StringDictionary(properties={"BUILD_ID": "102"}))
    assert settings(client, "staging") == {"BUILD_ID": "102"}


def test_slot_config_names_and_config_web(client):
    from azure.mgmt.web.models import SlotConfigNamesResource

    names = client.web_apps.list_slot_configuration_names(RG, APP)
    assert names.app_setting_names == ["SLOT_NAME"]
    client.web_apps.update_slot_configuration_names(
        RG, APP, SlotConfigNamesResource(app_setting_names=["SLOT_NAME", "SHARED"]))
    assert client.web_apps.list_slot_configuration_names(RG, APP).app_setting_names == ["SLOT_NAME", "SHARED"]
    assert client.web_apps.get_configuration(RG, APP).linux_fx_version == "PYTHON|3.11"
    assert client.web_apps.get_configuration_slot(RG, APP, "staging").linux_fx_version == "PYTHON|3.12"


def test_deployments_newest_first(client, seeded):
    seeded.deploy(RG, APP, "staging", build_id="103", linux_fx_version="PYTHON|3.13")
    deps = list(client.web_apps.list_deployments_slot(RG, APP, "staging"))
    assert [d.message for d in deps] == ["Deployed build 103", "build 101"]
    assert deps[0].active is True and deps[1].active is False and deps[0].status == 4
    assert deps[1].start_time.year == 2025 and deps[0].end_time is not None
    assert settings(client, "staging")["BUILD_ID"] == "103"
    assert [d.name.split("/")[-1] for d in client.web_apps.list_deployments(RG, APP)] == ["d100"]


# ------------------------------------------------------------------------------------------------ swaps

def test_swap_with_production_moves_content_and_keeps_sticky_settings(client, seeded):
    poller = client.web_apps.begin_swap_slot_with_production(RG, APP, entity())
    assert poller.result(timeout=TIMEOUT) is None and poller.done() and poller.status() == "Succeeded"
    prod, stage = settings(client), settings(client, "staging")
    assert prod == {"BUILD_ID": "101", "SLOT_NAME": "production", "SHARED": "stage"}
    assert stage == {"BUILD_ID": "100", "SLOT_NAME": "staging", "SHARED": "prod"}
    assert client.web_apps.get_configuration(RG, APP).linux_fx_version == "PYTHON|3.12"
    assert [d.message for d in client.web_apps.list_deployments(RG, APP)] == ["build 101"]
    for site in (client.web_apps.get(RG, APP), client.web_apps.get_slot(RG, APP, "staging")):
        assert site.slot_swap_status.source_slot_name == "staging"
        assert site.slot_swap_status.destination_slot_name == "production"
        assert site.slot_swap_status.timestamp_utc is not None
    counters = seeded.counters()
    assert counters["swaps_accepted"] == 1 and counters["swaps_completed"] == 1


def test_swap_between_two_slots(client, seeded):
    seeded.patch_slot(RG, APP, "canary", app_settings={"BUILD_ID": "200"})
    client.web_apps.begin_swap_slot(RG, APP, "staging", entity("canary")).result(timeout=TIMEOUT)
    assert settings(client, "canary")["BUILD_ID"] == "101"
    assert settings(client, "staging")["BUILD_ID"] == "200"
    assert settings(client)["BUILD_ID"] == "100"


def test_swap_to_missing_slot_is_404(client):
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError):
        client.web_apps.begin_swap_slot_with_production(RG, APP, entity("nope"))


def test_continuation_token_resumes_from_a_fresh_client(client, stack, seeded):
    seeded.set_swap_behavior(hang=True)
    first = client.web_apps.begin_swap_slot_with_production(RG, APP, entity())
    token = first.continuation_token()
    assert not first.done()
    with make_client(stack) as fresh:
        resumed = fresh.web_apps.begin_swap_slot_with_production(RG, APP, entity(), continuation_token=token)
        assert not resumed.done()
        seeded.set_swap_behavior(hang=False)
        assert len(seeded.release_swaps()) == 1
        resumed.result(timeout=TIMEOUT)
        assert resumed.status() == "Succeeded"
    first.result(timeout=TIMEOUT)
    assert settings(client)["BUILD_ID"] == "101"
    assert seeded.counters()["swaps_accepted"] == 1


def test_concurrent_swap_is_409_swap_site_slots(client, seeded):
    from azure.core.exceptions import ResourceExistsError
    from azure.mgmt.web.models import StringDictionary

    seeded.set_swap_behavior(hang=True)
    first = client.web_apps.begin_swap_slot_with_production(RG, APP, entity())
    with pytest.raises(ResourceExistsError) as exc:
        client.web_apps.begin_swap_slot_with_production(RG, APP, entity())
    assert exc.value.status_code == 409 and exc.value.error.code == "Conflict"
    assert "SwapSiteSlots" in exc.value.error.message
    with pytest.raises(ResourceExistsError):  # the site is locked for changes while it swaps
        client.web_apps.update_application_settings(RG, APP, StringDictionary(properties={"X": "1"}))
    seeded.set_swap_behavior(hang=False)
    seeded.release_swaps()
    first.result(timeout=TIMEOUT)
    counters = seeded.counters()
    assert counters["swaps_rejected_conflict"] == 1 and counters["swaps_completed"] == 1


def test_injected_409_names_swap_site_slots(client, seeded):
    from azure.core.exceptions import ResourceExistsError

    seeded.inject_swap_conflict(APP, "staging")
    with pytest.raises(ResourceExistsError) as exc:
        client.web_apps.begin_swap_slot_with_production(RG, APP, entity())
    assert "OperationName: SwapSiteSlots" in exc.value.error.message
    assert seeded.counters()["swaps_accepted"] == 0


def test_429_is_retried_by_the_sdk(client, seeded):
    seeded.inject_fault("POST", r"/slotsswap$", 429, code="TooManyRequests", message="Throttled",
                        headers={"Retry-After": "0.05"})
    seeded.inject_fault("GET", r"/config/web$", 429, code="TooManyRequests", headers={"Retry-After": "0.05"})
    client.web_apps.begin_swap_slot_with_production(RG, APP, entity()).result(timeout=TIMEOUT)
    assert client.web_apps.get_configuration(RG, APP).linux_fx_version == "PYTHON|3.12"
    posts = [r for r in seeded.requests() if r["route"] == "slots_swap"]
    assert [r["status"] for r in posts] == [429, 202]
    assert seeded.counters()["faults_injected"] == 2


def test_swap_failing_with_allocation_changed(client, seeded):
    from azure.core.exceptions import HttpResponseError

    seeded.inject_fault("POST", r"/slotsswap$", 400, code="BadRequest",
                        message="Cannot swap site slots because the site allocation changed.")
    with pytest.raises(HttpResponseError) as exc:
        client.web_apps.begin_swap_slot_with_production(RG, APP, entity())
    assert exc.value.status_code == 400 and "allocation changed" in exc.value.error.message
    worker = "Cannot swap slots for site because the worker process for 'staging' slot could not be started."
    seeded.set_swap_behavior(fail={"status": 400, "code": "BadRequest", "message": worker})
    poller = client.web_apps.begin_swap_slot_with_production(RG, APP, entity())
    with pytest.raises(HttpResponseError) as exc:
        poller.result(timeout=TIMEOUT)
    assert exc.value.status_code == 400 and "worker process" in str(exc.value)
    assert settings(client)["BUILD_ID"] == "100"
    assert seeded.counters()["swaps_failed"] == 1


def test_slow_swap_reports_in_progress_then_completes(client, seeded):
    seeded.set_swap_behavior(duration_seconds=0.3)
    poller = client.web_apps.begin_swap_slot_with_production(RG, APP, entity())
    assert seeded.app(RG, APP)["running_swap"]["source"] == "staging"
    wait_until(poller.done)
    assert seeded.app(RG, APP)["slots"]["production"]["app_settings"]["BUILD_ID"] == "101"
    polls = [r for r in seeded.requests() if r["route"] == "operation_result"]
    assert polls[0]["status"] == 202 and polls[-1]["status"] == 200


# ------------------------------------------------------------------------------------------------ auth

class StaticToken:
    def __init__(self, token: str):
        self.token = token

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken(self.token, int(time.time()) + 3600)


def test_bad_token_is_401(stack, monkeypatch):
    from azure.core.exceptions import ClientAuthenticationError

    for k, v in stack.ca.env.items():
        monkeypatch.setenv(k, v)
    with make_client(stack, StaticToken("not-a-jwt")) as bad:
        with pytest.raises(ClientAuthenticationError) as exc:
            bad.web_apps.get(RG, APP)
    assert exc.value.status_code == 401 and exc.value.error.code == "InvalidAuthenticationToken"


def test_raw_auth_and_api_version_errors(stack):
    url = f"{stack.arm_url}/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Web/sites/{APP}"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(stack.ca.ca_path))) as http:
        r = http.get(url, params={"api-version": "2025-05-01"})
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer ")
        assert r.json()["error"]["code"] == "AuthenticationFailed"
        vault, _ = tokens.mint(SECRET, "https://vault.azure.net", object_id="o", app_id="a")
        r = http.get(url, params={"api-version": "2025-05-01"}, headers={"Authorization": f"Bearer {vault}"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
        old, _ = tokens.mint(SECRET, "https://management.azure.com/", object_id="o", app_id="a",
                             now=time.time() - 7200)
        r = http.get(url, params={"api-version": "2025-05-01"}, headers={"Authorization": f"Bearer {old}"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "ExpiredAuthenticationToken"
        good, _ = tokens.mint(SECRET, "https://management.azure.com/", object_id="o", app_id="a")
        r = http.get(url, headers={"Authorization": f"Bearer {good}"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "MissingApiVersionParameter"
        r = http.get(url, params={"api-version": "2025-05-01"}, headers={"Authorization": f"Bearer {good}"})
        assert r.status_code == 200 and r.json()["properties"]["state"] == "Running"
