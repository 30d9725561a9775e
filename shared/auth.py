"""Inbound authentication beyond the function key: the operator key, and Entra ID bearer tokens.

Senders and operators hold different secrets. The key an action group or Event Grid subscription holds is a
per-function key of the intake function it calls (created by the infra), so the Functions host opens only that
function to it. Operator routes (approvals, controls, re-arm, release, runs: purpose "approver") need more:

* `function-key` mode: the Functions host has checked a key, and the request must also carry the operator key
  (setting HEALER_OPERATOR_KEY, a Key Vault reference in Azure) in the `x-healer-operator-key` header, compared in
  constant time. No alert sender holds it. Any holder of the operator key can approve: the approver's name is what
  they type. Without HEALER_OPERATOR_KEY, operator routes are refused.
* `entra` mode: every request must carry a bearer token whose signature verifies against the tenant's JWKS and
  whose issuer, audience, expiry and roles are right; webhook calls must come from Azure Monitor's app id; the
  approver is the token's identity, and a policy rule may require an app role or group (shared.approvals).
"""
from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass
from typing import Any, Literal

from shared.config import Settings

Purpose = Literal["webhook", "approver", "reader"]
_jwks_clients: dict[str, Any] = {}
_jwks_lock = threading.Lock()


class AuthError(Exception):
    """Authentication failed; the message is safe to return to the caller (it never echoes the token)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    name: str
    method: str
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


OPERATOR_HEADER = "x-healer-operator-key"


def _jwks_client(url: str):
    import jwt
    with _jwks_lock:
        client = _jwks_clients.get(url)
        if client is None:
            client = jwt.PyJWKClient(url, cache_keys=True, lifespan=3600, timeout=10)
            _jwks_clients[url] = client
        return client


def authenticate(settings: Settings, headers: dict[str, str], purpose: Purpose) -> Principal:
    if settings.auth_mode == "function-key":
        if purpose == "approver":
            return _operator_key(settings, headers)
        return Principal(name="function-key", method="function-key")
    return _entra(settings, headers, purpose)


def _operator_key(settings: Settings, headers: dict[str, str]) -> Principal:
    expected = settings.get("HEALER_OPERATOR_KEY") or ""
    if not expected or expected.startswith("@Microsoft.KeyVault("):
        raise AuthError(403, "operator routes need the operator key: set HEALER_OPERATOR_KEY (or use "
                             "HEALER_AUTH_MODE=entra); a function key alone never approves or changes controls")
    given = next((v for k, v in headers.items() if k.lower() == OPERATOR_HEADER), "")
    if not given:
        raise AuthError(401, f"the operator key is required in the {OPERATOR_HEADER} header")
    if len(given) > 512 or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthError(403, "the operator key is not valid")
    return Principal(name="operator-key", method="operator-key")


def _entra(settings: Settings, headers: dict[str, str], purpose: Purpose) -> Principal:
    import jwt
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    if not auth.lower().startswith("bearer ") or len(auth) > 16384:
        raise AuthError(401, "a bearer token is required")
    token = auth[7:].strip()
    tenant = settings.require("HEALER_ENTRA_TENANT_ID")
    audience = settings.require("HEALER_ENTRA_AUDIENCE")
    jwks_url = settings.get("HEALER_ENTRA_JWKS_URL") or \
        f"https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"
    issuers_setting = settings.get("HEALER_ENTRA_ISSUERS")
    issuers = [i.strip() for i in issuers_setting.split(",")] if issuers_setting else [
        f"https://sts.windows.net/{tenant}/", f"https://login.microsoftonline.com/{tenant}/v2.0"]
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in ("RS256",):
            raise AuthError(401, "token must be signed with RS256")
        key = _jwks_client(jwks_url).get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=issuers,
                            options={"require": ["exp", "iat", "iss", "aud"]}, leeway=60)
    except AuthError:
        raise
    except jwt.ExpiredSignatureError:
        raise AuthError(401, "token expired") from None
    except jwt.InvalidAudienceError:
        raise AuthError(401, "token audience is not Healer") from None
    except jwt.InvalidIssuerError:
        raise AuthError(401, "token issuer is not the configured tenant") from None
    except jwt.PyJWKClientConnectionError:
        # Our fetch of the tenant's keys failed, not the caller: 503 so the action group retries the alert.
        raise AuthError(503, "token signing keys are unavailable right now; retry") from None
    except jwt.PyJWKClientError:
        raise AuthError(401, "token signing key is unknown") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(401, f"invalid token: {type(exc).__name__}") from None
    roles = tuple(r for r in claims.get("roles", []) if isinstance(r, str))
    if purpose == "webhook":
        needed = settings.require("HEALER_ENTRA_WEBHOOK_ROLE")
        caller = claims.get("appid") or claims.get("azp")
        if caller != settings.require("HEALER_ENTRA_MONITOR_APP_ID"):
            raise AuthError(403, "caller is not Azure Monitor's action group service")
        accepted = {needed}
    elif purpose == "reader":
        accepted = {settings.require("HEALER_ENTRA_READER_ROLE"), settings.require("HEALER_ENTRA_APPROVER_ROLE")}
    else:
        accepted = {settings.require("HEALER_ENTRA_APPROVER_ROLE")}
    if not accepted & set(roles):
        raise AuthError(403, f"token lacks the role {' or '.join(sorted(accepted))}")
    name = str(claims.get("preferred_username") or claims.get("upn") or claims.get("oid") or claims.get("sub"))
    groups = tuple(g for g in claims.get("groups", []) if isinstance(g, str))[:200]
    return Principal(name=name[:200], method="entra", roles=roles, groups=groups)
