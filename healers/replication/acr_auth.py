"""ACR data-plane auth: Entra (AAD) access token -> POST /oauth2/exchange -> ACR refresh token ->
POST /oauth2/token (scope from the registry's 401 `WWW-Authenticate: Bearer realm,service,scope` challenge) ->
ACR access token, cached per (host, scope) until shortly before it expires.

Follows Azure/acr docs/AAD-OAuth.md (see /work/shared/eval_fixtures/acr_auth). An anonymous registry never
challenges, so none of this runs for it. Tokens are never logged.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import httpx

ACR_AAD_SCOPE = "https://containerregistry.azure.net/.default"
MAX_TOKEN_RESPONSE = 64 * 1024
_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')


class AcrAuthError(RuntimeError):
    """The token flow failed; the message names the step and HTTP status, never a token.

    `kind` is the probe state it means for the replica: "unauthorized" (a token refused), "throttled" (the token
    endpoint answered 429: throttling, with its `retry_after`), "forbidden" (403), "unresolvable" (DNS), "error"."""

    def __init__(self, message: str, kind: str = "unauthorized", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date); None when absent or malformed."""
    if not value or len(value) > 64:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 86400))
    try:
        from email.utils import parsedate_to_datetime
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def is_dns_failure(exc: BaseException) -> bool:
    """True when a connection error was caused by name resolution (socket.gaierror somewhere in its chain)."""
    import socket
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, socket.gaierror):
            return True
        cur, seen = cur.__cause__ or cur.__context__, seen + 1
    return False


@dataclass(frozen=True)
class Challenge:
    realm: str
    service: str
    scope: str | None


def parse_www_authenticate(value: str | None) -> Challenge | None:
    """Parse `Bearer realm="...",service="...",scope="..."`; None for anything else (e.g. Basic)."""
    if not value or len(value) > 4096:
        return None
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _PARAM_RE.finditer(rest)}
    realm, service = params.get("realm"), params.get("service")
    if not realm or not service:
        return None
    return Challenge(realm=realm, service=service, scope=params.get("scope") or None)


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def jwt_expiry(token: str) -> float | None:
    """`exp` of a JWT without verifying it (the registry verifies; we only need to know when to refresh)."""
    try:
        import jwt
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except Exception:  # not a JWT, or garbled: the caller falls back to a default lifetime
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, (int, float)) else None


def aad_token_from_credential(credential, scope: str = ACR_AAD_SCOPE) -> Callable[[], str]:
    """Adapt an azure-identity credential (which caches and refreshes itself) to the callable this module takes."""
    return lambda: credential.get_token(scope).token


class AcrTokenProvider:
    """Thread-safe token source for many regional hosts of one or more registries."""

    def __init__(self, aad_token: Callable[[], str], *, tenant: str | None = None,
                 endpoint_map: Mapping[str, str] | None = None, client: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time, refresh_margin: float = 60.0,
                 default_ttl: float = 300.0) -> None:
        self._aad_token = aad_token
        self._tenant = tenant
        self._map = {k.lower(): v.rstrip("/") for k, v in (endpoint_map or {}).items()}
        self._client = client or httpx.Client(timeout=10.0)
        self._clock = clock
        self._margin = refresh_margin
        self._default_ttl = default_ttl
        self._lock = threading.RLock()
        self._access: dict[tuple[str, str], tuple[str, float]] = {}
        self._refresh: dict[tuple[str, str], tuple[str, float]] = {}
        self.calls = {"exchange": 0, "token": 0}

    # ------------------------------------------------------------------ cache
    def cached(self, host: str, scope: str) -> str | None:
        with self._lock:
            hit = self._access.get((host.lower(), scope))
            if hit and hit[1] - self._margin > self._clock():
                return hit[0]
            return None

    def invalidate(self, host: str, scope: str) -> None:
        with self._lock:
            self._access.pop((host.lower(), scope), None)

    # ------------------------------------------------------------------ flow
    def token_for_challenge(self, host: str, challenge: Challenge, scope: str | None = None) -> str:
        """Access token for `scope` (default: the challenge's) on `host`, from cache or via exchange + token."""
        host = host.lower()
        scope = scope or challenge.scope
        if not scope:
            raise AcrAuthError(f"challenge from {host} names no scope and none was given")
        with self._lock:
            token = self.cached(host, scope)
            if token:
                return token
            realm_url = self._realm_url(host, challenge.realm)
            token, expires = self._access_token(realm_url, challenge.service, scope)
            self._access[(host, scope)] = (token, expires)
            return token

    def _realm_url(self, host: str, realm: str) -> str:
        """Where to send credentials: only to the challenged registry's own auth endpoint (same host, or a
        `*.azurecr.io` host of the same registry name), through `endpoint_map` when it maps that host."""
        parts = urlsplit(realm)
        realm_host = (parts.hostname or "").lower()
        registry_host = host.split(":")[0]
        same_registry = realm_host == registry_host or (
            realm_host.endswith(".azurecr.io") and realm_host.split(".")[0] == registry_host.split(".")[0])
        if not same_registry:
            raise AcrAuthError(f"realm host {realm_host!r} is not the registry {host}; refusing to send credentials")
        netloc = parts.netloc.lower()
        path = parts.path or "/oauth2/token"
        mapped = self._map.get(netloc) or self._map.get(realm_host)
        if mapped:
            return mapped + path
        if parts.scheme != "https":
            raise AcrAuthError(f"realm {realm_host} is not HTTPS; refusing to send credentials")
        return f"https://{netloc}{path}"

    def _refresh_token(self, realm_url: str, service: str, *, force: bool = False) -> str:
        origin = realm_url.split("/oauth2/", 1)[0]
        key = (origin, service)
        hit = self._refresh.get(key)
        if hit and not force and hit[1] - self._margin > self._clock():
            return hit[0]
        try:
            aad = self._aad_token()
        except Exception as exc:  # azure-identity (IMDS down, no role): the region is unauthorized, the wait goes on
            raise AcrAuthError(f"exchange: no Entra token ({type(exc).__name__})") from None
        form = {"grant_type": "access_token", "service": service, "access_token": aad}
        if self._tenant:
            form["tenant"] = self._tenant
        self.calls["exchange"] += 1
        try:
            body = self._post(f"{origin}/oauth2/exchange", form, "exchange")
        except _Unauthorized:
            raise AcrAuthError("exchange: HTTP 401, the Entra token was not accepted") from None
        token = body.get("refresh_token")
        if not isinstance(token, str) or not token:
            raise AcrAuthError("exchange: response has no refresh_token")
        self._refresh[key] = (token, jwt_expiry(token) or self._clock() + self._default_ttl)
        return token

    def _access_token(self, realm_url: str, service: str, scope: str) -> tuple[str, float]:
        for attempt in range(2):
            refresh = self._refresh_token(realm_url, service, force=attempt > 0)
            form = {"grant_type": "refresh_token", "service": service, "scope": scope, "refresh_token": refresh}
            self.calls["token"] += 1
            try:
                body = self._post(realm_url, form, "token")
            except _Unauthorized:
                if attempt == 0:
                    continue  # the refresh token was rejected (expired or revoked): exchange again, once
                raise AcrAuthError("token: 401 even with a fresh refresh token") from None
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise AcrAuthError("token: response has no access_token")
            expires = jwt_expiry(token)
            if expires is None and isinstance(body.get("expires_in"), (int, float)):
                expires = self._clock() + float(body["expires_in"])
            return token, expires or self._clock() + self._default_ttl
        raise AcrAuthError("token: unreachable")

    def _post(self, url: str, form: dict[str, str], step: str) -> dict:
        try:
            resp = self._client.post(url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            kind = "unresolvable" if is_dns_failure(exc) else "error"
            raise AcrAuthError(f"{step}: {type(exc).__name__} talking to {urlsplit(url).netloc}", kind) from None
        if resp.status_code == 401:
            raise _Unauthorized()
        if resp.status_code == 429:   # throttling, not a refused token
            raise AcrAuthError(f"{step}: HTTP 429 (throttled) from {urlsplit(url).netloc}", "throttled",
                               parse_retry_after(resp.headers.get("retry-after"), self._clock()))
        if resp.status_code == 403:
            raise AcrAuthError(f"{step}: HTTP 403 from {urlsplit(url).netloc}", "forbidden")
        if resp.status_code != 200:
            raise AcrAuthError(f"{step}: HTTP {resp.status_code} from {urlsplit(url).netloc}")
        if len(resp.content) > MAX_TOKEN_RESPONSE:
            raise AcrAuthError(f"{step}: response too large")
        try:
            body = resp.json()
        except ValueError:
            raise AcrAuthError(f"{step}: response is not JSON") from None
        if not isinstance(body, dict):
            raise AcrAuthError(f"{step}: response is not a JSON object")
        return body


class _Unauthorized(Exception):
    pass
