"""Deterministic triage documents: the triage file, PR title and body, the daily update comment. Pure.

Everything here is rendered from redacted evidence only. Untrusted text is fenced (with a fence longer than any
backtick run inside it) and never placed where GitHub would interpret mentions or references.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from healers.errors.redact import redact
from healers.errors.rank import Ranked

TRIAGE_DIR = ".healer/errors"
MAX_BAR = 40
MAX_DIFF_IN_BODY = 30_000  # GitHub caps a PR body at 65,536 characters; the diagnosis needs room too
_MARKER = re.compile(r"<!-- healer-errors:triage sha256=([0-9a-f]{64}) occurrences=(\d+) -->")


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime

    @property
    def key(self) -> str:
        return f"{iso(self.start)}/{iso(self.end)}"

    @property
    def day(self) -> dt.date:
        """The day a window counts for in the baseline: the day its last instant falls on."""
        return (self.end - dt.timedelta(microseconds=1)).astimezone(dt.UTC).date()


def iso(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def branch_name(short: str) -> str:
    return f"healer/errors/{short}"


def triage_path(short: str, directory: str = TRIAGE_DIR) -> str:
    return f"{directory.strip('/')}/{short}.md"


def diagnosis_path(short: str, directory: str = TRIAGE_DIR) -> str:
    return f"{directory.strip('/')}/{short}.diagnosis.md"


def proposed_fix_path(short: str, directory: str = TRIAGE_DIR) -> str:
    """Where a model-proposed change is delivered: a patch file next to the triage file, never applied."""
    return f"{directory.strip('/')}/{short}.proposed-fix.patch"


def triage_hash(triage: str) -> str:
    return hashlib.sha256(triage.encode("utf-8")).hexdigest()


def record_marker(triage: str, occurrences: int) -> str:
    """Hidden marker that ties a PR body or update comment to the triage content it reports."""
    return f"<!-- healer-errors:triage sha256={triage_hash(triage)} occurrences={int(occurrences)} -->"


def marker_in(body: str | None) -> tuple[str, int] | None:
    """(triage hash, occurrences) of the last marker in a PR body or comment, or None."""
    found = _MARKER.findall(body or "")
    return (found[-1][0], int(found[-1][1])) if found else None


def fence(text: str, lang: str = "text") -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def inline(text: str, limit: int = 160) -> str:
    """Untrusted text for a single line outside a code block: no newlines, no mentions, no references."""
    text = re.sub(r"\s+", " ", redact(text or "")).strip()[:limit]
    text = text.replace("@", "(at)").replace("#", "(hash)").replace("`", "'")
    text = re.sub(r"[<>\[\]]", "", text)
    return text


def pr_title(r: Ranked, regression: bool) -> str:
    prefix = "Regression: " if regression else ""
    return f"[healer] {prefix}{inline(r.group.title, 100)} ({r.group.short})"


def _hours(hourly: dict[str, int]) -> str:
    if not hourly:
        return "_no hourly data_"
    peak = max(hourly.values()) or 1
    lines = ["| hour (UTC) | count | |", "| --- | ---: | --- |"]
    for hour in sorted(hourly):
        n = hourly[hour]
        lines.append(f"| {inline(hour, 20)} | {n} | {'#' * max(1, round(MAX_BAR * n / peak)) if n else ''} |")
    return "\n".join(lines)


def _call_lines(g) -> list[str]:
    """The failed-call facts of a dependency/request group (none for exception groups)."""
    if g.kind != "call":
        return []
    return [f"- Failure: **{inline(g.failure, 40)}** (result code `{inline(g.result_code, 40)}`)",
            f"- Target: `{inline(g.target or '-', 200)}`; operation: `{inline(g.template, 200)}`"]


def related_section(g) -> list[str]:
    if not g.related:
        return []
    return ["", "## Related actions by other healers", "", *[f"- {inline(line, 300)}" for line in g.related]]


def code_section(view, base: str, deploy: str = "") -> str:
    """Which commit the evidence comes from, whether the frames still exist on the base branch, and the deployment
    the group appeared after. `view`: a history.CodeView."""
    p = view.provenance
    lines = ["## Code at the time", "", p.sentence(inline(base, 100))]
    if p.mapped:
        lines.append(f"Files read with {view.via} at `{p.sha[:12]}`.")
    if deploy:
        lines += ["", f"Deployment: {inline(deploy, 300)}."]
    if view.on_base:
        lines.append("")
        for path, present in sorted(view.on_base.items()):
            where = "still at this path" if present else "**no longer at this path** (moved or deleted)"
            lines.append(f"- `{inline(path, 200)}`: {where} on `{inline(base, 100)}`")
    elif p.mapped or view.sources:
        lines.append("")
    return "\n".join(lines)


def triage_file(r: Ranked, window: Window, repro_kql: str, schema: str, code: str = "") -> str:
    g = r.group
    listing = lambda values: ", ".join(f"`{inline(v, 120)}`" for v in values) or "-"  # noqa: E731
    parts = [
        f"# Healer error triage: {inline(g.title, 140)}",
        "",
        "Drafted by Healer from Application Insights telemetry. Evidence is redacted; nothing here acts on anything.",
        "",
        f"- Fingerprint: `{g.fingerprint}` ({g.kind} signature)",
        f"- Window: {iso(window.start)} to {iso(window.end)}",
        f"- Change: **{r.change}** ({inline(r.reason, 200)})",
        f"- Occurrences (sampling-weighted, itemCount): **{g.occurrences}** in {g.rows} aggregated row(s)",
        f"- First seen: {iso(g.first_seen)}; last seen: {iso(g.last_seen)}",
        f"- Exception type: `{inline(g.type, 200)}`",
        *_call_lines(g),
        f"- Versions seen: {listing(g.versions)}",
        f"- Roles: {listing(g.roles)}",
        f"- Operations: {listing(g.operations)}",
        f"- Problem ids: {listing(g.problem_ids)}",
        f"- Sources: {', '.join(g.sources)}",
        "",
        "## Counts per hour",
        "",
        _hours(g.hourly),
        "",
        "## Sample message",
        "",
        fence(redact(g.sample_message) or "(none)"),
        "",
        "## Message variants (most frequent first)",
        "",
        fence("\n".join(f"{n:>8}  {redact(m)[:300]}" for m, n in g.top_variants()) or "(none)"),
        "",
        "## Sample stack",
        "",
        fence(redact(g.sample_stack) or "(no stack: grouped by message template)"),
    ]
    if g.kind == "message":
        parts += ["", "## Message template", "", fence(redact(g.template))]
    parts += related_section(g)
    if code:
        parts += ["", code]
    parts += ["", f"## Reproduce in Logs ({schema} schema)", "", fence(repro_kql, "kusto"), ""]
    return "\n".join(parts)


def proposed_change_section(diff: str, patch_path: str, branch: str, checked_ref: str) -> str:
    """The model's change as a reviewable diff in the PR body: machine-drafted, unreviewed, applied by nobody."""
    steps = "\n".join([f"git fetch origin {branch}",
                       f"git show FETCH_HEAD:{patch_path} > proposed-fix.patch",
                       "git apply --check proposed-fix.patch && git apply proposed-fix.patch"])
    parts = [
        "## Proposed change (machine-drafted, unreviewed)", "",
        "> [!WARNING]",
        "> This change was **drafted by a language model and has not been reviewed by anyone**. It is **not applied** "
        "on this branch: the branch only adds Healer's files under "
        f"`{TRIAGE_DIR}/`, so no workflow runs it. It applied cleanly (`git apply --check`) to the files at "
        f"`{inline(checked_ref, 100)}`. Read it in full before trying it locally:", "",
        fence(steps, "sh"), "",
    ]
    if len(diff) <= MAX_DIFF_IN_BODY:
        parts.append(fence(diff, "diff"))
    else:
        parts.append(f"_The diff ({len(diff)} characters) is too long to show here; it is in `{patch_path}`._")
    return "\n".join(parts)


def pr_body(r: Ranked, window: Window, triage: str, regression_of: int | None, diagnosis: str | None,
            diagnosis_note: str, change: str | None = None, code: str = "") -> str:
    """`change`: the rendered proposed-change section, when the model proposed one that applies cleanly."""
    g = r.group
    parts = [
        f"Healer found **{g.occurrences}** occurrence(s) of this error between {iso(window.start)} and "
        f"{iso(window.end)} ({r.change}).",
        "",
        f"- Triage: `{triage}`",
        f"- Roles: {len(g.roles)}, operations: {len(g.operations)}, fingerprint `{g.short}`",
    ]
    if g.kind == "call":
        parts.append(f"- Failed calls: **{inline(g.failure, 40)}** (result code `{inline(g.result_code, 40)}`) to "
                     f"`{inline(g.target or '-', 200)}`, operation `{inline(g.template, 200)}`")
    parts += [f"- {inline(line, 300)}" for line in g.related]
    if regression_of:
        parts.append(f"- This came back after pull request {regression_of} was merged: drafted again as a regression.")
    if r.deploy:
        parts.append(f"- New after a deployment: {inline(r.deploy, 300)}")
    if code:
        parts += ["", code]
    parts += ["", "## Diagnosis", ""]
    parts.append(diagnosis if diagnosis else f"_No model diagnosis: {inline(diagnosis_note, 200)}._")
    if change:
        parts += ["", change]
    parts += ["", "---", "Draft opened by Healer. Healer never merges: review, edit or close it. The branch only "
              f"adds files under `{TRIAGE_DIR}/` (the triage file and, when a model proposed one, its diagnosis and "
              "a patch file); it never changes source, build, test or CI files."]
    return "\n".join(parts)


def update_comment(r: Ranked, window: Window, previous_occurrences: int | None, triage: str) -> str:
    """The daily comment; it carries the hash of the triage it reports, so a lost comment is noticed and posted."""
    g = r.group
    before = f" (previous triage: {previous_occurrences})" if previous_occurrences is not None else ""
    return (f"Healer update for {iso(window.start)} to {iso(window.end)}: **{g.occurrences}** occurrence(s){before}; "
            f"{r.change}: {inline(r.reason, 200)}. Last seen {iso(g.last_seen)}; roles {len(g.roles)}, "
            f"operations {len(g.operations)}. The triage file was updated.\n\n{record_marker(triage, g.occurrences)}")


def occurrences_in(triage: str) -> int | None:
    m = re.search(r"Occurrences \(sampling-weighted, itemCount\): \*\*(\d+)\*\*", triage or "")
    return int(m.group(1)) if m else None


def window_in(triage: str) -> str | None:
    m = re.search(r"^- Window: (\S+) to (\S+)$", triage or "", re.M)
    return f"{m.group(1)}/{m.group(2)}" if m else None


def diagnosis_markdown(summary: str, cause: str, fix: str, confidence: str, patch_note: str) -> str:
    """The model's output, as untrusted text: redacted, mentions neutralised, fenced where it is free text."""
    clean = lambda s: redact(s).replace("@", "@\u200b")  # noqa: E731
    return "\n".join([
        "_Drafted by a language model from the redacted evidence and source files. Verify before acting._",
        "", f"**Confidence:** {inline(confidence, 20)}", "", "**Summary**", "", fence(clean(summary)),
        "", "**Likely cause**", "", fence(clean(cause)), "", "**Proposed fix**", "", fence(clean(fix)),
        "", f"**Proposed change:** {inline(patch_note, 300)}"])
