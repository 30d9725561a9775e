"""Cluster aggregated error rows into root-cause groups. Pure and deterministic.

A failed dependency call or failed request is keyed by where it went, what it asked for and how it failed
(`failures.signature`: target, result code, operation), so a 429 storm from one endpoint is one group. A row with
a stack is keyed by its stack signature (type + top in-app frames). A row without one is keyed by
its message template: first a template already known from earlier days (so fingerprints stay stable when the
day's batch is small), else the template `templates.cluster_templates` finds across today's messages of that
exception type. Rows sharing a fingerprint merge, across roles, problem ids and message variants.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from collections.abc import Iterable

from healers.errors import failures, stacks
from healers.errors.kql import ErrorRow
from healers.errors.templates import WILDCARD, cluster_templates, message_template

MAX_TEMPLATE_CHARS = 400
CALL_SOURCES = ("dependencies", "requests")
MAX_VARIANTS = 5


@dataclass
class Group:
    fingerprint: str
    signature: str
    kind: str  # "stack" | "message" | "call" (a failed dependency call or request)
    type: str
    title: str
    occurrences: int = 0
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    hourly: dict[str, int] = field(default_factory=dict)
    operations: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    problem_ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    sample_message: str = ""
    sample_stack: str = ""
    frames: list[stacks.Frame] = field(default_factory=list)
    template: str = ""
    rows: int = 0
    variants: dict[str, int] = field(default_factory=dict)  # distinct sample messages -> occurrences
    failure: str = ""  # failed calls: throttled | timeout | server error | client error | failed
    target: str = ""
    result_code: str = ""
    versions: list[str] = field(default_factory=list)  # application versions the rows were seen on
    sample_version: str = ""  # the version of the sample row (the code the sample stack ran)
    related: list[str] = field(default_factory=list)  # other healers' actions on the same app (rendered lines)

    def top_variants(self, limit: int = MAX_VARIANTS) -> list[tuple[str, int]]:
        return sorted(self.variants.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]

    @property
    def short(self) -> str:
        return stacks.short(self.fingerprint)


@lru_cache(maxsize=4096)
def _template_parts(template: str) -> tuple[str, ...]:
    return tuple(template.split(WILDCARD))


def _glob_fullmatch(parts: tuple[str, ...], text: str) -> bool:
    """Does `text` equal the parts joined by wildcards of one or more characters? Linear time: each literal part
    is placed at its earliest position (which leaves the most room for the rest), never backtracking. (A regex of
    lazy `.+?` groups backtracks exponentially on long non-matching messages: templates come from untrusted text.)"""
    if len(parts) == 1:
        return text == parts[0]
    first, *middle, last = parts
    if not text.startswith(first):
        return False
    pos = len(first)
    for part in middle:
        found = text.find(part, pos + 1)
        if found < 0:
            return False
        pos = found + len(part)
    return len(text) - len(last) >= pos + 1 and text.endswith(last)


def matches_template(template: str, message: str) -> bool:
    return bool(template) and _glob_fullmatch(_template_parts(template), message_template(message))


def _key_for_stack(row: ErrorRow, prefixes: tuple[str, ...]) -> tuple[str, list[stacks.Frame], str] | None:
    if not row.sample_stack:
        return None
    frames, text = stacks.parse_details(row.sample_stack, prefixes)
    sig = stacks.stack_signature(row.type, frames)
    return (sig, frames, text) if sig else None


def _title(kind: str, exc_type: str, frames: list[stacks.Frame], template: str) -> str:
    t = stacks.normalise_type(exc_type)
    if kind == "stack":
        app = [f for f in frames if f.in_app] or frames
        where = app[0].function if app else ""
        return f"{t} in {where}"[:160]
    return f"{t}: {template}"[:160]


def cluster(rows: Iterable[ErrorRow], *, known_templates: Iterable[str] = (),
            in_app_prefixes: Iterable[str] = ()) -> list[Group]:
    """Groups (root causes) of the rows, in a deterministic order (by fingerprint)."""
    prefixes = tuple(p for p in in_app_prefixes if p)
    known = sorted({t for t in known_templates if t}, key=lambda t: (-len(t), t))
    keyed: list[tuple[str, str, ErrorRow, list[stacks.Frame], str, str]] = []
    messageless: list[ErrorRow] = []
    calls: list[ErrorRow] = []
    for row in rows:
        if row.source in CALL_SOURCES:
            calls.append(row)
            continue
        hit = _key_for_stack(row, prefixes)
        if hit:
            sig, frames, text = hit
            keyed.append((sig, "stack", row, frames, text, ""))
        else:
            messageless.append(row)
    # message templates, per exception type, across today's batch
    by_type: dict[str, list[ErrorRow]] = defaultdict(list)
    for row in messageless:
        by_type[stacks.normalise_type(row.type)].append(row)
    for exc_type in sorted(by_type):
        batch = sorted(by_type[exc_type], key=lambda r: (r.shape, r.role, r.problem_id, r.sample_message))
        messages = [r.sample_message or r.shape for r in batch]
        today = cluster_templates(messages)
        for row, message, template in zip(batch, messages, today):
            chosen = next((k for k in known if k.startswith(exc_type + "|") and
                           matches_template(k.split("|", 1)[1], message)), None)
            tmpl = chosen.split("|", 1)[1] if chosen else template[:MAX_TEMPLATE_CHARS]
            keyed.append((stacks.message_signature(exc_type, tmpl), "message", row, [], "", tmpl))

    for row in calls:
        keyed.append((failures.signature(row.source, row.type, row.target, row.result_code, row.sample_message
                                         or row.shape), "call", row, [], "", ""))

    groups: dict[str, Group] = {}
    for sig, kind, row, frames, text, tmpl in sorted(keyed, key=lambda k: (k[0], -k[2].occurrences, k[2].role,
                                                                         k[2].problem_id, k[2].shape)):
        fp = stacks.fingerprint(sig)
        g = groups.get(fp)
        if g is None:
            g = groups[fp] = Group(fingerprint=fp, signature=sig, kind=kind, type=stacks.normalise_type(row.type),
                                   title=_title(kind, row.type, frames, tmpl), sample_message=row.sample_message,
                                   sample_stack=text, frames=frames, template=tmpl,
                                   sample_version=row.sample_version)
            if kind == "call":
                name = row.sample_message or row.shape
                g.type = row.type[:300]
                g.title = failures.title(row.source, row.type, row.target, row.result_code, name)
                g.failure = failures.classify(row.result_code, name)
                g.target, g.result_code = failures.target_key(row.target), failures.code_key(row.result_code)
                g.template = failures.operation_key(name)
        _merge(g, row)
    return [groups[k] for k in sorted(groups)]


def _merge(g: Group, row: ErrorRow) -> None:
    g.rows += 1
    g.occurrences += row.occurrences
    if row.sample_message and (row.sample_message in g.variants or len(g.variants) < 50):
        g.variants[row.sample_message] = g.variants.get(row.sample_message, 0) + row.occurrences
    g.first_seen = row.first_seen if g.first_seen is None else min(g.first_seen, row.first_seen)
    g.last_seen = row.last_seen if g.last_seen is None else max(g.last_seen, row.last_seen)
    for hour, n in row.hourly.items():
        g.hourly[hour] = g.hourly.get(hour, 0) + n
    for attr, values in (("operations", row.operations), ("roles", [row.role]), ("problem_ids", [row.problem_id]),
                         ("sources", [row.source]), ("versions", row.versions)):
        current: list[str] = getattr(g, attr)
        for v in values:
            if v and v not in current and len(current) < 50:
                current.append(v)
        current.sort()
