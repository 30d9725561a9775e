"""A bounded, safe JSON reader for every entry point (HTTP bodies, queue messages, Event Grid event data).

`json.loads` on hostile input fails in ways that are not `ValueError`: 1,000+ nested levels raise `RecursionError`,
an integer literal longer than Python's int-string conversion limit raises a bare `ValueError` late, `1e309` becomes
`inf`, and `"\\ud800"` yields a lone surrogate that later breaks `.encode()` (hashing ids, writing tables). This
reader enforces, each with a `JsonLimitError` naming the limit:

* size: at most `max_bytes` bytes (checked before anything is decoded);
* encoding: UTF-8 (a leading BOM is accepted, as Azure senders sometimes add one);
* depth: at most `MAX_DEPTH` nested arrays/objects, counted *before* parsing on the text with strings removed, so
  the parser never recurses deeply;
* numbers: literals of at most `MAX_NUMBER_CHARS` characters, checked while parsing (`parse_int`/`parse_float`
  see the literal before converting it); `NaN`/`Infinity` and floats that overflow to infinity are refused;
* strings: no lone UTF-16 surrogates (`\\ud800` without its pair), in keys or values;
* size of the result: at most `MAX_ITEMS` values in total.

`check_value` applies the depth/number/string/item limits to an already-decoded value (what the Functions worker
hands an Event Grid function). Every check is linear in the input.
"""
from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 64
MAX_ITEMS = 100_000
DEFAULT_MAX_BYTES = 256 * 1024

# A JSON string literal (unrolled loop), or an unterminated one running to the end: every attempt that starts at a
# quote succeeds, so removing strings is linear even on hostile text such as '"\\"\\"\\"...'.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_BRACKETS_KEEP = bytes(range(256)).translate(None, b"[]{}")
_DELTA = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class JsonLimitError(ValueError):
    """The input breaks one of the reader's limits (or is not JSON); `limit` names which, `status` is the HTTP
    status it maps to (413 for size, 400 otherwise)."""

    def __init__(self, limit: str, reason: str, status: int = 400):
        super().__init__(reason)
        self.limit = limit
        self.reason = reason
        self.status = status


def nesting_depth(raw: bytes) -> int:
    """The deepest array/object nesting in a JSON text, without parsing it (strings do not count)."""
    brackets = _STRING.sub(b"", raw).translate(None, _BRACKETS_KEEP)
    if not brackets:
        return 0
    return max(accumulate(_DELTA[b] for b in brackets))


def _number(kind: type):
    def convert(text: str) -> Any:
        if len(text) > MAX_NUMBER_CHARS:
            raise JsonLimitError("number-length", f"a number literal is longer than {MAX_NUMBER_CHARS} characters")
        value = kind(text)
        if kind is float and not math.isfinite(value):
            raise JsonLimitError("number-range", f"number {text[:20]} is out of range (not a finite double)")
        return value
    return convert


def _constant(name: str) -> Any:
    raise JsonLimitError("number-range", f"{name} is not a JSON number (non-finite numbers are refused)")


def loads(raw: bytes | str, max_bytes: int = DEFAULT_MAX_BYTES, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `raw` within the limits above, or raise `JsonLimitError` naming the limit broken."""
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise JsonLimitError("string", "text contains a lone UTF-16 surrogate") from None
    if len(raw) > max_bytes:
        raise JsonLimitError("size", f"body larger than {max_bytes} bytes", 413)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw.strip():
        raise JsonLimitError("empty", "empty body: expected JSON")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonLimitError("encoding", "body is not valid UTF-8") from None
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise JsonLimitError("depth", f"JSON nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_int=_number(int), parse_float=_number(float), parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise JsonLimitError("syntax", f"body is not valid JSON ({exc.msg} at position {exc.pos})") from None
    except RecursionError:  # unreachable after the depth check; kept so that it can never be a 500
        raise JsonLimitError("depth", f"JSON nested deeper than {max_depth} levels") from None
    check_value(value, max_depth=max_depth)
    return value


def check_value(value: Any, *, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> None:
    """Apply the depth, item-count, number and string limits to an already-decoded value (iteratively)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > max_items:
            raise JsonLimitError("items", f"more than {max_items} JSON values")
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if item.bit_length() > MAX_NUMBER_CHARS * 4:
                raise JsonLimitError("number-length", f"an integer is longer than {MAX_NUMBER_CHARS} digits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise JsonLimitError("number-range", "non-finite numbers are refused")
        elif isinstance(item, dict):
            if depth > max_depth:
                raise JsonLimitError("depth", f"JSON nested deeper than {max_depth} levels")
            for k, v in item.items():
                if not isinstance(k, str):
                    raise JsonLimitError("key", "object keys must be strings")
                _check_string(k)
                stack.append((v, depth + 1))
        elif isinstance(item, (list, tuple)):
            if depth > max_depth:
                raise JsonLimitError("depth", f"JSON nested deeper than {max_depth} levels")
            stack.extend((v, depth + 1) for v in item)
        else:
            raise JsonLimitError("type", f"unexpected value of type {type(item).__name__}")


def _check_string(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonLimitError("string", "a string contains a lone UTF-16 surrogate (invalid Unicode)") from None
