"""The error-clustering healer's imperative shell: collect → cluster → rank → draft, with state and audit.

Idempotent across runs: GitHub is the record of pull requests (found by head branch), the triage file's content
is a pure function of the window's evidence (same window → same bytes → no commit, no comment), and the
per-fingerprint baseline stores each day's count by day (set, not added).
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from healers.errors import kql, llm, stacks
from healers.errors.cluster import Group, cluster
from healers.errors.collect import CollectError, Collected, Source, collect
from healers.errors.github import GitHubError, Repo
from healers.errors.patch import check_and_apply
from healers.errors.rank import Ranked, rank, updated_baseline
from healers.errors.redact import redact
from healers.errors.triage import (Window, branch_name, diagnosis_markdown, diagnosis_path, iso, occurrences_in,
                                   pr_body, pr_title, triage_file, triage_path, update_comment, window_in)
from shared import audit
from shared.config import ConfigError, Settings
from shared.controls import read_mode
from shared.policy import evaluate, load_policy
from shared.state import Record, Store, acquire_lease, release_lease

log = logging.getLogger("healer.errors")
HEALER = "errors"
QUEUE = "healer-errors"
ACTION = "errors.draft-pr"
MAX_ATTEMPTS = 6
BASELINE_TABLE, BASELINE_PARTITION = "errorsfp", "fp"
MAX_SOURCE_BYTES = 200_000
MAX_WINDOW = dt.timedelta(days=7)


@dataclass(frozen=True)
class ErrorsConfig:
    source: Source
    top_n: int
    baseline_days: int
    in_app_prefixes: tuple[str, ...]
    github_api: str
    repository: str | None
    token: str | None
    base_branch: str | None
    source_ref: str | None
    source_prefix: str
    model: llm.ModelConfig | None
    token_budget: int
    window_hours: int


def _int(settings: Settings, name: str, lo: int, hi: int) -> int:
    try:
        value = int(settings.require(name))
    except ValueError:
        raise ConfigError(f"setting {name} must be an integer") from None
    if not lo <= value <= hi:
        raise ConfigError(f"setting {name} must be between {lo} and {hi}")
    return value


def load_config(settings: Settings) -> ErrorsConfig:
    schema = settings.require("HEALER_ERRORS_SCHEMA").lower()
    if schema not in ("classic", "workspace"):
        raise ConfigError("setting HEALER_ERRORS_SCHEMA must be 'classic' or 'workspace'")
    provider = settings.require("HEALER_ERRORS_LLM_PROVIDER").lower()
    if provider not in ("none", "azure", "openai"):
        raise ConfigError("setting HEALER_ERRORS_LLM_PROVIDER must be 'none', 'azure' or 'openai'")
    model = None
    if provider != "none":
        try:
            timeout = float(settings.require("HEALER_ERRORS_LLM_TIMEOUT_SECONDS"))
        except ValueError:
            raise ConfigError("setting HEALER_ERRORS_LLM_TIMEOUT_SECONDS must be a number") from None
        model = llm.ModelConfig(
            provider=provider, endpoint=settings.require("HEALER_ERRORS_LLM_ENDPOINT"),
            model=settings.require("HEALER_ERRORS_LLM_MODEL"),
            api_version=settings.require("HEALER_ERRORS_LLM_API_VERSION"),
            api_key=settings.get("HEALER_ERRORS_LLM_API_KEY") if provider == "openai" else None,
            audience=settings.require("HEALER_ERRORS_LLM_AUDIENCE"), timeout=timeout,
            max_retries=_int(settings, "HEALER_ERRORS_LLM_MAX_RETRIES", 0, 10))
    prefixes = tuple(p.strip() for p in (settings.get("HEALER_ERRORS_IN_APP_PREFIXES") or "").split(",") if p.strip())
    return ErrorsConfig(
        source=Source(schema=schema, workspace_id=settings.get("HEALER_ERRORS_WORKSPACE_ID"),  # type: ignore[arg-type]
                      resource_id=settings.get("HEALER_ERRORS_RESOURCE_ID"),
                      endpoint=settings.require("HEALER_ERRORS_LOGS_ENDPOINT"),
                      include_traces=(settings.get("HEALER_ERRORS_INCLUDE_TRACES") or "").lower() in ("1", "true",
                                                                                                       "yes"),
                      max_rows=_int(settings, "HEALER_ERRORS_MAX_ROWS", 1, 100_000)),
        top_n=_int(settings, "HEALER_ERRORS_TOP_N", 0, 50),
        baseline_days=_int(settings, "HEALER_ERRORS_BASELINE_DAYS", 1, 60),
        in_app_prefixes=prefixes,
        github_api=settings.require("HEALER_ERRORS_GITHUB_API_URL"),
        repository=settings.get("HEALER_ERRORS_GITHUB_REPOSITORY"),
        token=settings.get("HEALER_ERRORS_GITHUB_TOKEN"),
        base_branch=settings.get("HEALER_ERRORS_BASE_BRANCH"),
        source_ref=settings.get("HEALER_ERRORS_SOURCE_REF"),
        source_prefix=(settings.get("HEALER_ERRORS_SOURCE_PREFIX") or "").strip("/"),
        model=model, token_budget=_int(settings, "HEALER_ERRORS_LLM_TOKEN_BUDGET", 0, 10_000_000),
        window_hours=_int(settings, "HEALER_ERRORS_WINDOW_HOURS", 1, 168))


def default_window(now: dt.datetime, hours: int) -> Window:
    end = now.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    return Window(end - dt.timedelta(hours=hours), end)


def check_window(start: dt.datetime, end: dt.datetime, now: dt.datetime) -> Window:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end need a UTC offset")
    if not start < end:
        raise ValueError("start must be before end")
    if end - start > MAX_WINDOW:
        raise ValueError("a window is at most 7 days")
    if end > now + dt.timedelta(minutes=5):
        raise ValueError("end is in the future")
    return Window(start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc))


# ---------------------------------------------------------------------------------------------- clients

@dataclass
class Clients:
    """The outside world, injectable: tests pass clients pointed at stand-ins; Azure builds them from settings."""
    logs: Any = None
    repo: Repo | None = None
    model: Any = None


def build_clients(cfg: ErrorsConfig) -> Clients:
    from shared.identity import credential
    from healers.errors.collect import make_client as logs_client
    repo = None
    if cfg.repository:
        if not cfg.token:
            raise ConfigError("setting HEALER_ERRORS_GITHUB_TOKEN is required with HEALER_ERRORS_GITHUB_REPOSITORY")
        repo = Repo(cfg.github_api, cfg.token, cfg.repository)
    model = llm.make_client(cfg.model) if cfg.model else None
    return Clients(logs_client(cfg.source, credential()), repo, model)


# ---------------------------------------------------------------------------------------------- run

@dataclass
class Report:
    window: str
    outcome: str = "ok"
    reason: str = ""
    rows: int = 0
    groups: int = 0
    partial: list[str] = field(default_factory=list)
    drafted: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _audit(settings: Settings, outcome: str, reason: str, resource: str, subject: str, now: dt.datetime,
           **details: Any) -> None:
    audit.record(settings, healer=HEALER, outcome=outcome, reason=reason, resource=resource, subject=subject,
                 details=details, now=now)


def run(settings: Settings, window: Window, *, clients: Clients | None = None,
        now: Callable[[], dt.datetime] | None = None, trigger: str = "timer") -> Report:
    """One run over `window`. Raises CollectError when the logs cannot be read (callers retry later)."""
    clock = now or (lambda: dt.datetime.now(dt.timezone.utc))
    t = clock()
    cfg = load_config(settings)
    report = Report(window=window.key)
    resource = f"github:{cfg.repository}" if cfg.repository else "github:(not configured)"
    mode = read_mode(settings, HEALER)
    if mode.killed:
        _audit(settings, "skipped", f"error clustering not run: {mode.reason}", resource, window.key, t)
        report.outcome, report.reason = "skipped", mode.reason
        return report
    ops = Store(settings, "ops")
    owner = uuid.uuid4().hex[:12]
    lease = acquire_lease(ops, HEALER, "run", owner, max(settings.lease_seconds, 900), t)
    if lease is None:
        report.outcome, report.reason = "busy", "another error-clustering run holds the lease"
        return report
    try:
        clients = clients or build_clients(cfg)
        collected = collect(clients.logs, cfg.source, window.start, window.end)
        _run_collected(settings, cfg, window, collected, clients, mode.dry_run, mode.reason, resource, report,
                       clock, trigger)
    finally:
        release_lease(ops, lease)
    return report


def _run_collected(settings: Settings, cfg: ErrorsConfig, window: Window, collected: Collected, clients: Clients,
                   dry_run: bool, mode_reason: str, resource: str, report: Report,
                   clock: Callable[[], dt.datetime], trigger: str) -> None:
    t = clock()
    report.rows, report.partial = len(collected.rows), collected.partial
    baselines_store = Store(settings, BASELINE_TABLE)
    baselines = {rec.row: rec.data for rec in baselines_store.query(BASELINE_PARTITION, limit=20_000)}
    known = [f"{d.get('type')}|{d.get('template')}" for d in baselines.values()
             if d.get("kind") == "message" and d.get("template")]
    groups = cluster(collected.rows, known_templates=known, in_app_prefixes=cfg.in_app_prefixes)
    ranked = rank(groups, baselines, window.day, cfg.baseline_days)
    report.groups = len(groups)
    policy_doc, why = load_policy(settings.policy_document)
    policy = evaluate(policy_doc, ACTION, resource, why)
    budget = llm.Budget(cfg.token_budget)
    top = ranked[:cfg.top_n]
    for r in top:
        subject = r.group.short
        entry = {"fingerprint": r.group.fingerprint, "title": r.group.title, "occurrences": r.group.occurrences,
                 "change": r.change, "score": r.score}
        if dry_run:
            entry["result"] = "dry-run"
            _audit(settings, "dry-run", f"would draft or update a PR for {r.group.title} ({mode_reason})", resource,
                   subject, t, **entry)
        elif policy.effect == "deny":
            entry["result"] = "refused"
            _audit(settings, "refused", f"policy denies {ACTION}: {policy.reason}", resource, subject, t, **entry)
        elif clients.repo is None:
            entry["result"] = "recorded"
            _audit(settings, "recorded", "no GitHub repository configured: triage recorded only", resource, subject,
                   t, **entry)
        else:
            try:
                result, detail = draft(cfg, clients, r, window, budget)
            except GitHubError as exc:
                result, detail = "failed", str(exc)
            entry.update(result=result, detail=detail)
            outcome = {"created": "acted", "regression": "acted", "updated": "acted", "unchanged": "duplicate",
                       "dismissed": "skipped", "stale": "skipped", "failed": "failed"}[result]
            _audit(settings, outcome, f"{result}: {detail}", resource, subject, t, **entry)
        report.drafted.append(entry)
    report.tokens = budget.spent
    for g in groups:
        baselines_store.upsert(Record(BASELINE_PARTITION, g.fingerprint,
                                      updated_baseline(baselines.get(g.fingerprint), g, window.day,
                                                       cfg.baseline_days + 1)))
    _audit(settings, "recorded", f"{trigger} run over {window.key}: {len(collected.rows)} rows, {len(groups)} groups, "
           f"{len(top)} considered" + (f"; PARTIAL results: {'; '.join(collected.partial)}" if collected.partial
                                       else ""), resource, window.key, t,
           drafted=[{k: e.get(k) for k in ("fingerprint", "result")} for e in report.drafted], tokens=budget.spent)


# ---------------------------------------------------------------------------------------------- drafting

def draft(cfg: ErrorsConfig, clients: Clients, r: Ranked, window: Window, budget: llm.Budget) -> tuple[str, str]:
    """Open or update the draft PR of one group. Returns (result, detail)."""
    repo = clients.repo
    assert repo is not None
    g = r.group
    branch, path = branch_name(g.short), triage_path(g.short)
    repro = kql.repro_query(cfg.source.schema, g.sources[0] if g.sources else "exceptions", g.problem_ids,
                            [g.type], window.start, window.end)
    text = redact(triage_file(r, window, repro, cfg.source.schema))
    pulls = repo.pulls_for(branch)
    open_pr = next((p for p in pulls if p.state == "open"), None)
    if open_pr is not None:
        current = repo.file(path, branch)
        if current is not None and current[0] == text:
            return "unchanged", f"PR #{open_pr.number} already has this window's triage"
        previous_window = window_in(current[0]) if current else None
        if previous_window and previous_window.split("/")[1] > iso(window.end):
            return "stale", f"PR #{open_pr.number} holds a later window ({previous_window})"
        before = occurrences_in(current[0]) if current else None
        repo.put_file(branch, path, text, f"healer: update triage for {g.short} ({window.key})")
        repo.comment(open_pr.number, update_comment(r, window, before))
        return "updated", f"PR #{open_pr.number} triage updated and commented"
    latest = pulls[0] if pulls else None
    if latest is not None and not latest.merged:
        return "dismissed", f"PR #{latest.number} was closed without merging; not drafting again"
    regression_of = latest.number if latest is not None else None
    base = cfg.base_branch or repo.default_branch()
    base_sha = repo.head_sha(base)
    if base_sha is None:
        raise GitHubError(f"base branch {base!r} not found")
    if repo.head_sha(branch) is None:
        repo.create_branch(branch, base_sha)
    else:
        repo.reset_branch(branch, base_sha)  # no open PR on it: a merged or abandoned branch is reused
    repo.put_file(branch, path, text, f"healer: triage for {g.short} ({window.key})")
    diagnosis, note = None, "no model configured"
    if clients.model is not None and cfg.model is not None:
        diagnosis, note = _diagnose(cfg, clients, repo, g, base, branch, budget)
    number = repo.open_draft(branch, base, pr_title(r, regression_of is not None),
                             redact(pr_body(r, window, path, regression_of, diagnosis, note)))
    result = "regression" if regression_of else "created"
    return result, f"draft PR #{number} on {branch}" + (f" (regression of #{regression_of})" if regression_of
                                                         else "") + f"; {note}"


def _diagnose(cfg: ErrorsConfig, clients: Clients, repo: Repo, g: Group, base: str, branch: str,
              budget: llm.Budget) -> tuple[str | None, str]:
    ref = cfg.source_ref or base
    sources: dict[str, str] = {}
    for file in stacks.in_app_files(g.frames):
        for candidate in ([f"{cfg.source_prefix}/{file}"] if cfg.source_prefix else []) + [file]:
            got = repo.file(candidate, ref)
            if got is not None and len(got[0]) <= MAX_SOURCE_BYTES:
                sources[candidate] = got[0]
                break
    evidence = llm.evidence_document(g.title, g.type, g.occurrences, g.roles, g.operations, g.sample_message,
                                     g.sample_stack, g.template, sources, g.top_variants())
    outcome = llm.diagnose(clients.model, cfg.model, evidence, budget)  # type: ignore[arg-type]
    if outcome.diagnosis is None:
        return None, outcome.note
    d = outcome.diagnosis
    patch_note = "none proposed"
    if d.patch:
        applied = check_and_apply(d.patch, sources)
        patch_note = applied.reason
        if applied.ok:
            for path, text in applied.files.items():
                repo.put_file(branch, path, text, f"healer: proposed change for {g.short} (model-drafted, review)")
            patch_note = f"committed to this branch; {applied.reason}"
        else:
            patch_note = f"not included ({applied.reason}); diagnosis only"
    md = diagnosis_markdown(d.summary, d.likely_cause, d.proposed_fix, d.confidence, patch_note)
    repo.put_file(branch, diagnosis_path(g.short), md, f"healer: model diagnosis for {g.short}")
    return md, outcome.note + f"; change: {patch_note}"


def work_message(window: Window, by: str) -> dict[str, Any]:
    return {"v": 1, "kind": "run", "start": iso(window.start), "end": iso(window.end), "by": by[:200], "attempt": 0}


def handle(settings: Settings, message: dict[str, Any], *, clients: Clients | None = None,
           now: Callable[[], dt.datetime] | None = None) -> str:
    """Queue handler: run the window in the message. RetryLater on throttling or a busy lease."""
    from shared.work import Discard, RetryLater
    try:
        start = dt.datetime.fromisoformat(str(message["start"]).replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(str(message["end"]).replace("Z", "+00:00"))
        window = Window(start, end)
    except (KeyError, ValueError) as exc:
        raise Discard(f"bad run message: {exc}") from None
    try:
        report = run(settings, window, clients=clients, now=now, trigger="manual")
    except CollectError as exc:
        if exc.status in (None, 429) or (exc.status or 0) >= 500:
            raise RetryLater(120, exc.reason) from None
        _audit(settings, "failed", exc.reason, "", window.key, (now or (lambda: dt.datetime.now(dt.timezone.utc)))())
        return "failed"
    if report.outcome == "busy":
        raise RetryLater(60, report.reason)
    return report.outcome
