"""Message-template clustering for exception messages without a stack.

Pure functions, no state between calls, one configuration for every input:

    cluster_messages(messages)  -> one group id per message
    cluster_templates(messages) -> one template string per message ("User <*> not found")
    group_id(template)          -> the deterministic id of a template (blake2b, 16 hex chars)
    message_template(message)   -> template of a single message (masking and digit rules only)

Algorithm (after Brain, Yu et al. 2023, "longest common pattern" grouping, generic rules only):

1-2. Masking and tokenisation in one pass (``masking.py``): one combined regex masks the values
   that span spaces, then every distinct word (per digit shape) is classified once: a value as a
   whole (URL, path, e-mail, IP, host:port, GUID, hex, number with unit, version, prefixed id,
   quoted value, literal) becomes ``<*>`` with its surrounding punctuation kept; otherwise its
   digit-bearing segments do. A bracketed list of values is one ``<*>``, a parenthesised value
   after a word is an annotation and dropped, a run of more than 8 placeholders is one.
3. Grouping per token count: count each (position, token) in the batch; for every message the
   *anchor* is the set of its non-wildcard tokens sharing the frequency that most of its
   tokens share (ties: the higher frequency). Messages with the same anchor form a root group.
4. Inside a root group, a position not in the anchor that varies is a variable when any value
   is a placeholder (its punctuation aside), when all values are ``key=<value>`` of one key and one of them holds a
   wildcard, or when it has at least ``DISTINCT_VARIABLE`` distinct values (3x that for the
   first token: messages usually start with constant text). Positions whose values are all
   more frequent than the anchor, and low-cardinality positions, stay constant and split the
   group.
5. The template is the token tuple with variable positions replaced (by ``<*>`` with the
   punctuation or ``key=`` every value shares); templates that differ only by a parenthesised
   value are one template without it; the group id is a hash
   of the template string, so ids are stable across calls, batches, orders and days.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

from healers.errors.masking import (MAX_MESSAGE_CHARS, MAX_TOKEN_CHARS, MAX_TOKENS, WILDCARD, WordCache, mask,
                                    message_tokens,
                                    tokens as _masked_tokens)

__all__ = ["MAX_MESSAGE_CHARS", "MAX_TOKENS", "MAX_TOKEN_CHARS", "WILDCARD", "cluster_messages", "cluster_templates",
           "group_id", "group_templates", "mask", "message_template", "tokenize"]

DISTINCT_VARIABLE = 5  # distinct values at one position that make it a variable
FIRST_TOKEN_FACTOR = 3  # the first position needs 3x as many distinct values

_W = WILDCARD
_KEY = re.compile(r"(.*[=:])[^=:]*")
_ANNOTATIONS = frozenset({"(<*>)", "()"})
_LEAD = "([{\"'`"
_TRAIL = ")]}\"'`,;:.!?"


def tokenize(message: str) -> tuple[str, ...]:
    """Masked tokens of one message (step 1 and 2 above)."""
    return _masked_tokens(message)


def message_template(message: str) -> str:
    """Template of a single message on its own (no batch statistics)."""
    return " ".join(tokenize(message))


def _key_of(token: str) -> str | None:
    m = _KEY.fullmatch(token)
    return m.group(1) if m else None


def _edges(token: str) -> tuple[str, str, str]:
    """(leading punctuation, core, trailing punctuation) of a token."""
    core = token.lstrip(_LEAD)
    lead = token[: len(token) - len(core)]
    stripped = core.rstrip(_TRAIL)
    return lead, stripped, core[len(stripped):]


def _is_placeholder(token: str) -> bool:
    """A token that is a value as a whole (`<*>`, `(<*>)`, `<*>,`)."""
    return _W in token and _edges(token)[1] == _W


def _annotation_free(template: str) -> str:
    """The template without parenthesised values (`(<*>)`, `()`): an optional annotation of the word before."""
    return " ".join(t for t in template.split(" ") if t not in _ANNOTATIONS)


def _variable_token(values: set[str]) -> str:
    """The placeholder for a variable position, with the punctuation every value has around it."""
    keys = {_key_of(v) for v in values}
    if len(keys) == 1 and None not in keys:
        return f"{next(iter(keys))}{_W}"
    edges = [_edges(v) for v in values]
    lead = os.path.commonprefix([e[0] for e in edges])
    trail = os.path.commonprefix([e[2][::-1] for e in edges])[::-1]
    return lead + _W + trail


def _is_variable_position(position: int, values: set[str]) -> bool:
    if any(_edges(v)[1] in (_W, "") for v in values):
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
        fv = [-1 if _is_placeholder(tok) else freq[p][tok] for p, tok in enumerate(row)]
        shared = Counter(f for f in fv if f >= 0)
        fstar = max(shared.items(), key=lambda kv: (kv[1], kv[0]))[0] if shared else -1
        key = tuple((p, tok) for p, tok in enumerate(row) if fv[p] == fstar)
        roots[key].append(r)
        anchor_freq[key] = fstar

    out: list[tuple[str, ...]] = [()] * len(rows)
    for key, members in roots.items():
        fstar = anchor_freq[key]
        anchored = {p for p, _ in key}
        variable: dict[int, str] = {}
        for p in range(length):
            if p in anchored:
                continue
            values = {rows[r][p] for r in members}
            if len(values) == 1:
                continue
            if all(freq[p][v] > fstar for v in values):
                continue  # more frequent than the anchor: constant text that splits the group
            if _is_variable_position(p, values):
                variable[p] = _variable_token(values)
        for r in members:
            out[r] = tuple(variable.get(p, tok) for p, tok in enumerate(rows[r]))
    return out


def cluster_templates(messages: Sequence[str]) -> list[str]:
    """One template string per message; equal templates mean one group."""
    unique: dict[str, int] = {}
    for m in messages:
        unique[m] = unique.get(m, 0) + 1
    cache = WordCache()
    token_rows = {m: message_tokens(str(m), cache) for m in unique}

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
    # templates that differ only by an optional parenthesised value are one template (without it)
    variants: dict[str, set[str]] = defaultdict(set)
    for tmpl in template_of.values():
        variants[_annotation_free(tmpl)].add(tmpl)
    for row, tmpl in template_of.items():
        bare = _annotation_free(tmpl)
        if len(variants[bare]) > 1:
            template_of[row] = bare
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
