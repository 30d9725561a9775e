"""Entra ID secure-webhook validation with keys generated here and a JWKS served over HTTP by a real process."""
from __future__ import annotations

import json
import sys
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth import AuthError, authenticate
from shared.config import Settings
from standins.harness import free_port, scratch_dir, start_process

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
AUDIENCE = "api://healer-test"
MONITOR = "461e8683-5575-4561-ac7f-899cc907d62a"


@pytest.fixture(scope="module")
def keys():
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    work = scratch_dir()
    (work / "keys").write_text(json.dumps({"keys": [jwk]}))
    port = free_port()
    server = start_process("jwks", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                    "--directory", str(work)], {"http": port}, work)
    yield signing, stranger, f"http://127.0.0.1:{port}/keys"
    server.stop()


@pytest.fixture
def settings(keys):
    return Settings({"HEALER_AUTH_MODE": "entra", "HEALER_ENTRA_TENANT_ID": TENANT, "HEALER_ENTRA_AUDIENCE": AUDIENCE,
                     "HEALER_ENTRA_JWKS_URL": keys[2]})


def token(key, kid="k1", **overrides):
    now = int(time.time())
    claims = {"iss": f"https://sts.windows.net/{TENANT}/", "aud": AUDIENCE, "iat": now, "nbf": now,
              "exp": now + 3600, "appid": MONITOR, "roles": ["ActionGroupsSecureWebhook"], "oid": "o-1"}
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def auth(settings, tok, purpose="webhook"):
    return authenticate(settings, {"Authorization": f"Bearer {tok}"}, purpose)


def test_valid_secure_webhook_token(settings, keys):
    principal = auth(settings, token(keys[0]))
    assert principal.method == "entra" and "ActionGroupsSecureWebhook" in principal.roles


def test_v2_issuer_is_accepted(settings, keys):
    assert auth(settings, token(keys[0], iss=f"https://login.microsoftonline.com/{TENANT}/v2.0")).name == "o-1"


@pytest.mark.parametrize("overrides,status,fragment", [
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, 401, "expired"),
    ({"aud": "api://someone-else"}, 401, "audience"),
    ({"iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/"}, 401, "issuer"),
    ({"roles": ["Reader"]}, 403, "role"),
    ({"appid": "00000000-0000-0000-0000-000000000001"}, 403, "Azure Monitor"),
])
def test_bad_tokens_are_refused(settings, keys, overrides, status, fragment):
    with pytest.raises(AuthError) as err:
        auth(settings, token(keys[0], **overrides))
    assert err.value.status == status and fragment in err.value.reason


def test_unsigned_token_is_refused(settings):
    unsigned = jwt.encode({"aud": AUDIENCE, "appid": MONITOR, "roles": ["ActionGroupsSecureWebhook"]}, None,
                          algorithm="none")
    with pytest.raises(AuthError) as err:
        auth(settings, unsigned)
    assert err.value.status == 401 and "RS256" in err.value.reason


def test_token_signed_by_an_unknown_key_is_refused(settings, keys):
    with pytest.raises(AuthError) as err:
        auth(settings, token(keys[1]))
    assert err.value.status == 401
    with pytest.raises(AuthError):
        auth(settings, token(keys[1], kid="k-unknown"))


def test_missing_bearer_and_function_key_mode(settings):
    with pytest.raises(AuthError) as err:
        authenticate(settings, {}, "webhook")
    assert err.value.status == 401
    assert authenticate(Settings({}), {}, "webhook").method == "function-key"


def test_approver_role(settings, keys):
    with pytest.raises(AuthError):
        auth(settings, token(keys[0]), "approver")
    principal = auth(settings, token(keys[0], roles=["Healer.Approver"], preferred_username="oncall@contoso.com"),
                     "approver")
    assert principal.name == "oncall@contoso.com"


def test_reader_role_reads_but_cannot_approve(settings, keys):
    reader = token(keys[0], roles=["Healer.Reader"])
    assert auth(settings, reader, "reader").roles == ("Healer.Reader",)
    with pytest.raises(AuthError) as err:
        auth(settings, reader, "approver")
    assert err.value.status == 403
    assert auth(settings, token(keys[0], roles=["Healer.Approver"]), "reader").method == "entra"
    with pytest.raises(AuthError):
        auth(settings, token(keys[0], roles=["ActionGroupsSecureWebhook"]), "reader")


def test_unreachable_jwks_is_503_so_the_sender_retries(keys):
    """Our failure to fetch the tenant's keys is not the caller's fault: a 401 would make Azure Monitor drop the alert."""
    down = Settings({"HEALER_AUTH_MODE": "entra", "HEALER_ENTRA_TENANT_ID": TENANT, "HEALER_ENTRA_AUDIENCE": AUDIENCE,
                     "HEALER_ENTRA_JWKS_URL": f"http://127.0.0.1:{free_port()}/keys"})
    with pytest.raises(AuthError) as err:
        auth(down, token(keys[0]))
    assert err.value.status == 503
