"""Failed dependency calls and failed requests as root-cause groups: fingerprint keys and classification. Pure.

A failed call's root cause is where it went (target), what it asked for (its operation: the dependency or request
name with ids masked) and how it failed (the result code). So a storm of 429s from one model endpoint, spread over
roles, instances and hours, is one group; a 500 from the same endpoint is another.

Classes: throttled (429), timeout (408, 504, or a result code/name that says so, or no response), server error
(5xx), client error (other 4xx), failed (anything else a telemetry SDK reports as unsuccessful).
"""
from __future__ import annotations

import re

THROTTLED, TIMEOUT, SERVER, CLIENT, FAILED = "throttled", "timeout", "server error", "client error", "failed"
MAX_KEY = 200
_TIMEOUT_WORDS = re.compile(r"timed? ?out|deadline|cancell?ed", re.I)
_ID_SEGMENT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"  # GUID
    r"|[0-9]+|(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{12,}"  # numbers, long hex
    r"|(?=(?:[^0-9]*[0-9]){4})[\w\-.~%]+")  # a segment with 4+ digits (ids, dates)
_QUERY = re.compile(r"[?#].*$")


def classify(result_code: str, name: str = "") -> str:
    """The failure class of a failed call from its result code (and its name when the code says nothing)."""
    code = (result_code or "").strip()
    if code.isdigit():
        n = int(code)
        if n == 429:
            return THROTTLED
        if n in (408, 504) or n == 0:
            return TIMEOUT
        if 500 <= n <= 599:
            return SERVER
        if 400 <= n <= 499:
            return CLIENT
        return FAILED
    if not code or _TIMEOUT_WORDS.search(code) or _TIMEOUT_WORDS.search(name or ""):
        return TIMEOUT  # no response at all, or a code/name that says it timed out or was cancelled
    return FAILED


def operation_key(name: str) -> str:
    """A dependency or request name without its ids: `POST /users/42/orders?x=1` -> `POST /users/<*>/orders`.
    Path segments that are numbers, GUIDs, long hex or carry 4+ digits are ids; names such as `gpt-4o` stay."""
    text = _QUERY.sub("", (name or "").strip())[:1000]
    parts = text.split("/")
    return "/".join("<*>" if p and _ID_SEGMENT.fullmatch(p) else p for p in parts)[:MAX_KEY]


def target_key(target: str) -> str:
    """A dependency target, lower-cased, with ids masked the same way (`myai.openai.azure.com | gpt-4o` stays)."""
    return operation_key((target or "").lower())


def code_key(result_code: str) -> str:
    code = (result_code or "").strip()
    return code[:40] if re.fullmatch(r"[\w.\- ]{1,40}", code) else ("(none)" if not code else "(other)")


def signature(source: str, kind: str, target: str, result_code: str, name: str) -> str:
    """The root-cause key of a failed call: source, dependency type, target, result code and operation."""
    return "|".join(("call", source, kind[:100], target_key(target), code_key(result_code), operation_key(name)))


def title(source: str, kind: str, target: str, result_code: str, name: str) -> str:
    """`Throttled (429) from myai.openai.azure.com: POST /openai/deployments/gpt-4o/chat/completions` for a
    dependency (where the call went first: titles are cut at 100 characters), `Client error (400) answering
    POST /api/chat/<*>` for a request."""
    head = f"{classify(result_code, name).capitalize()} ({code_key(result_code)})"
    if source == "requests":
        return f"{head} answering {operation_key(name)}"[:160]
    where = target_key(target) or kind
    return f"{head} from {where}: {operation_key(name)}"[:160]
