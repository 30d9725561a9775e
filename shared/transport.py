"""One HTTP transport configuration for every Azure SDK client Healer builds (storage, ARM, identity, ...).

* **No proxy lookup per call.** By default azure-core's `RequestsTransport` trusts the environment
  (`use_env_settings=True`): requests then scans `os.environ` for proxy variables on *every* request (~0.1-0.3 ms at
  a Functions worker's ~135 variables). Healer turns that off (`use_env_settings=False`) unless a proxy variable
  (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, any case) is set, in which case the environment is honoured
  as before. A custom CA bundle (`REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE`) is still honoured: it is read once here.
* **Connection reuse.** One `requests.Session` (one connection pool, sized for the host's concurrency) per process
  is shared by all clients; each client gets its own `RequestsTransport` over it with `session_owner=False`, so
  closing one client never closes the others' connections.

The shared session is keyed on the environment variables that shape it, so a test that changes them gets a fresh
one; `reset()` forgets every cached client (tests and tools that repoint Healer).
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

if TYPE_CHECKING:
    import requests

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
POOL_SIZE = 64  # connections kept per host: above the host's concurrent invocations (HTTP + queue batches)

_resets: list[Callable[[], None]] = []
_lock = threading.Lock()


def _environment() -> tuple[tuple[str, str], ...]:
    names = [*PROXY_VARIABLES, *(n.lower() for n in PROXY_VARIABLES), *CA_VARIABLES]
    return tuple((n, os.environ[n]) for n in names if os.environ.get(n))


def uses_proxy_environment(env: tuple[tuple[str, str], ...] | None = None) -> bool:
    """True when a proxy variable is set: then the SDKs read the environment (proxies, NO_PROXY) as usual."""
    return any(name.upper() in PROXY_VARIABLES for name, _ in (env if env is not None else _environment()))


@lru_cache(maxsize=4)
def _session(env: tuple[tuple[str, str], ...]) -> requests.Session:
    from azure.core.pipeline.transport import RequestsTransport
    owner = RequestsTransport(use_env_settings=uses_proxy_environment(env))
    owner.open()  # azure-core's own session set-up: trust_env, no urllib3 retries (the SDK pipeline retries)
    session = owner.session
    assert session is not None
    for prefix, adapter in list(session.adapters.items()):
        bigger = type(adapter)(pool_connections=8, pool_maxsize=POOL_SIZE, max_retries=adapter.max_retries)
        session.mount(prefix, bigger)
    return session


def transport() -> Any:
    """A transport for one SDK client, over the process's shared session."""
    from azure.core.pipeline.transport import RequestsTransport
    env = _environment()
    options: dict[str, Any] = {}
    bundle = dict(env).get("REQUESTS_CA_BUNDLE") or dict(env).get("CURL_CA_BUNDLE")
    if bundle and not uses_proxy_environment(env):
        # azure-core passes `verify` on every request, and without the environment requests would not read the
        # bundle variable: give it to the transport once (azure-core's `connection_verify`).
        options["connection_verify"] = bundle
    return RequestsTransport(session=_session(env), session_owner=False, **options)


def sdk_options() -> dict[str, Any]:
    """Keyword arguments every Azure SDK client (and credential) Healer builds gets."""
    return {"transport": transport()}


def on_reset(forget: Callable[[], None]) -> Callable[[], None]:
    """Register a cache to clear on `reset()` (the modules that cache clients call this at import)."""
    with _lock:
        _resets.append(forget)
    return forget


def reset() -> None:
    """Forget the shared session and every cached client (tests and tools that repoint Healer elsewhere)."""
    with _lock:
        forgets = list(_resets)
    for forget in forgets:
        forget()
    _session.cache_clear()
