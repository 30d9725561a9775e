"""Message-template clustering for exception messages without a stack.

Pure functions, no state between calls, one configuration for every input:

    cluster_messages(messages)  -> one group id per message
    cluster_templates(messages) -> one template string per message ("User <*> not found")
    group_id(template)          -> the deterministic id of a template (blake2b, 16 hex chars)
    message_template(message)   -> template of a single message (masking and digit rules only)

Algorithm (after Brain, Yu et al. 2023, "longest common pattern" grouping, generic rules only):

1. Masking: bounded input, then generic regexes replace timestamps, URLs, e-mails, GUIDs,
   IPv4[:port], MACs, hex literals, unix/windows paths, host names, numbers with units and
   quoted values after ``=``/``:`` with ``<*>``.
2. Tokenisation: whitespace words. Inside a word, segments between delimiters
   (``= : , ; ( ) [ ] { } | " ' @ ..``) that contain a digit (except short names such as
   ``eth0``/``SOCKS5``) or are boolean/null literals become ``<*>``; a word made only of
   wildcards and delimiters becomes ``<*>``; consecutive ``<*>`` words collapse into one.
3. Grouping per token count: count each (position, token) in the batch; for every message the
   *anchor* is the set of its non-wildcard tokens sharing the frequency that most of its
   tokens share (ties: the higher frequency). Messages with the same anchor form a root group.
4. Inside a root group, a position not in the anchor that varies is a variable when any value
   is ``<*>``, when all values are ``key=<value>`` of one key and one of them holds a
   wildcard, or when it has at least ``DISTINCT_VARIABLE`` distinct values (3x that for the
   first token: messages usually start with constant text). Positions whose values are all
   more frequent than the anchor, and low-cardinality positions, stay constant and split the
   group.
5. The template is the token tuple with variable positions replaced; the group id is a hash
   of the template string, so ids are stable across calls, batches, orders and days.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

WILDCARD = "<*>"
MAX_MESSAGE_CHARS = 4096  # longer messages are truncated before any processing
MAX_TOKENS = 256  # tokens beyond this are dropped
MAX_TOKEN_CHARS = 512  # longer words (blobs, encoded data) are variables
DISTINCT_VARIABLE = 5  # distinct values at one position that make it a variable
FIRST_TOKEN_FACTOR = 3  # the first position needs 3x as many distinct values

_W = WILDCARD

_UNIT = r"(?:[KMGTP]i?B|[KMGTP]B/s|bytes?|B|ms|us|ns|sec|secs|seconds?|s|mins?|minutes?|hours?|h|%)"

# (precondition, pattern): applied in order, each match becomes <*>. The precondition is a
# substring or a cheap regex that must occur for the pattern to possibly match (speed only).
_Hint = str | re.Pattern[str] | None
_MASKS: tuple[tuple[_Hint, re.Pattern[str]], ...] = (
    # timestamps: [weekday] [month day] [yyyy-mm-dd T] hh:mm:ss[.fff][tz] [yyyy]
    (re.compile(r"\d:\d\d:\d\d"), re.compile(
        r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?\s+)?"
        r"(?:(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\s+\d{1,2},?\s+)?"
        r"(?:\d{4}-\d{2}-\d{2}[T ])?\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?(?:\s+\d{4}\b)?"
    )),
    (re.compile(r"\d-\d\d-"), re.compile(r"\b\d{4}-\d{2}-\d{2}\b")),  # dates
    ("://", re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>]+")),  # URLs
    ("@", re.compile(r"[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")),  # e-mails
    (re.compile(r"[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"),
     re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")),  # GUIDs
    (re.compile(r"\d\.\d+\.\d"), re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?(?![\w.])")),  # IPv4
    (re.compile(r"[0-9a-fA-F]{2}[:-][0-9a-fA-F]{2}[:-]"),
     re.compile(r"\b(?:[0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}\b")),  # MAC
    (re.compile(r"0[xX]"), re.compile(r"\b0[xX][0-9a-fA-F]+\b")),  # hex literals
    ("/", re.compile(r"(?<![\w./\\])(?:/[^\s/,;)\]'\"]+)+/?")),  # unix paths
    (":\\", re.compile(r"\b[A-Za-z]:\\[^\s\"']*")),  # windows paths
    (".", re.compile(  # host names (common TLDs / country codes)
        r"(?<![\w.\-])(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+"
        r"(?:com|net|org|edu|gov|mil|int|io|info|biz|local|lan|internal|[a-z]{2})(?::\d+)?(?![\w\-])"
    )),
    (re.compile(r"\d"), re.compile(r"(?<![\w.])[<>~]?[-+]?\d+(?:\.\d+)?\s?" + _UNIT + r"(?!\w)")),  # quantities
    (re.compile(r"[=:]\s?[\"']"), re.compile(r"(?:(?<=[=:])|(?<=[=:]\s))(?:\"[^\"]{0,256}\"|'[^']{0,256}')")),  # key="quoted"
    (re.compile(r"[\"'`]"), re.compile(r"(?<!\w)(?:\"[^\"\s]{1,256}\"|'[^'\s]{1,256}'|`[^`\s]{1,256}`)(?!\w)")),  # 'quoted'
)
_WS = re.compile(r"\s+")
_SEG = re.compile(r"([=:,;()\[\]{}|\"'@]|\.{2,})")
_DIGIT = re.compile(r"\d")
_SHORT_NAME = re.compile(r"[A-Za-z]{2,}\d")  # eth0, SOCKS5, alt0: names, not values
_DELIMS = frozenset("=:,;()[]{}|\"'@")
_LITERALS = frozenset({"true", "false", "null", "True", "False", "NULL", "TRUE", "FALSE"})
_KEY = re.compile(r"(.*[=:])[^=:]*")


def _may_match(hint: _Hint, text: str) -> bool:
    if hint is None:
        return True
    if isinstance(hint, str):
        return hint in text
    return hint.search(text) is not None


def mask(message: str) -> str:
    """The message, truncated to MAX_MESSAGE_CHARS, with generic variable patterns as <*>."""
    text = str(message)[:MAX_MESSAGE_CHARS]
    for hint, rx in _MASKS:
        if _may_match(hint, text):
            text = rx.sub(_W, text)
    return text


def _is_variable_segment(seg: str) -> bool:
    if _W in seg or seg in _LITERALS:
        return True
    return _DIGIT.search(seg) is not None and _SHORT_NAME.fullmatch(seg) is None


def _word_token(word: str) -> str:
    if len(word) > MAX_TOKEN_CHARS:
        return _W
    if _SEG.search(word) is None:
        return _W if _is_variable_segment(word) else word
    parts: list[str] = []
    only_wildcards = True
    for seg in _SEG.split(word):
        if not seg:
            continue
        if seg in _DELIMS or seg[:2] == "..":
            parts.append(seg)
            continue
        if _is_variable_segment(seg):
            if parts and parts[-1] == _W:
                continue
            seg = _W
        else:
            only_wildcards = False
        parts.append(seg)
    return _W if only_wildcards else "".join(parts)


def _tokens(masked: str, cache: dict[str, str]) -> tuple[str, ...]:
    out: list[str] = []
    for word in _WS.split(masked):
        if not word:
            continue
        tok = cache.get(word)
        if tok is None:
            tok = cache[word] = _word_token(word)
        if tok == _W and out and out[-1] == _W:
            continue
        out.append(tok)
        if len(out) >= MAX_TOKENS:
            break
    return tuple(out)


def tokenize(message: str) -> tuple[str, ...]:
    """Masked tokens of one message (step 1 and 2 above)."""
    return _tokens(mask(message), {})


def message_template(message: str) -> str:
    """Template of a single message on its own (no batch statistics)."""
    return " ".join(tokenize(message))


def _key_of(token: str) -> str | None:
    m = _KEY.fullmatch(token)
    return m.group(1) if m else None


def _is_variable_position(position: int, values: set[str]) -> bool:
    if _W in values:
        return True
    if any(_W in v for v in values):
        keys = {_key_of(v) for v in values}
        if len(keys) == 1 and None not in keys:
            return True
    needed = DISTINCT_VARIABLE * (FIRST_TOKEN_FACTOR if position == 0 else 1)
    return len(values) >= needed


def _templates_same_length(
    rows: list[tuple[str, ...]], weights: list[int]
) -> list[tuple[str, ...]]:
    """Templates for distinct token tuples of one length; weights are their multiplicities."""
    length = len(rows[0])
    freq: list[Counter[str]] = [Counter() for _ in range(length)]
    for row, w in zip(rows, weights):
        for p, tok in enumerate(row):
            freq[p][tok] += w

    roots: dict[tuple[tuple[int, str], ...], list[int]] = defaultdict(list)
    anchor_freq: dict[tuple[tuple[int, str], ...], int] = {}
    for r, row in enumerate(rows):
        fv = [freq[p][tok] if tok != _W else -1 for p, tok in enumerate(row)]
        shared = Counter(f for f in fv if f >= 0)
        fstar = max(shared.items(), key=lambda kv: (kv[1], kv[0]))[0] if shared else -1
        key = tuple((p, tok) for p, tok in enumerate(row) if fv[p] == fstar)
        roots[key].append(r)
        anchor_freq[key] = fstar

    out: list[tuple[str, ...]] = [()] * len(rows)
    for key, members in roots.items():
        fstar = anchor_freq[key]
        anchored = {p for p, _ in key}
        variable: set[int] = set()
        for p in range(length):
            if p in anchored:
                continue
            values = {rows[r][p] for r in members}
            if len(values) == 1:
                continue
            if all(freq[p][v] > fstar for v in values):
                continue  # more frequent than the anchor: constant text that splits the group
            if _is_variable_position(p, values):
                variable.add(p)
        for r in members:
            out[r] = tuple(_W if p in variable else tok for p, tok in enumerate(rows[r]))
    return out


def cluster_templates(messages: Sequence[str]) -> list[str]:
    """One template string per message; equal templates mean one group."""
    unique: dict[str, int] = {}
    for m in messages:
        unique[m] = unique.get(m, 0) + 1
    cache: dict[str, str] = {}
    token_rows = {m: _tokens(mask(m), cache) for m in unique}

    # distinct token tuples with their multiplicity, by length
    tuple_weight: dict[tuple[str, ...], int] = defaultdict(int)
    for m, count in unique.items():
        tuple_weight[token_rows[m]] += count
    by_len: dict[int, list[tuple[str, ...]]] = defaultdict(list)
    for row in tuple_weight:
        by_len[len(row)].append(row)

    template_of: dict[tuple[str, ...], str] = {(): ""}
    for length, rows in by_len.items():
        if length == 0:
            continue
        rows.sort()  # determinism independent of input order
        for row, tmpl in zip(rows, _templates_same_length(rows, [tuple_weight[r] for r in rows])):
            template_of[row] = " ".join(tmpl)
    return [template_of[token_rows[m]] for m in messages]


def group_id(template: str) -> str:
    """Deterministic id of a template: first 16 hex chars of its blake2b digest."""
    return hashlib.blake2b(template.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def cluster_messages(messages: list[str]) -> list[str]:
    """One group id per message (same template -> same id, in any batch, order or day)."""
    ids: dict[str, str] = {}
    out: list[str] = []
    for tmpl in cluster_templates(messages):
        gid = ids.get(tmpl)
        if gid is None:
            gid = ids[tmpl] = group_id(tmpl)
        out.append(gid)
    return out


def group_templates(messages: list[str]) -> dict[str, str]:
    """Group id -> template for the groups found in ``messages`` (for PR bodies)."""
    return {group_id(t): t for t in set(cluster_templates(messages))}
