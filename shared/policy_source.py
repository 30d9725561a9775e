"""Where the policy comes from at run time: HEALER_POLICY, a last-known-good copy, and pre-action hooks.

* The policy is read from HEALER_POLICY. Each valid policy read is remembered in the controls table as the
  last-known-good (LKG) copy (written when it changes, refreshed at most once a minute).
* When the source is briefly unreadable — in Azure, a Key Vault reference App Service could not resolve leaves
  the literal `@Microsoft.KeyVault(...)` in the setting — the LKG copy is used for at most
  HEALER_POLICY_LKG_MAX_AGE_SECONDS after it was last confirmed; each decision made with it says so in its audit
  record. Older than that, or no copy: fail closed (deny). An invalid (not unreadable) policy is a configuration
  error instead (shared.config_check): Healer acts on nothing.
* A rule's `hook` is called with the canonical action, resource and proposed parameters; it answers allow / ask /
  deny and a reason within its timeout. Timeout, error, a non-200 answer or an unreadable body deny. A hook can only
  make the rule's effect stricter.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from typing import Any

from shared.config import Settings
from shared.config_check import KEY_VAULT_REF
from shared.policy import Effect, Hook, Policy, load_policy

log = logging.getLogger("healer.policy")
LKG_ROW = "policy-lkg"
REFRESH = dt.timedelta(seconds=60)
MAX_HOOK_BODY = 16 * 1024
_saved: dict[str, tuple[str, dt.datetime]] = {}   # table prefix -> (hash, confirmed at) of the LKG copy written
_lock = threading.Lock()


def _store(settings: Settings):
    from shared.state import Store
    return Store(settings, "controls")


def _remember(settings: Settings, document: Any, now: dt.datetime) -> None:
    from shared.state import Record
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]
    key = settings.table_prefix
    with _lock:
        last = _saved.get(key)
        if last and last[0] == digest and now - last[1] < REFRESH:
            return
        _saved[key] = (digest, now)
    try:
        _store(settings).upsert(Record("controls", LKG_ROW, {"document": document, "hash": digest,
                                                            "confirmedAt": now.isoformat()}))
    except Exception as exc:  # remembering is best effort; the live policy is still used
        log.warning("could not save the last-known-good policy: %s", type(exc).__name__)


def current(settings: Settings, now: dt.datetime) -> tuple[Policy | None, str, dict[str, Any]]:
    """(policy or None, why when None, source details for the audit)."""
    raw = settings.get("HEALER_POLICY")
    if raw is not None and raw.strip().startswith(KEY_VAULT_REF):
        return _last_known_good(settings, now, "HEALER_POLICY is an unresolved Key Vault reference")
    try:
        document = json.loads(raw) if raw is not None else None
    except json.JSONDecodeError as exc:
        return None, f"HEALER_POLICY is not valid JSON: {exc.msg}", {"source": "HEALER_POLICY"}
    policy, why = load_policy(document)
    if policy is not None:
        _remember(settings, document, now)
    return policy, why, {"source": "HEALER_POLICY"}


def _last_known_good(settings: Settings, now: dt.datetime, unreadable: str) -> tuple[Policy | None, str, dict]:
    max_age = dt.timedelta(seconds=int(settings.get("HEALER_POLICY_LKG_MAX_AGE_SECONDS") or 0))
    try:
        rec = _store(settings).get("controls", LKG_ROW)
    except Exception as exc:
        return None, f"{unreadable} and the last-known-good copy is unreadable ({type(exc).__name__})", \
            {"source": "none"}
    if rec is None:
        return None, f"{unreadable} and there is no last-known-good copy", {"source": "none"}
    confirmed = dt.datetime.fromisoformat(rec.data["confirmedAt"])
    age = now - confirmed
    if age > max_age:
        return None, (f"{unreadable} and the last-known-good copy is {int(age.total_seconds())} s old (more than "
                      f"HEALER_POLICY_LKG_MAX_AGE_SECONDS={int(max_age.total_seconds())})"), \
            {"source": "none", "lkgConfirmedAt": rec.data["confirmedAt"]}
    policy, why = load_policy(rec.data.get("document"))
    return policy, why, {"source": "last-known-good", "why": unreadable, "lkgHash": rec.data.get("hash"),
                         "lkgConfirmedAt": rec.data["confirmedAt"], "ageSeconds": int(age.total_seconds())}


_client = None


def _hook_client():
    """One pooled client for every hook call (building an httpx client loads a TLS context: ~100 ms)."""
    global _client
    with _lock:
        if _client is None:
            import httpx
            _client = httpx.Client(follow_redirects=False, limits=httpx.Limits(max_connections=20))
        return _client


def call_hook(hook: Hook, payload: dict[str, Any]) -> tuple[Effect, str]:
    """Ask a pre-action hook. Anything but a timely, well-formed answer is deny."""
    import httpx
    where = hook.url.split("?")[0][:200]
    deadline = time.monotonic() + hook.timeout_seconds  # the whole answer, not each read
    try:
        with _hook_client().stream("POST", hook.url, json=payload, timeout=hook.timeout_seconds) as resp:
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_HOOK_BODY:
                    return "deny", f"hook {where} answered more than {MAX_HOOK_BODY} bytes: fail closed"
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("answer too slow")
            status = resp.status_code
    except httpx.TimeoutException:
        return "deny", f"hook {where} did not answer within {hook.timeout_seconds:g} s: fail closed"
    except httpx.HTTPError as exc:
        return "deny", f"hook {where} failed ({type(exc).__name__}): fail closed"
    if status != 200:
        return "deny", f"hook {where} answered HTTP {status}: fail closed"
    try:
        answer = json.loads(body)
        decision = answer["decision"]
        if decision not in ("allow", "ask", "deny"):
            raise ValueError(decision)
    except (ValueError, KeyError, TypeError):
        return "deny", f"hook {where} gave an unreadable answer: fail closed"
    reason = answer.get("reason")
    return decision, f"hook {where} says {decision}" + (f": {str(reason)[:300]}" if reason else "")
