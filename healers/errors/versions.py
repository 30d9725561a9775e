"""Which commit was running when a group's errors happened, and which deployment brought it. Pure.

The telemetry's application version (`AppVersion` / `application_Version`, or a configured custom dimension) is
mapped to a commit, first match wins:
1. the configured mapping (HEALER_ERRORS_VERSION_MAP: version -> commit sha, tag or branch);
2. a git tag named after the version (HEALER_ERRORS_VERSION_TAGS patterns, default `{version}` then `v{version}`);
3. a GitHub release whose tag is one of those names (its target commit);
4. a GitHub deployment whose ref, description or `payload.version` is the version (its sha).
A version that maps to nothing falls back to the base branch, and the PR says so.

Deployment correlation: the group's first-seen time against the deployment history (GitHub deployments, or App
Service deployments): the latest deployment that reached its environment before the group first appeared, when the
group is new and appeared within `NEW_AFTER_DEPLOY` (2 h) of it, is the deployment that introduced it.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Iterable

DEFAULT_TAG_PATTERNS = ("{version}", "v{version}")
NEW_AFTER_DEPLOY = dt.timedelta(hours=2)
_SHA = re.compile(r"[0-9a-f]{40}")
_VERSION = re.compile(r"[\w.\-+/]{1,100}")


@dataclass(frozen=True)
class Deployment:
    """One deployment of the app: what (sha, ref, description) reached which environment when."""
    id: str
    sha: str
    ref: str
    environment: str
    at: dt.datetime  # when it reached the environment (its success status; else its creation)
    description: str = ""
    version: str = ""  # payload.version when the pipeline sets it
    source: str = "GitHub deployment"

    @property
    def label(self) -> str:
        name = self.description or (f"version {self.version}" if self.version else f"ref {self.ref}")
        return f"{name} ({self.source} {self.id}, {self.sha[:12]})"


@dataclass(frozen=True)
class Provenance:
    """Where a group's code evidence comes from."""
    version: str  # "" when the telemetry carried none
    sha: str  # the commit the evidence is read at ("" when falling back to a branch)
    ref: str  # what was read: the sha, or the base branch on fallback
    how: str  # "mapping", "tag v97", "release v97", "deployment 12", or why it fell back
    mapped: bool

    def sentence(self, base: str) -> str:
        if self.mapped:
            return (f"Evidence comes from commit `{self.sha[:12]}`, deployed as version `{self.version}` "
                    f"(mapped by {self.how}).")
        if not self.version:
            return f"The telemetry carries no application version: evidence comes from the base branch `{base}`."
        return (f"Version `{self.version}` could not be mapped to a commit ({self.how}): evidence comes from the "
                f"base branch `{base}`.")


def pick_version(versions: Iterable[str], sample_version: str = "") -> str:
    """The version to read code at: the sample's when it has one, else the highest-sorting one seen."""
    clean = sorted({v for v in versions if v and _VERSION.fullmatch(v)}, key=_version_key)
    if sample_version and _VERSION.fullmatch(sample_version):
        return sample_version
    return clean[-1] if clean else ""


def _version_key(v: str) -> tuple[Any, ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+_/]", v))


def parse_version_map(raw: str | None) -> dict[str, str]:
    """HEALER_ERRORS_VERSION_MAP: a JSON object of version -> commit sha, tag or branch. Raises ValueError."""
    if not raw or not raw.strip():
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict) or len(data) > 10_000:
        raise ValueError("must be a JSON object of version -> commit, tag or branch (at most 10,000)")
    out = {}
    for k, v in data.items():
        if not isinstance(v, str) or not _VERSION.fullmatch(str(k)) or not _VERSION.fullmatch(v):
            raise ValueError(f"entry {str(k)[:50]!r} is not version -> commit/tag/branch")
        out[str(k)] = v
    return out


def tag_candidates(version: str, patterns: Iterable[str] = DEFAULT_TAG_PATTERNS) -> list[str]:
    out = []
    for p in patterns:
        tag = p.replace("{version}", version)
        if tag and _VERSION.fullmatch(tag) and tag not in out:
            out.append(tag)
    return out


def is_sha(ref: str) -> bool:
    return bool(_SHA.fullmatch(ref or ""))


def deployment_for_version(version: str, deployments: Iterable[Deployment]) -> Deployment | None:
    """The newest deployment that names this version (ref, description, payload.version or a tag-like ref)."""
    for d in sorted(deployments, key=lambda d: d.at, reverse=True):
        if (version and version in (d.ref, d.version, d.description, f"v{d.version}")) or \
                (d.description and re.search(rf"(?<![\w.]){re.escape(version)}(?![\w.])", d.description)):
            return d
    return None


def introduced_by(first_seen: dt.datetime | None, deployments: Iterable[Deployment],
                  environment: str = "") -> Deployment | None:
    """The deployment that was the latest to reach `environment` before the group first appeared."""
    if first_seen is None:
        return None
    before = [d for d in deployments if d.at <= first_seen and (not environment or d.environment == environment)]
    return max(before, key=lambda d: d.at, default=None)


def after_deploy_sentence(first_seen: dt.datetime, d: Deployment) -> str:
    minutes = max(0, int((first_seen - d.at).total_seconds() // 60))
    gap = f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"
    return f"appeared {gap} after {d.label} reached {d.environment or 'its environment'}"
