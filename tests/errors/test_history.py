"""The code that was running and the deployment that brought it: versions mapped to commits (map, tags, releases,
deployments), a shallow real-git fetch of that commit, frames checked on the base branch, deployment correlation in
the PR and the ranking. Real git repositories with several tagged commits where a frame's file moved."""
from __future__ import annotations

import datetime as dt
import random

import pytest

from healers.errors import versions
from healers.errors.versions import Deployment
from tests.errors import synth
from tests.errors.conftest import OWNER, REPO, use_model

END = dt.datetime(2025, 3, 3, 6, tzinfo=dt.timezone.utc)
DEPLOY_97 = END - dt.timedelta(hours=10)
V96 = synth.SOURCES["app/pricing.py"] + "# build 96\n"
V97 = synth.SOURCES["app/pricing.py"] + "# build 97\n"


def _iso(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_pure_version_picking_and_deployment_correlation() -> None:
    assert versions.pick_version(["96", "97", "100"]) == "100"
    assert versions.pick_version(["96", "97"], "96") == "96"
    assert versions.pick_version(["x'; drop", ""]) == ""
    assert versions.tag_candidates("97") == ["97", "v97"]
    assert versions.parse_version_map('{"97": "v97-hotfix"}') == {"97": "v97-hotfix"}
    with pytest.raises(ValueError):
        versions.parse_version_map('{"97": 5}')
    d96 = Deployment("1", "a" * 40, "96", "production", DEPLOY_97 - dt.timedelta(days=1), "build 96")
    d97 = Deployment("2", "b" * 40, "97", "production", DEPLOY_97, "build 97")
    staging = Deployment("3", "c" * 40, "98", "staging", DEPLOY_97 + dt.timedelta(minutes=1), "build 98")
    first = DEPLOY_97 + dt.timedelta(minutes=6)
    assert versions.introduced_by(first, [d96, d97, staging], "production") == d97
    assert versions.introduced_by(DEPLOY_97 - dt.timedelta(minutes=1), [d97]) is None
    assert versions.after_deploy_sentence(first, d97).startswith("appeared 6 min after build 97 (GitHub deployment 2")
    assert versions.deployment_for_version("97", [d96, d97]) == d97
    assert versions.deployment_for_version("9", [d96, d97]) is None


@pytest.mark.integration
def test_pr_reads_the_deployed_commit_names_the_deploy_and_says_the_frame_moved(errors_env, monkeypatch):
    la, gh, ai = errors_env["la"], errors_env["gh"], errors_env["ai"]
    # history: v96 (annotated tag), 97 (lightweight tag, deployed to production), then main moves the file
    gh.commit(OWNER, REPO, {"app/pricing.py": V96}, tag="v96", annotated=True, message="build 96")
    sha97 = gh.commit(OWNER, REPO, {"app/pricing.py": V97}, tag="97", message="build 97")
    gh.deployment(OWNER, REPO, sha97, ref="97", description="build 97", at=_iso(DEPLOY_97 - dt.timedelta(minutes=3)),
                  statuses=[{"state": "in_progress", "at": _iso(DEPLOY_97 - dt.timedelta(minutes=2))},
                            {"state": "success", "at": _iso(DEPLOY_97)}])
    gh.commit(OWNER, REPO, {"app/pricing.py": None, "lib/pricing.py": V97}, message="move pricing to lib/")
    rng = random.Random(5)
    pricing = [synth.exception_row("workspace", DEPLOY_97 + dt.timedelta(minutes=6 + 9 * i), synth.CAUSES[1], rng,
                                   version="97") for i in range(30)]
    unmapped = [synth.exception_row("workspace", END - dt.timedelta(hours=20, minutes=-i), synth.CAUSES[3], rng,
                                    version="55") for i in range(60)]
    la.seed("AppExceptions", pricing + unmapped)
    use_model(monkeypatch, ai)
    ai.script({"kind": "json", "content": synth.PRICING_ANSWER}, {"kind": "json", "content": synth.PRICING_ANSWER})

    from healers.errors import shell
    from healers.errors.triage import Window
    from shared.config import Settings
    report = shell.run(Settings(), Window(END - dt.timedelta(days=1), END), now=lambda: END + dt.timedelta(minutes=5))

    # the group a deployment introduced ranks first even though the other has twice the count
    assert "ZeroDivisionError" in report.drafted[0]["title"]
    prs = {p["title"]: p for p in gh.pulls()}
    pr = next(p for t, p in prs.items() if "ZeroDivisionError" in t)
    body = pr["body"]
    assert f"Evidence comes from commit `{sha97[:12]}`, deployed as version `97` (mapped by tag 97)" in body
    assert "Files read with git (shallow)" in body
    assert "appeared 6 min after build 97 (GitHub deployment" in body and "reached production" in body
    assert "`app/pricing.py`: **no longer at this path** (moved or deleted) on `main`" in body
    # the model saw the deployed file and the patch was checked against it, not against main (where it is gone)
    assert "# build 97" in str(ai.requests()[0]["body"])
    short = pr["head"]["ref"].rsplit("/", 1)[1]
    branch = gh.files(OWNER, REPO, pr["head"]["ref"])
    assert branch[f".healer/errors/{short}.proposed-fix.patch"].startswith("diff --git a/app/pricing.py")
    assert f"at {sha97}" in body or sha97[:12] in body
    # the fetch was real git over smart HTTP, one commit deep
    assert any(r["path"].endswith("/git-upload-pack") for r in gh.requests())
    # a version nothing names falls back to the base branch and says so
    other = next(p for t, p in prs.items() if "TypeError" in t)
    assert "Version `55` could not be mapped to a commit" in other["body"] and "base branch `main`" in other["body"]
    assert "New after a deployment" not in other["body"]


@pytest.mark.integration
def test_versions_map_by_configuration_and_by_release(errors_env, monkeypatch):
    la, gh = errors_env["la"], errors_env["gh"]
    sha_a = gh.commit(OWNER, REPO, {"app/pricing.py": V96}, message="a")
    sha_b = gh.commit(OWNER, REPO, {"app/pricing.py": V97}, message="b")
    gh.release(OWNER, REPO, "release-2025.3", sha_b)
    monkeypatch.setenv("HEALER_ERRORS_VERSION_MAP", '{"2025.2": "%s"}' % sha_a)
    monkeypatch.setenv("HEALER_ERRORS_VERSION_TAGS", "release-{version}")
    rng = random.Random(8)
    rows = [synth.exception_row("workspace", END - dt.timedelta(hours=5, minutes=i), synth.CAUSES[1], rng,
                                version="2025.2") for i in range(10)]
    rows += [synth.exception_row("workspace", END - dt.timedelta(hours=4, minutes=i), synth.CAUSES[3], rng,
                                 version="2025.3") for i in range(10)]
    la.seed("AppExceptions", rows)
    from healers.errors import shell
    from healers.errors.triage import Window
    from shared.config import Settings
    shell.run(Settings(), Window(END - dt.timedelta(days=1), END), now=lambda: END + dt.timedelta(minutes=5))
    bodies = {p["title"]: p["body"] for p in gh.pulls()}
    pricing = next(b for t, b in bodies.items() if "ZeroDivisionError" in t)
    users = next(b for t, b in bodies.items() if "TypeError" in t)
    assert f"commit `{sha_a[:12]}`, deployed as version `2025.2` (mapped by the configured version map)" in pricing
    assert "`app/pricing.py`: still at this path on `main`" in pricing
    assert f"commit `{sha_b[:12]}`, deployed as version `2025.3` (mapped by release release-2025.3)" in users


def test_only_a_full_sha_reaches_git() -> None:
    from healers.errors.history import History, VersionConfig

    class NoRepo:
        git_token = "t"

        def clone_url(self):  # pragma: no cover - must not be reached
            raise AssertionError("git must not be started for a non-sha")

    h = History(NoRepo(), VersionConfig(), "main")  # type: ignore[arg-type]
    try:
        assert h._checkout("--upload-pack=touch /tmp/x") is None
        assert h._checkout("main") is None
    finally:
        h.close()
