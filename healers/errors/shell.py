"""The error-clustering healer's imperative shell: collect → cluster → rank → draft, with state and audit.

Idempotent across runs: GitHub is the record of pull requests (found by head branch), the triage file's content
is a pure function of the window's evidence (same window → same bytes → no commit, no comment), and the
per-fingerprint baseline stores each day's count by day (set, not added). The PR body and every update comment
carry the hash of the triage they report, so a comment lost between the commit and the comment is posted by the
next run.

One run holds the run lease; it is renewed before each group is drafted, and no group is started that might not
finish inside the run's time budget: those are deferred (audited) and drafted first by the next run.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

from healers.errors import kql, llm, stacks
from healers.errors.cluster import Group, cluster
from healers.errors.collect import CollectError, Collected, Source, collect
from healers.errors.context import (attach_related, deploy_sentences, judge_merge, open_history, record_effect,
                                    version_config, version_dimension)
from healers.errors.history import CodeView, History, VersionConfig
from healers.errors.github import GitHubApp, GitHubAuthError, GitHubError, PullRef, Repo, app_private_key
from healers.errors.patch import check_and_apply
from healers.errors.rank import Ranked, rank, updated_baseline
from healers.errors.redact import redact
from healers.errors.triage import (Window, branch_name, code_section, diagnosis_markdown, diagnosis_path, iso,
                                   marker_in, occurrences_in, pr_body, pr_title, proposed_change_section, proposed_fix_path,
                                   record_marker, triage_file, triage_hash, triage_path, update_comment, window_in)
from shared import approvals, audit, gate
from shared.config import ConfigError, Settings
from shared.state import Conflict, Lease, Record, Store, acquire_lease, release_lease, renew_lease

log = logging.getLogger("healer.errors")
HEALER = "errors"
QUEUE = "healer-errors"
DRAFT, UPDATE = "errors.draft", "errors.update"  # shared.gate action names
# A gate call site inside drafting: (action, plan) → None to go ahead, else the (result, detail) of not acting.
Gatekeeper = Callable[[str, str], "tuple[str, str] | None"]
MAX_ATTEMPTS = 6
BASELINE_TABLE, BASELINE_PARTITION = "errorsfp", "fp"
MAX_SOURCE_BYTES = 200_000
MAX_WINDOW = dt.timedelta(days=7)
RUN_LEASE_SECONDS = 900
RUN_BUDGET_SECONDS = 540.0  # host.json functionTimeout is 10 minutes: keep a minute for baselines and audit
GITHUB_ALLOWANCE_SECONDS = 60.0  # what one group's GitHub calls may take
DEFERRED_ROW = "deferred"  # ops/<HEALER>/deferred: fingerprints the last run deferred
DEFERRED_MAX_AGE = dt.timedelta(days=7)
MAX_CARRIED = 50  # most deferred groups one run carries over to the next
LEASE_LOST = "the run lost its lease (another run took it over)"


@dataclass(frozen=True)
class ErrorsConfig:
    source: Source
    top_n: int
    baseline_days: int
    in_app_prefixes: tuple[str, ...]
    github_api: str
    repository: str | None
    token: str | None
    app: GitHubApp | None
    base_branch: str | None
    source_ref: str | None
    source_prefix: str
    versions: VersionConfig
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


APP_SETTINGS = ("HEALER_ERRORS_GITHUB_APP_ID", "HEALER_ERRORS_GITHUB_APP_INSTALLATION_ID",
                "HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY")
MISSING_GITHUB_AUTH = ("with HEALER_ERRORS_GITHUB_REPOSITORY set, configure HEALER_ERRORS_GITHUB_TOKEN or a GitHub "
                       "App (" + ", ".join(APP_SETTINGS) + ")")


def github_app(settings: Settings) -> GitHubApp | None:
    """The GitHub App settings, checked: all three or none, and not together with a token. Pure."""
    given = {name: (settings.get(name) or "").strip() for name in APP_SETTINGS}
    if not any(given.values()):
        return None
    if settings.get("HEALER_ERRORS_GITHUB_TOKEN"):
        raise ConfigError("settings HEALER_ERRORS_GITHUB_TOKEN and the GitHub App settings (" + ", ".join(
            n for n, v in given.items() if v) + ") are mutually exclusive: configure one way to authenticate")
    missing = [n for n, v in given.items() if not v]
    if missing:
        raise ConfigError("a GitHub App needs all of " + ", ".join(APP_SETTINGS) + "; missing: " + ", ".join(missing))
    ids = {}
    for name in APP_SETTINGS[:2]:
        if not re.fullmatch(r"[0-9]{1,19}", given[name]) or int(given[name]) == 0:
            raise ConfigError(f"setting {name} must be a positive integer")
        ids[name] = int(given[name])
    try:
        key = app_private_key(given["HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY"])
    except ValueError as exc:
        raise ConfigError(f"setting HEALER_ERRORS_GITHUB_APP_PRIVATE_KEY {exc}") from None
    return GitHubApp(ids[APP_SETTINGS[0]], ids[APP_SETTINGS[1]], key)


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
                      max_rows=_int(settings, "HEALER_ERRORS_MAX_ROWS", 1, 100_000),
                      version_dimension=version_dimension(settings)),
        top_n=_int(settings, "HEALER_ERRORS_TOP_N", 0, 50),
        baseline_days=_int(settings, "HEALER_ERRORS_BASELINE_DAYS", 1, 60),
        in_app_prefixes=prefixes,
        github_api=settings.require("HEALER_ERRORS_GITHUB_API_URL"),
        repository=settings.get("HEALER_ERRORS_GITHUB_REPOSITORY"),
        token=settings.get("HEALER_ERRORS_GITHUB_TOKEN"),
        app=github_app(settings),
        base_branch=settings.get("HEALER_ERRORS_BASE_BRANCH"),
        source_ref=settings.get("HEALER_ERRORS_SOURCE_REF"),
        source_prefix=(settings.get("HEALER_ERRORS_SOURCE_PREFIX") or "").strip("/"),
        versions=version_config(settings),
        model=model, token_budget=_int(settings, "HEALER_ERRORS_LLM_TOKEN_BUDGET", 0, 10_000_000),
        window_hours=_int(settings, "HEALER_ERRORS_WINDOW_HOURS", 1, 168))


def default_window(now: dt.datetime, hours: int) -> Window:
    end = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
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
    return Window(start.astimezone(dt.UTC), end.astimezone(dt.UTC))


# ---------------------------------------------------------------------------------------------- clients

@dataclass
class Clients:
    """The outside world, injectable: tests pass clients pointed at stand-ins; Azure builds them from settings."""
    logs: Any = None
    repo: Repo | None = None
    model: Any = None
    history: History | None = None  # versions, deployments and code of this run (when a repository is configured)


def build_clients(cfg: ErrorsConfig) -> Clients:
    from shared.identity import credential
    from healers.errors.collect import make_client as logs_client
    repo = None
    if cfg.repository:
        auth = cfg.app or cfg.token
        if not auth:
            raise ConfigError(MISSING_GITHUB_AUTH)
        repo = Repo(cfg.github_api, auth, cfg.repository)
    model = llm.make_client(cfg.model) if cfg.model else None
    return Clients(logs_client(cfg.source, credential()), repo, model)


# ---------------------------------------------------------------------------------------------- time and lease

def group_reserve_seconds(cfg: ErrorsConfig) -> float:
    """How long drafting one group may take at worst: its GitHub calls and one model request with retries (a
    repair request is only started when there is time left for it)."""
    return GITHUB_ALLOWANCE_SECONDS + (llm.attempt_seconds(cfg.model) if cfg.model is not None else 0.0)


def defer_reason(seconds_left: float, reserve: float) -> str | None:
    """Why the next group must not be started (None: go on). Pure."""
    if seconds_left < reserve:
        return (f"the run is near its time budget ({max(seconds_left, 0.0):.0f} s left; drafting one group may "
                f"take up to {reserve:.0f} s)")
    return None


def drafting_plan(ranked: list[Ranked], top_n: int, carried: set[str]) -> list[Ranked]:
    """The groups to draft, in order: those a previous run deferred (still seen in this window), then the top N.
    Pure."""
    if top_n <= 0:
        return []
    first = [r for r in ranked if r.group.fingerprint in carried][:MAX_CARRIED]
    return first + [r for r in ranked[:top_n] if r.group.fingerprint not in carried]


@dataclass
class RunGuard:
    """Keeps one run inside its lease and its time budget."""
    clock: Callable[[], dt.datetime]
    started: dt.datetime
    budget_seconds: float
    store: Store | None = None
    lease: Lease | None = None
    lease_seconds: int = RUN_LEASE_SECONDS
    lost: bool = False
    stopped: str | None = None

    def left(self, now: dt.datetime | None = None) -> float:
        return self.budget_seconds - ((now or self.clock()) - self.started).total_seconds()

    def renew(self, now: dt.datetime | None = None) -> bool:
        """Push the lease out by lease_seconds. False when it was lost (someone took it over after expiry)."""
        if self.lease is None or self.store is None or self.lost:
            return not self.lost
        try:
            renew_lease(self.store, self.lease, self.lease_seconds, now or self.clock())
        except Conflict:
            self.lost = True
        return not self.lost

    def before_group(self, reserve: float) -> str | None:
        """None to draft the next group (the lease renewed first), else why it and every later group wait."""
        if self.stopped is None:
            now = self.clock()
            self.stopped = defer_reason(self.left(now), reserve) or (None if self.renew(now) else LEASE_LOST)
        return self.stopped


def _carried(ops: Store, now: dt.datetime) -> set[str]:
    rec = ops.get(HEALER, DEFERRED_ROW)
    if rec is None:
        return set()
    try:
        at = dt.datetime.fromisoformat(str(rec.data.get("at")))
    except ValueError:
        return set()
    if now - at > DEFERRED_MAX_AGE:
        return set()
    return {str(fp) for fp in rec.data.get("fingerprints") or [] if isinstance(fp, str)}


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
    deferred: list[str] = field(default_factory=list)  # fingerprints left for the next run
    tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _audit(settings: Settings, outcome: str, reason: str, resource: str, subject: str, now: dt.datetime,
           **details: Any) -> None:
    audit.record(settings, healer=HEALER, outcome=outcome, reason=reason, resource=resource, subject=subject,
                 details=details, now=now)


def run(settings: Settings, window: Window, *, clients: Clients | None = None,
        now: Callable[[], dt.datetime] | None = None, trigger: str = "timer",
        budget_seconds: float = RUN_BUDGET_SECONDS, approved: dict[str, Any] | None = None) -> Report:
    """One run over `window`. Raises CollectError when the logs cannot be read (callers retry later).

    `budget_seconds`: wall time the run may take from its start (by `now`); groups that might not finish inside
    it are deferred to the next run. `approved` ({"fingerprint", "approvalId"}): a human approved one group's draft
    or update; the run re-collects the window and considers only that group, on fresh state."""
    clock = now or (lambda: dt.datetime.now(dt.UTC))
    t = clock()
    report = Report(window=window.key)
    refusal = gate.config_refusal(settings, healer=HEALER, subject=window.key, what="run the error clustering", now=t)
    if refusal is not None:
        report.outcome, report.reason = "refused", refusal.reason
        return report
    cfg = load_config(settings)
    resource = f"github:{cfg.repository}" if cfg.repository else "github:(not configured)"
    mode = gate.read_mode(settings, HEALER, gate.resource_key(resource))
    if mode.killed:  # the gate's kill class for the whole run: nothing is collected, nothing drafted
        _audit(settings, "skipped", f"error clustering not run: {mode.reason}", resource, window.key, t)
        if approved:
            approvals.mark_executed(settings, HEALER, approved["approvalId"], t, "skipped")
        report.outcome, report.reason = "skipped", mode.reason
        return report
    ops = Store(settings, "ops")
    owner = uuid.uuid4().hex[:12]
    lease_seconds = max(settings.lease_seconds, RUN_LEASE_SECONDS)
    lease = acquire_lease(ops, HEALER, "run", owner, lease_seconds, t)
    if lease is None:
        report.outcome, report.reason = "busy", "another error-clustering run holds the lease"
        return report
    guard = RunGuard(clock, t, budget_seconds, ops, lease, lease_seconds)
    try:
        clients = clients or build_clients(cfg)
        collected = collect(clients.logs, cfg.source, window.start, window.end)
        _run_collected(settings, cfg, window, collected, clients, resource, report, guard, ops, t, trigger,
                       approved)
    finally:
        if clients is not None and clients.history is not None:
            clients.history.close()
        release_lease(ops, lease)
    return report


def _gatekeeper(settings: Settings, window: Window, r: Ranked, resource: str, t: dt.datetime,
                approved: dict[str, Any] | None) -> Gatekeeper:
    """The gate call site of one group's draft or update (asked just before GitHub is first written to)."""
    g = r.group

    def allow(action: str, plan: str) -> tuple[str, str] | None:
        verdict = gate.check(settings, gate.Proposal(
            healer=HEALER, action=action, resource=resource, subject=g.short, plan=plan,
            approval_subject=f"{g.short}|{window.key}",
            params={"fingerprint": g.fingerprint, "occurrences": g.occurrences, "score": r.score},
            details={"fingerprint": g.fingerprint, "title": g.title, "occurrences": g.occurrences,
                     "change": r.change, "score": r.score},
            approval_id=approved["approvalId"] if approved else None, queue=QUEUE,
            on_approve={"v": 1, "kind": "approved", "start": iso(window.start), "end": iso(window.end),
                        "fingerprint": g.fingerprint, "by": "approval", "attempt": 0}), t)
        return None if verdict.act else (verdict.outcome, verdict.reason)
    return allow


def _run_collected(settings: Settings, cfg: ErrorsConfig, window: Window, collected: Collected, clients: Clients,
                   resource: str, report: Report, guard: RunGuard, ops: Store, t: dt.datetime, trigger: str,
                   approved: dict[str, Any] | None = None) -> None:
    report.rows, report.partial = len(collected.rows), collected.partial
    baselines_store = Store(settings, BASELINE_TABLE)
    baselines = {rec.row: rec.data for rec in baselines_store.query(BASELINE_PARTITION, limit=20_000)}
    known = [f"{d.get('type')}|{d.get('template')}" for d in baselines.values()
             if d.get("kind") == "message" and d.get("template")]
    groups = cluster(collected.rows, known_templates=known, in_app_prefixes=cfg.in_app_prefixes)
    attach_related(settings, groups, window)
    clients.history = open_history(cfg.versions, clients.repo, cfg.base_branch)  # closed by run()
    ranked = rank(groups, baselines, window.day, cfg.baseline_days, deploy_sentences(clients.history, groups))
    report.groups = len(groups)
    budget = llm.Budget(cfg.token_budget)
    drafting = clients.repo is not None and approved is None
    carried = _carried(ops, t) if drafting else set()
    top = drafting_plan(ranked, cfg.top_n, carried)
    if approved is not None:  # an approved group only, re-decided on this fresh collection
        top = [r for r in ranked if r.group.fingerprint == approved["fingerprint"]]
        if not top:
            approvals.mark_executed(settings, HEALER, approved["approvalId"], t, "skipped")
            _audit(settings, "skipped", f"approved group {approved['fingerprint'][:16]} is no longer in the "
                   f"window's errors: nothing to draft", resource, approved["fingerprint"][:16], t,
                   approvalId=approved["approvalId"])
    reserve = group_reserve_seconds(cfg)
    time_left = lambda: guard.left() - GITHUB_ALLOWANCE_SECONDS  # noqa: E731  (what a model call may use)
    auth_failure: str | None = None
    for r in top:
        subject = r.group.short
        entry = {"fingerprint": r.group.fingerprint, "title": r.group.title, "occurrences": r.group.occurrences,
                 "change": r.change, "score": r.score}
        if approved is not None:
            entry["approvalId"] = approved["approvalId"]
        if clients.repo is None:
            entry["result"] = "recorded"
            _audit(settings, "recorded", "no GitHub repository configured: triage recorded only", resource, subject,
                   t, **entry)
        elif (deferral := guard.before_group(reserve)) is not None:
            entry["result"] = "deferred"
            report.deferred.append(r.group.fingerprint)
            _audit(settings, "skipped", f"deferred to the next run: {deferral}", resource, subject, t, **entry)
        else:
            if r.group.fingerprint in carried:
                entry["carried"] = True
            if auth_failure is not None:  # GitHub refused the credentials: the other groups would fail alike
                result, detail = "failed", f"not attempted: {auth_failure}"
            else:
                try:
                    result, detail = draft(cfg, clients, r, window, budget, time_left,
                                           _gatekeeper(settings, window, r, resource, t, approved))
                except GitHubAuthError as exc:
                    auth_failure = str(exc)
                    result, detail = "failed", auth_failure
                except GitHubError as exc:
                    result, detail = "failed", str(exc)
            entry.update(result=result, detail=detail)
            if result in gate.GATED_OUTCOMES:  # the gate stopped it and audited it
                report.drafted.append(entry)
                continue
            outcome = {"created": "acted", "regression": "acted", "updated": "acted", "unchanged": "duplicate",
                       "dismissed": "skipped", "stale": "skipped", "failed": "failed"}[result]
            _audit(settings, outcome, f"{result}: {detail}", resource, subject, t, **entry)
            if approved is not None:
                approvals.mark_executed(settings, HEALER, approved["approvalId"], t, outcome)
        report.drafted.append(entry)
    report.tokens = budget.spent
    # the lease covers the baseline writes too; a lost lease leaves the carry-over record to the run that holds it
    if drafting and guard.renew() and (report.deferred or carried):
        ops.upsert(Record(HEALER, DEFERRED_ROW, {"at": t.isoformat(), "window": window.key,
                                                 "fingerprints": report.deferred[:MAX_CARRIED]}))
    for g in groups:
        baselines_store.upsert(Record(BASELINE_PARTITION, g.fingerprint,
                                      updated_baseline(baselines.get(g.fingerprint), g, window.day,
                                                       cfg.baseline_days + 1)))
    _audit(settings, "recorded", f"{trigger} run over {window.key}: {len(collected.rows)} rows, {len(groups)} groups, "
           f"{len(top)} considered" + (f"; {len(report.deferred)} deferred to the next run ({guard.stopped})"
                                       if report.deferred else "")
           + (f"; PARTIAL results: {'; '.join(collected.partial)}" if collected.partial else ""), resource,
           window.key, t, drafted=[{k: e.get(k) for k in ("fingerprint", "result")} for e in report.drafted],
           deferred=report.deferred, tokens=budget.spent)


# ---------------------------------------------------------------------------------------------- drafting

def _go_ahead(action: str, plan: str) -> tuple[str, str] | None:
    return None


def draft(cfg: ErrorsConfig, clients: Clients, r: Ranked, window: Window, budget: llm.Budget,
          time_left: Callable[[], float] | None = None, allow: Gatekeeper = _go_ahead) -> tuple[str, str]:
    """Open or update the draft PR of one group. Returns (result, detail).

    Writes only under the triage folder of the group's branch (Repo refuses anything else): the triage file and,
    with a model, its diagnosis and a proposed change as a patch file. Nothing model-written is ever committed as
    source, so no workflow triggered by the push runs it."""
    repo = clients.repo
    assert repo is not None
    g = r.group
    branch, path = branch_name(g.short), triage_path(g.short)
    repro = kql.repro_query(cfg.source.schema, g.sources[0] if g.sources else "exceptions", g.problem_ids,
                            [g.type], window.start, window.end, g.target, g.result_code)
    if clients.history is not None and clients.history.auth_error is not None:
        raise clients.history.auth_error  # GitHub refused the credentials when the deployments were read
    view = clients.history.code(g, cfg.source_prefix, cfg.source_ref) if clients.history is not None else None
    code = code_section(view, clients.history.base, r.deploy) if view is not None and clients.history else ""
    text = redact(triage_file(r, window, repro, cfg.source.schema, code))
    pulls = repo.pulls_for(branch)
    open_pr = next((p for p in pulls if p.state == "open"), None)
    if open_pr is not None:
        return _update(repo, open_pr, branch, path, text, r, window, allow)
    latest = pulls[0] if pulls else None
    if latest is not None and not latest.merged:
        return "dismissed", f"PR #{latest.number} was closed without merging; not drafting again"
    regression_of = latest.number if latest is not None else None
    if latest is not None and clients.history is not None:
        judged = judge_merge(clients.history, latest, g, window)
        if judged.verdict != "regression":
            stopped = allow(UPDATE, f"record the effect of merged PR #{latest.number} for {g.title[:200]}")
            if stopped is not None:
                return stopped
            return record_effect(repo, latest, branch, path, text, judged)
        code = f"Effect of pull request {latest.number}: {judged.sentence()}.\n\n" + code
    stopped = allow(DRAFT, f"draft a pull request on {branch} for {g.title[:200]}"
                    + (f" (regression of #{regression_of})" if regression_of else ""))
    if stopped is not None:
        return stopped
    base = cfg.base_branch or repo.default_branch()
    base_sha = repo.head_sha(base)
    if base_sha is None:
        raise GitHubError(f"base branch {base!r} not found")
    if repo.head_sha(branch) is None:
        repo.create_branch(branch, base_sha)
    else:
        repo.reset_branch(branch, base_sha)  # no open PR on it: a merged or abandoned branch is reused
    repo.put_file(branch, path, text, f"healer: triage for {g.short} ({window.key})")
    diagnosis, note, change = None, "no model configured", None
    if clients.model is not None and cfg.model is not None:
        diagnosis, note, change = _diagnose(cfg, clients, repo, g, base, branch, budget, time_left, view)
    body = redact(pr_body(r, window, path, regression_of, diagnosis, note, change, code))
    number = repo.open_draft(branch, base, pr_title(r, regression_of is not None),
                             body + "\n\n" + record_marker(text, g.occurrences))
    result = "regression" if regression_of else "created"
    return result, f"draft PR #{number} on {branch}" + (f" (regression of #{regression_of})" if regression_of
                                                         else "") + f"; {note}"


def _last_record(repo: Repo, pr: PullRef) -> tuple[str, int] | None:
    """(triage hash, occurrences) Healer last reported on the PR: its newest marked comment by the PR's author
    (Healer opened the PR), else the PR body."""
    for c in reversed(repo.latest_comments(pr.number)):
        if pr.author and c.author != pr.author:
            continue
        found = marker_in(c.body)
        if found is not None:
            return found
    return marker_in(pr.body)


def _update(repo: Repo, pr: PullRef, branch: str, path: str, text: str, r: Ranked,
            window: Window, allow: Gatekeeper = _go_ahead) -> tuple[str, str]:
    """Commit the new triage, then comment. The comment carries the triage's hash; when the triage on the branch
    is already this one but no comment reports it (the last run stopped between the two), the comment is posted."""
    g = r.group
    current = repo.file(path, branch)
    if current is not None and current[0] == text:
        last = _last_record(repo, pr)
        if last is not None and last[0] == triage_hash(text):
            return "unchanged", f"PR #{pr.number} already has this window's triage"
        stopped = allow(UPDATE, f"post the missing update comment on PR #{pr.number} for {g.title[:200]}")
        if stopped is not None:
            return stopped
        repo.comment(pr.number, update_comment(r, window, last[1] if last else None, text))
        return "updated", f"PR #{pr.number} already had this triage; its missing update comment was posted"
    previous_window = window_in(current[0]) if current else None
    if previous_window and previous_window.split("/")[1] > iso(window.end):
        return "stale", f"PR #{pr.number} holds a later window ({previous_window})"
    before = occurrences_in(current[0]) if current else None
    stopped = allow(UPDATE, f"commit {window.key}'s triage to PR #{pr.number} and comment, for {g.title[:200]}")
    if stopped is not None:
        return stopped
    repo.put_file(branch, path, text, f"healer: update triage for {g.short} ({window.key})")
    repo.comment(pr.number, update_comment(r, window, before, text))
    return "updated", f"PR #{pr.number} triage updated and commented"


def _diagnose(cfg: ErrorsConfig, clients: Clients, repo: Repo, g: Group, base: str, branch: str,
              budget: llm.Budget, time_left: Callable[[], float] | None,
              view: CodeView | None = None) -> tuple[str | None, str, str | None]:
    """(diagnosis markdown, note, proposed-change section for the PR body). The model reads the frames' files at
    the commit the group's evidence comes from (`view`), and the patch is checked against those files."""
    ref = view.provenance.ref if view is not None else (cfg.source_ref or base)
    sources: dict[str, str] = dict(view.sources) if view is not None else {}
    for file in (stacks.in_app_files(g.frames) if view is None else []):
        for candidate in ([f"{cfg.source_prefix}/{file}"] if cfg.source_prefix else []) + [file]:
            got = repo.file(candidate, ref)
            if got is not None and len(got[0]) <= MAX_SOURCE_BYTES:
                sources[candidate] = got[0]
                break
    evidence = llm.evidence_document(g.title, g.type, g.occurrences, g.roles, g.operations, g.sample_message,
                                     g.sample_stack, g.template, sources, g.top_variants())
    outcome = llm.diagnose(clients.model, cfg.model, evidence, budget, time_left)  # type: ignore[arg-type]
    if outcome.diagnosis is None:
        return None, outcome.note, None
    d = outcome.diagnosis
    patch_note, change = "none proposed", None
    if d.patch:
        # Checked with `git apply --check` against the files at the deployed ref; delivered only as the canonical
        # diff in a patch file next to the triage file and in the PR body, for a human to apply by hand.
        applied = check_and_apply(redact(d.patch), sources)
        if applied.ok and redact(applied.diff) != applied.diff:
            applied = dataclasses.replace(applied, ok=False, reason="the change carries text that looks like a "
                                                                     "secret")
        if applied.ok:
            patch_path = proposed_fix_path(g.short)
            repo.put_file(branch, patch_path, applied.diff,
                          f"healer: proposed change for {g.short} (model-drafted, unreviewed, not applied)")
            change = proposed_change_section(applied.diff, patch_path, branch, ref)
            patch_note = (f"machine-drafted, unreviewed, NOT applied: in {patch_path} for a human to apply with "
                          f"git apply; {applied.reason} at {ref}")
        else:
            patch_note = f"not included ({applied.reason}); diagnosis only"
    md = diagnosis_markdown(d.summary, d.likely_cause, d.proposed_fix, d.confidence, patch_note)
    repo.put_file(branch, diagnosis_path(g.short), md, f"healer: model diagnosis for {g.short}")
    return md, outcome.note + f"; change: {patch_note}", change


def failure_reason(exc: BaseException) -> str:
    """An audit reason for a failed run that carries no secret: Healer's own messages (they name settings, paths
    and HTTP statuses, never values; redacted anyway), else only the exception type and, for Azure SDK errors,
    the HTTP status and error code (an SDK message can quote request URLs with SAS tokens)."""
    name = type(exc).__name__
    if isinstance(exc, CollectError):
        return f"{name}: {redact(exc.reason)[:300]}"
    if isinstance(exc, (ConfigError, GitHubError)):
        return f"{name}: {redact(str(exc))[:300]}"
    status, code = getattr(exc, "status_code", None), getattr(exc, "error_code", None)
    extra = [f"HTTP {status}"] if isinstance(status, int) else []
    if isinstance(code, str) and re.fullmatch(r"[A-Za-z0-9_.\-]{1,80}", code):
        extra.append(f"code {code}")
    return name + (f" ({', '.join(extra)})" if extra else "")


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
    approved = None
    if message.get("kind") == "approved":
        if not isinstance(message.get("fingerprint"), str) or not isinstance(message.get("approvalId"), str):
            raise Discard("approved run message without fingerprint or approvalId")
        approved = {"fingerprint": message["fingerprint"][:64], "approvalId": message["approvalId"][:64]}
    try:
        report = run(settings, window, clients=clients, now=now, trigger="approved" if approved else "manual",
                     approved=approved)
    except CollectError as exc:
        if exc.status in (None, 429) or (exc.status or 0) >= 500:
            raise RetryLater(120, exc.reason) from None
        _audit(settings, "failed", exc.reason, "", window.key, (now or (lambda: dt.datetime.now(dt.UTC)))())
        return "failed"
    if report.outcome == "busy":
        raise RetryLater(60, report.reason)
    return report.outcome
