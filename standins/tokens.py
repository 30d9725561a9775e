"""Bearer tokens shared by the stand-ins.

The identity stand-in mints HS256 JWTs signed with a shared secret; every other stand-in verifies them with
`check_bearer`, which answers the request itself (ARM-shaped 401 + WWW-Authenticate) when the token is bad.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any, Iterable

TENANT_ID = "72f988bf-0000-4000-8000-00000000beef"  # a fixed fake tenant for the local stand-ins
ISSUER = f"https://sts.windows.net/{TENANT_ID}/"
ARM_AUDIENCES = ("https://management.azure.com/", "https://management.core.windows.net/")
MAX_TOKEN_CHARS = 8192


def normalize_audience(value: str) -> str:
    """'https://management.azure.com/.default', '.../' and '...' all name the same resource."""
    value = value.strip()
    if value.endswith("/.default"):
        value = value[: -len("/.default")]
    return value.rstrip("/").lower()


def mint(secret: str, audience: str, *, object_id: str, app_id: str, ttl_seconds: int = 3600,
         now: float | None = None, tenant_id: str = TENANT_ID) -> tuple[str, int]:
    """Return (jwt, expires_on epoch seconds) for `audience`."""
    import jwt

    issued = int(now if now is not None else time.time())
    expires_on = issued + int(ttl_seconds)
    claims = {
        "aud": audience, "iss": ISSUER, "tid": tenant_id, "oid": object_id, "sub": object_id,
        "appid": app_id, "idtyp": "app", "iat": issued, "nbf": issued - 5, "exp": expires_on,
        "uti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm="HS256"), expires_on


def verify(token: str, secret: str, audiences: Iterable[str], now: float | None = None) -> tuple[dict | None, str, str]:
    """Pure check of one token: (claims, "", "") when good, else (None, ARM error code, message)."""
    import jwt

    if len(token) > MAX_TOKEN_CHARS:
        return None, "InvalidAuthenticationToken", "The access token is invalid."
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"verify_aud": False, "verify_exp": False})
    except jwt.PyJWTError:
        return None, "InvalidAuthenticationToken", "The access token is invalid."
    current = now if now is not None else time.time()
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp <= current:
        return None, "ExpiredAuthenticationToken", (
            "The access token expiry UTC time is earlier than current UTC time.")
    allowed = {normalize_audience(a) for a in audiences}
    aud = claims.get("aud")
    if not isinstance(aud, str) or normalize_audience(aud) not in allowed:
        return None, "InvalidAuthenticationTokenAudience", (
            f"The access token has been obtained for wrong audience or resource '{str(aud)[:200]}'. It should "
            f"exactly match with one of the allowed audiences {', '.join(repr(a) for a in sorted(allowed))}.")
    return claims, "", ""


def check_bearer(handler: Any, secret: str, audiences: Iterable[str]) -> dict | None:
    """Return the token's claims, or send an ARM-shaped 401 on `handler` and return None.

    Codes follow ARM: AuthenticationFailed (no/garbled Authorization header), InvalidAuthenticationToken
    (bad signature/format), ExpiredAuthenticationToken, InvalidAuthenticationTokenAudience.
    """
    header = handler.headers.get("Authorization") or ""
    scheme, _, token = header.partition(" ")
    if not header:
        code, message = "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
        claims = None
    elif scheme.lower() != "bearer" or not token.strip():
        code, message = "AuthenticationFailed", "Authentication failed. The 'Authorization' header is invalid."
        claims = None
    else:
        claims, code, message = verify(token.strip(), secret, audiences)
    if claims is not None:
        return claims
    challenge = (f'Bearer authorization_uri="https://login.microsoftonline.com/{TENANT_ID}", '
                 f'error="invalid_token", error_description={json.dumps(message)}')
    handler.send_json(401, {"error": {"code": code, "message": message}}, {"WWW-Authenticate": challenge})
    return None
