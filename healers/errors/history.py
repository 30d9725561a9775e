"""The code that was running and the deployments around it, read for one run: version -> commit through the
configured mapping, tags, releases and deployments (GitHub, through githubkit); a shallow real-git fetch of that
commit for the group's frames and the drafted patch; the deployment history for correlation.

Everything here is bounded (one fetch per commit per run, depth 1, a timeout, files up to MAX_SOURCE_BYTES) and
optional: a failure falls back to the base branch, and the PR says so.
"""
from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healers.errors import stacks, versions
from healers.errors.cluster import Group
from healers.errors.github import GitHubAuthError, GitHubError, Repo, safe_path
from healers.errors.versions import Deployment, Provenance

log = logging.getLogger("healer.errors")
MAX_SOURCE_BYTES = 200_000
GIT_TIMEOUT = 60


@dataclass(frozen=True)
class VersionConfig:
    mapping: dict[str, str] = field(default_factory=dict)
    tag_patterns: tuple[str, ...] = versions.DEFAULT_TAG_PATTERNS
    environment: str = "production"


@dataclass
class CodeView:
    """Files of one group at the commit its evidence comes from, and whether its frames still exist on base."""
    provenance: Provenance
    sources: dict[str, str] = field(default_factory=dict)  # path -> text at the provenance ref
    on_base: dict[str, bool] = field(default_factory=dict)  # frame file -> still at that path on the base branch
    via: str = "contents API"  # "git (shallow)" when read from a real checkout


def _parse_time(value: Any) -> dt.datetime | None:
    try:
        at = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


class History:
    """Per-run reader of versions, deployments and code. `repo` is the GitHub client of the run."""

    def __init__(self, repo: Repo, cfg: VersionConfig, base_branch: str | None):
        self.repo, self.cfg, self._base = repo, cfg, base_branch
        self.auth_error: GitHubAuthError | None = None  # GitHub refused the credentials: drafting reports it
        self._deployments: list[Deployment] | None = None
        self._provenance: dict[str, Provenance] = {}
        self._checkouts: dict[str, Path | None] = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="healer-checkout-"))

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def base(self) -> str:
        if self._base is None:
            self._base = self.repo.default_branch()
        return self._base

    # ------------------------------------------------------------------------------------------ deployments
    def deployments(self) -> list[Deployment]:
        if self._deployments is None:
            out = []
            try:
                raw = self.repo.deployments(self.cfg.environment or None)
            except GitHubAuthError as exc:
                self.auth_error, raw = exc, []
            except GitHubError as exc:
                log.warning("deployments not read: %s", exc)
                raw = []
            for d in raw:
                at = _parse_time(d.get("reached_at") or d.get("created_at"))
                payload = d.get("payload") if isinstance(d.get("payload"), dict) else {}
                if at is None or not versions.is_sha(str(d.get("sha") or "")):
                    continue
                out.append(Deployment(str(d.get("id")), str(d["sha"]), str(d.get("ref") or "")[:100],
                                      str(d.get("environment") or "")[:100], at,
                                      str(d.get("description") or "")[:200], str(payload.get("version") or "")[:100]))
            self._deployments = out
        return self._deployments

    # ------------------------------------------------------------------------------------------ version -> commit
    def _ref_commit(self, ref: str) -> str | None:
        if versions.is_sha(ref):
            return ref
        sha = self.repo.head_sha(ref) or self.repo.tag_commit(ref)
        return sha if sha and versions.is_sha(sha) else None

    def provenance(self, version: str) -> Provenance:
        if version in self._provenance:
            return self._provenance[version]
        prov = self._resolve(version)
        self._provenance[version] = prov
        return prov

    def _resolve(self, version: str) -> Provenance:
        base = Provenance(version, "", self.base, "no version in the telemetry", False)
        if not version:
            return base
        try:
            if version in self.cfg.mapping:
                sha = self._ref_commit(self.cfg.mapping[version])
                if sha:
                    return Provenance(version, sha, sha, "the configured version map", True)
            tags = versions.tag_candidates(version, self.cfg.tag_patterns)
            for tag in tags:
                sha = self.repo.tag_commit(tag)
                if sha and versions.is_sha(sha):
                    return Provenance(version, sha, sha, f"tag {tag}", True)
            for tag in tags:
                target = self.repo.release_target(tag)
                sha = self._ref_commit(target) if target else None
                if sha:
                    return Provenance(version, sha, sha, f"release {tag}", True)
            d = versions.deployment_for_version(version, self.deployments())
            if d is not None:
                return Provenance(version, d.sha, d.sha, f"GitHub deployment {d.id}", True)
        except GitHubError as exc:
            return Provenance(version, "", self.base, f"GitHub lookup failed: {exc}", False)
        return Provenance(version, "", self.base, "no mapping, tag, release or deployment names it", False)

    # ------------------------------------------------------------------------------------------ code
    def _checkout(self, sha: str) -> Path | None:
        """A shallow real-git fetch of one commit (token auth only); None when it cannot be fetched."""
        if sha in self._checkouts:
            return self._checkouts[sha]
        path = None
        if not versions.is_sha(sha):  # only a full hex sha ever reaches git's command line
            return None
        url = self.repo.clone_url() if self.repo.git_token else None
        if url and url.startswith(("https://", "http://")):
            dest = self._tmp / sha
            header = "Authorization: Basic " + base64.b64encode(
                f"x-access-token:{self.repo.git_token}".encode()).decode()
            env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_COUNT": "1",
                   "GIT_CONFIG_KEY_0": "http.extraHeader", "GIT_CONFIG_VALUE_0": header}
            try:
                subprocess.run(["git", "init", "-q", "--bare", str(dest)], check=True, capture_output=True,
                               timeout=GIT_TIMEOUT)
                subprocess.run(["git", "--git-dir", str(dest), "fetch", "-q", "--depth", "1", "--no-tags", url, sha],
                               check=True, capture_output=True, env=env, timeout=GIT_TIMEOUT)
                path = dest
            except (subprocess.SubprocessError, OSError) as exc:
                log.warning("shallow fetch of %s failed: %s", sha[:12], type(exc).__name__)
        self._checkouts[sha] = path
        return path

    def _file_at(self, checkout: Path | None, ref: str, path: str) -> str | None:
        if not safe_path(path):
            return None
        if checkout is not None:
            proc = subprocess.run(["git", "--git-dir", str(checkout), "cat-file", "blob", f"{ref}:{path}"],
                                  capture_output=True, timeout=GIT_TIMEOUT)
            if proc.returncode != 0 or len(proc.stdout) > MAX_SOURCE_BYTES:
                return None
            return proc.stdout.decode("utf-8", "replace")
        got = self.repo.file(path, ref)
        return got[0] if got is not None and len(got[0]) <= MAX_SOURCE_BYTES else None

    def code(self, g: Group, prefix: str, source_ref: str | None = None) -> CodeView:
        """The group's frame files at the commit its evidence comes from (`source_ref`, when configured, wins over
        the version: an operator pinned it), and whether each still exists on the base branch."""
        if source_ref:
            sha = self._ref_commit(source_ref) or ""
            prov = Provenance("", sha, sha or source_ref, f"HEALER_ERRORS_SOURCE_REF {source_ref}", bool(sha))
        else:
            prov = self.provenance(versions.pick_version(g.versions, g.sample_version))
        checkout = self._checkout(prov.sha) if prov.sha else None
        view = CodeView(prov, via="git (shallow)" if checkout is not None else "contents API")
        for file in stacks.in_app_files(g.frames):
            for candidate in ([f"{prefix}/{file}"] if prefix else []) + [file]:
                text = self._file_at(checkout, prov.sha or prov.ref, candidate)
                if text is not None:
                    view.sources[candidate] = text
                    view.on_base[candidate] = (prov.ref == self.base or
                                               self.repo.file(candidate, self.base) is not None)
                    break
        return view
