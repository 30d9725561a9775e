"""Context the errors shell reads around a day's groups: what other healers did on the same apps. Imperative but
small: each reader returns plain data for the pure functions in `links.py`, and a failure to read context never
fails the run (the group is drafted without it, and the reason is logged).
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from healers.errors import effect, kql, links, versions
from healers.errors.cluster import Group
from healers.errors.github import PullRef, Repo
from healers.errors.history import History, VersionConfig
from healers.errors.triage import Window, record_marker
from shared import audit
from shared.config import ConfigError, Settings

log = logging.getLogger("healer.errors")
MAX_AUDIT_PER_DAY = 500


def _downshift_roles(settings: Settings) -> dict[str, set[str]]:
    try:
        apps = settings.downshift_apps
    except ConfigError:
        return {}
    return {a.resource_id.lower(): links.app_roles(a.resource_id, a.role) for a in apps.values()}


def _downshift_actions(settings: Settings, window: Window) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    day = (window.start - links.SLACK).date()
    while day <= window.end.date():
        out.extend(audit.list_records(settings, day=day, healer="downshift", outcome="acted",
                                      limit=MAX_AUDIT_PER_DAY))
        day += dt.timedelta(days=1)
    return out


def attach_related(settings: Settings, groups: list[Group], window: Window) -> None:
    """Fill `related` on failed-call groups with the downshift healer's actions on the same apps."""
    candidates = [g for g in groups if g.kind == "call" and g.failure in links.LINKED_FAILURES]
    if not candidates:
        return
    try:
        records = _downshift_actions(settings, window)
    except Exception as exc:  # context is optional: storage trouble here must not fail the day's run
        log.warning("downshift audit not read for error links: %s", type(exc).__name__)
        return
    roles = _downshift_roles(settings)
    for g in candidates:
        g.related = links.downshift_links(g, records, roles, window.start, window.end)


# ---------------------------------------------------------------------------------------------- versions, deploys

def version_dimension(settings: Settings) -> str | None:
    name = (settings.get("HEALER_ERRORS_VERSION_DIMENSION") or "").strip()
    if not name:
        return None
    try:
        kql.version_expr("workspace", name)
    except ValueError as exc:
        raise ConfigError(f"setting HEALER_ERRORS_VERSION_DIMENSION: {exc}") from None
    return name


def version_config(settings: Settings) -> VersionConfig:
    try:
        mapping = versions.parse_version_map(settings.get("HEALER_ERRORS_VERSION_MAP"))
    except ValueError as exc:
        raise ConfigError(f"setting HEALER_ERRORS_VERSION_MAP {exc}") from None
    patterns = tuple(p.strip() for p in (settings.get("HEALER_ERRORS_VERSION_TAGS") or "").split(",") if p.strip())
    if any("{version}" not in p for p in patterns):
        raise ConfigError("setting HEALER_ERRORS_VERSION_TAGS: every pattern needs {version}")
    return VersionConfig(mapping, patterns or versions.DEFAULT_TAG_PATTERNS,
                         (settings.get("HEALER_ERRORS_DEPLOY_ENVIRONMENT") or "").strip())


def open_history(cfg: VersionConfig, repo: Repo | None, base_branch: str | None) -> History | None:
    """The run's reader of versions, deployments and code (None without a repository). Nothing is read yet."""
    return None if repo is None else History(repo, cfg, base_branch)


def deploy_sentences(history: History | None, groups: list[Group]) -> dict[str, str]:
    """fingerprint -> "appeared 6 min after <deployment> reached production", for groups that first appeared
    within versions.NEW_AFTER_DEPLOY (2 h) of the latest deployment before them (rank keeps it for new groups only)."""
    if history is None or not groups:
        return {}
    deployments = history.deployments()
    out = {}
    for g in groups:
        d = versions.introduced_by(g.first_seen, deployments, history.cfg.environment)
        if d is not None and g.first_seen is not None and g.first_seen - d.at <= versions.NEW_AFTER_DEPLOY:
            out[g.fingerprint] = versions.after_deploy_sentence(g.first_seen, d)
    return out


# ---------------------------------------------------------------------------------------------- effect of a merge

def judge_merge(history: History, pr: PullRef, g: Group, window: Window) -> effect.Effect:
    """The verdict on the merged pull request of a group seen again: its rate around the shipping deployment."""
    try:
        merged_at = dt.datetime.fromisoformat(pr.merged_at.replace("Z", "+00:00"))
    except ValueError:
        return effect.Effect("regression", 0.0, 0.0, None)
    if not history.deployments():  # nothing to judge by: it came back, so it is a regression (as without history)
        return effect.Effect("regression", 0.0, 0.0, None)
    return effect.judge(merged_at, history.deployments(), g.hourly, window.start, window.end, {},
                        history.cfg.environment)


def effect_section(pr: PullRef, judged: effect.Effect) -> str:
    status = {"fixed": "**fixed**", "not deployed": "merged, not deployed yet",
              "too early": "merged and deployed, not judged yet"}.get(judged.verdict, "not fixed")
    return "\n".join(["## Effect of the merged fix", "", f"- Pull request {pr.number} merged at {pr.merged_at}",
                      f"- Status: {status}", f"- {judged.sentence()}", ""])


def record_effect(repo: Repo, pr: PullRef, branch: str, path: str, triage: str,
                  judged: effect.Effect) -> tuple[str, str]:
    """Write the verdict into the triage file on the group's branch and comment it on the merged pull request
    (once per window: the same triage twice writes nothing)."""
    if judged.verdict != "fixed":  # merged but not shipped (or barely): nothing to judge or write yet
        return "unchanged", f"PR #{pr.number} merged; {judged.sentence()}"
    text = triage.rstrip("\n") + "\n\n" + effect_section(pr, judged)
    current = repo.file(path, branch)
    if current is not None and current[0] == text:
        return "unchanged", f"PR #{pr.number} already records this window's effect ({judged.verdict})"
    if repo.head_sha(branch) is None:
        base_sha = repo.head_sha(repo.default_branch())
        if base_sha is None:
            return "failed", "the base branch could not be read"
        repo.create_branch(branch, base_sha)
    repo.put_file(branch, path, text, f"healer: effect of #{pr.number} ({judged.verdict})")
    repo.comment(pr.number, f"Healer: effect of this merged fix: {judged.sentence()}.\n\n"
                            + record_marker(text, 0))
    return "updated", f"PR #{pr.number} merged: marked fixed ({judged.sentence()})"
