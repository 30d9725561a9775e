"""ACR token flow against the stand-in login server (HTTPS, test CA) proxying real docker-registry instances."""
from __future__ import annotations

import time

import httpx
import jwt
import pytest

from healers.replication.acr_auth import AcrAuthError, AcrTokenProvider, Challenge, parse_www_authenticate
from healers.replication.registry_client import RegistryProber, regional_host
from standins.harness import free_port, start_python_server
from standins.registries import Replicator, push_image

pytestmark = pytest.mark.integration
TENANT = "409520d4-8100-4d1d-ad47-72432ddcc120"
LOGIN = "myreg.azurecr.io"


def test_parse_challenge_from_fixture():
    c = parse_www_authenticate('Bearer realm="https://contosoregistry.azurecr.io/oauth2/token",'
                               'service="contosoregistry.azurecr.io",scope="registry:catalog:*"')
    assert c == Challenge("https://contosoregistry.azurecr.io/oauth2/token", "contosoregistry.azurecr.io",
                          "registry:catalog:*")
    assert parse_www_authenticate('Basic realm="x"') is None
    assert parse_www_authenticate("Bearer service=x") is None


@pytest.fixture(scope="module")
def acr(fleet, repl_workdir, test_ca):
    """One challenging proxy per region; the realm (login server) is served by the eastus one."""
    servers, ports = [], {}
    try:
        for region in ("eastus", "westus"):
            port = free_port()
            servers.append(start_python_server(f"acr-{region}", "standins.acr_token", [
                "--port", str(port), "--cert", str(test_ca.cert_path), "--key", str(test_ca.key_path),
                "--upstream", fleet.url(region), "--service", LOGIN, "--realm", f"https://{LOGIN}/oauth2/token",
                "--tenant", TENANT, "--secret", "shared-test-secret-0123456789abcdef0123"], port, repl_workdir))
            ports[region] = port
        image = push_image(fleet.url("eastus"), "team/private", "v1", seed="private")
        push_image(fleet.url("eastus"), "team/other", "v1", seed="other")
        Replicator(fleet).copy_now("eastus", ["westus"], "team/private", "v1")
        yield ports, image
    finally:
        for s in servers:
            s.stop()


def ssl_ctx(ca):
    import ssl
    return ssl.create_default_context(cafile=str(ca.ca_path))


def aad_token(tenant=TENANT, aud="https://containerregistry.azure.net"):
    now = int(time.time())
    return jwt.encode({"aud": aud, "tid": tenant, "oid": "healer-mi", "iat": now, "exp": now + 3600},
                      "aad-test-key-0123456789abcdef0123456789", algorithm="HS256")


class FakeClock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


def setup(acr, test_ca, clock=None, aad=aad_token):
    ports, _ = acr
    endpoints = {regional_host("myreg", r): f"https://127.0.0.1:{p}" for r, p in ports.items()}
    endpoints[LOGIN] = f"https://127.0.0.1:{ports['eastus']}"
    http = httpx.Client(verify=ssl_ctx(test_ca), timeout=5.0)
    auth = AcrTokenProvider(aad, tenant=TENANT, endpoint_map=endpoints, client=http, clock=clock or time.time)
    return RegistryProber(endpoints, auth=auth, client=http), auth, http


def stats(acr, test_ca, region="eastus"):
    ports, _ = acr
    return httpx.get(f"https://127.0.0.1:{ports[region]}/_standin/stats", verify=ssl_ctx(test_ca)).json()


def test_anonymous_probe_sees_challenge_as_unauthorized(acr, test_ca):
    ports, image = acr
    prober = RegistryProber({regional_host("myreg", "eastus"): f"https://127.0.0.1:{ports['eastus']}"},
                            client=httpx.Client(verify=ssl_ctx(test_ca)))
    probe = prober.head_manifest(regional_host("myreg", "eastus"), "team/private", image.digest, image.digest)
    assert (probe.status, probe.http_status) == ("unauthorized", 401)


def test_exchange_token_challenge_and_cache_per_host_and_scope(acr, test_ca):
    _, image = acr
    clock = FakeClock()
    prober, auth, http = setup(acr, test_ca, clock)
    base = stats(acr, test_ca)
    east, west = regional_host("myreg", "eastus"), regional_host("myreg", "westus")
    try:
        p = prober.head_manifest(east, "team/private", image.digest, image.digest)
        assert (p.status, p.digest) == ("present", image.digest)
        assert auth.calls == {"exchange": 1, "token": 1}
        # same (host, scope): served from cache, no new challenge or token
        assert prober.head_manifest(east, "team/private", "v1").digest == image.digest
        assert auth.calls == {"exchange": 1, "token": 1}
        # another host, same scope: its own access token; the refresh token is reused
        assert prober.head_manifest(west, "team/private", image.digest, image.digest).status == "present"
        assert auth.calls == {"exchange": 1, "token": 2}
        # same host, another scope
        assert prober.head_manifest(east, "team/other", "v1").status == "present"
        assert auth.calls == {"exchange": 1, "token": 3}
        now = stats(acr, test_ca)
        assert now["exchange"] - base.get("exchange", 0) == 1
        assert now["token"] - base.get("token", 0) == 3
        assert {"repository:team/private:pull", "repository:team/other:pull"} <= set(now["token_items"])
        # expiry: past the access token's exp (minus margin) a new one is fetched, the refresh token still serves
        clock.now += 300
        assert prober.head_manifest(east, "team/private", "v1").status == "present"
        assert auth.calls == {"exchange": 1, "token": 4}
        # past the refresh token's exp too: exchange again
        clock.now += 3600
        assert prober.head_manifest(east, "team/private", "v1").status == "present"
        assert auth.calls == {"exchange": 2, "token": 5}
    finally:
        http.close()


def test_revoked_tokens_are_replaced(acr, test_ca):
    ports, image = acr
    prober, auth, http = setup(acr, test_ca)
    east = regional_host("myreg", "eastus")
    try:
        assert prober.head_manifest(east, "team/private", image.digest, image.digest).status == "present"
        for port in ports.values():
            assert httpx.post(f"https://127.0.0.1:{port}/_standin/revoke", verify=ssl_ctx(test_ca)).status_code == 200
        # cached access token now 401s -> challenge -> token with old refresh token 401s -> exchange again
        assert prober.head_manifest(east, "team/private", image.digest, image.digest).status == "present"
        assert auth.calls == {"exchange": 2, "token": 3}
    finally:
        http.close()


def test_bad_aad_token_is_unauthorized_without_leaking(acr, test_ca):
    _, image = acr
    bad = aad_token(tenant="someone-else")
    prober, auth, http = setup(acr, test_ca, aad=lambda: bad)
    try:
        p = prober.head_manifest(regional_host("myreg", "eastus"), "team/private", image.digest, image.digest)
        assert p.status == "unauthorized" and "exchange" in p.detail and bad not in p.detail
    finally:
        http.close()


def test_realm_on_another_host_is_refused():
    auth = AcrTokenProvider(lambda: "aad", client=httpx.Client())
    with pytest.raises(AcrAuthError, match="refusing"):
        auth.token_for_challenge("myreg.eastus.geo.azurecr.io",
                                 Challenge("https://evil.example/oauth2/token", "myreg.azurecr.io", "repository:a:pull"))
    with pytest.raises(AcrAuthError, match="refusing"):
        auth.token_for_challenge("myreg.eastus.geo.azurecr.io",
                                 Challenge("http://myreg.azurecr.io/oauth2/token", "myreg.azurecr.io", "repository:a:pull"))


def test_entra_token_failure_is_an_unauthorized_region_not_a_crashed_check(acr, test_ca):
    """azure-identity raises ClientAuthenticationError (IMDS down, no role assignment). That must become this
    region's 'unauthorized' observation (the wait keeps going and finally names it), not an exception that fails
    the whole check until the message is poisoned and the wait abandoned."""
    from azure.core.exceptions import ClientAuthenticationError
    _, image = acr

    def no_token() -> str:
        raise ClientAuthenticationError("ManagedIdentityCredential authentication unavailable")
    prober, auth, http = setup(acr, test_ca, aad=no_token)
    try:
        p = prober.head_manifest(regional_host("myreg", "eastus"), "team/private", image.digest, image.digest)
        assert (p.status, p.http_status) == ("unauthorized", 401)
        assert "no Entra token (ClientAuthenticationError)" in p.detail
    finally:
        http.close()


def test_token_endpoint_429_is_throttling_not_unauthorized(acr, test_ca, repl_workdir):
    """ACR throttles its token endpoint too: a 429 there is the replica's `throttled` state, with Retry-After."""
    from standins.registry_front import set_rules, start_front, stats as front_stats
    ports, image = acr
    server, front = start_front(f"https://127.0.0.1:{ports['eastus']}", repl_workdir, "front-token",
                                upstream_ca=str(test_ca.ca_path))
    try:
        set_rules(front, {"status": 429, "retryAfter": "7", "paths": "^/oauth2/"})
        endpoints = {regional_host("myreg", "westus"): f"https://127.0.0.1:{ports['westus']}", LOGIN: front}
        http = httpx.Client(verify=ssl_ctx(test_ca), timeout=5.0)
        auth = AcrTokenProvider(aad_token, tenant=TENANT, endpoint_map=endpoints, client=http)
        prober = RegistryProber(endpoints, auth=auth, client=http)
        west = regional_host("myreg", "westus")
        probe = prober.head_manifest(west, "team/private", image.digest, image.digest)
        assert (probe.status, probe.http_status, probe.retry_after) == ("throttled", 429, 7.0)
        assert "429" in probe.detail and front_stats(front)["byStatus"] == {"429": 1}
        set_rules(front)   # the throttling ends: the same prober gets its token and the manifest
        assert prober.head_manifest(west, "team/private", image.digest, image.digest).status == "present"
        http.close()
    finally:
        server.stop()
