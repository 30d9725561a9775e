"""Check a model-proposed unified diff against the fetched source files with real `git apply --check`.

The diff may only modify files Healer fetched (the files named by the in-app frames): no new files, no deletes,
no renames, no paths outside those, nothing under `.github/`. Applied in a throwaway repository; the caller gets
the reason it was refused, or the new file contents and the canonical diff `git diff` writes for them. The
canonical diff (not the model's text, which may carry anything `git apply` skips as garbage) is what Healer
delivers, and only ever as a patch file for a human to apply: a model-written change is never committed as
source, so nothing it proposes can run in CI.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

MAX_PATCH_CHARS = 40_000
_HEADER = re.compile(r"^(?:---|\+\+\+) (?:a/|b/)?(?P<path>\S+)", re.M)


@dataclass(frozen=True)
class PatchResult:
    ok: bool
    reason: str
    files: dict[str, str]
    diff: str = ""  # canonical `git diff` of the change, a/ and b/ prefixes, when ok


def _paths(diff: str) -> set[str]:
    return {m["path"] for m in _HEADER.finditer(diff) if m["path"] != "/dev/null"}


def check_and_apply(diff: str, sources: dict[str, str], timeout: float = 20.0) -> PatchResult:
    """Never raises for a missing or stuck `git` (the Functions image may not ship it): the PR keeps the diagnosis."""
    try:
        return _check_and_apply(diff, sources, timeout)
    except subprocess.TimeoutExpired:
        return PatchResult(False, f"git apply did not finish in {timeout:.0f} s", {})
    except (OSError, subprocess.SubprocessError, UnicodeError) as exc:
        return PatchResult(False, f"could not check the change with git ({type(exc).__name__})", {})


def _check_and_apply(diff: str, sources: dict[str, str], timeout: float) -> PatchResult:
    if not diff or not diff.strip():
        return PatchResult(False, "no change proposed", {})
    if len(diff) > MAX_PATCH_CHARS:
        return PatchResult(False, "proposed change too large", {})
    if re.search(r"^(?:new file mode|deleted file mode|rename from|rename to|copy from|GIT binary patch|"
                 r"old mode|new mode)", diff, re.M) or "/dev/null" in diff:
        return PatchResult(False, "proposed change creates, deletes, renames or re-modes files", {})
    paths = _paths(diff)
    if not paths:
        return PatchResult(False, "proposed change names no file", {})
    outside = sorted(p for p in paths if p not in sources or p.startswith(".github/") or ".." in p.split("/"))
    if outside:
        return PatchResult(False, f"proposed change touches files Healer did not fetch: {outside[:3]}", {})
    with tempfile.TemporaryDirectory(prefix="healer-patch-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "HOME": tmp}
        run = lambda *args, **kw: subprocess.run(["git", *args], cwd=tmp, capture_output=True, timeout=timeout,  # noqa
                                                 env=env, **kw)
        if run("init", "-q").returncode != 0:
            return PatchResult(False, "git init failed", {})
        for path, text in sources.items():
            target = (root / path).resolve()
            if not str(target).startswith(str(root.resolve()) + os.sep):
                return PatchResult(False, f"unsafe source path {path!r}", {})
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        if run("add", "-A").returncode != 0:
            return PatchResult(False, "git add failed", {})
        patch_file = root.parent / (root.name + ".diff")
        patch_file.write_text(diff if diff.endswith("\n") else diff + "\n")
        try:
            check = run("apply", "--check", "--whitespace=nowarn", str(patch_file))
            if check.returncode != 0:
                why = check.stderr.decode(errors="replace").strip().splitlines()
                return PatchResult(False, "does not apply cleanly: " + (why[0][:200] if why else "git apply failed"),
                                   {})
            applied = run("apply", "--whitespace=nowarn", str(patch_file))
            if applied.returncode != 0:
                return PatchResult(False, "git apply failed", {})
        finally:
            patch_file.unlink(missing_ok=True)
        changed = {p: (root / p).read_text() for p in sorted(paths)}
        canonical = run("-c", "core.quotepath=false", "diff", "--no-color", "--no-ext-diff", "--no-renames",
                        "--src-prefix=a/", "--dst-prefix=b/", "--", *sorted(paths))
        if canonical.returncode != 0:
            return PatchResult(False, "git diff failed", {})
    changed = {p: t for p, t in changed.items() if t != sources[p]}
    if not changed:
        return PatchResult(False, "proposed change changes nothing", {})
    return PatchResult(True, f"applies cleanly to {len(changed)} file(s)", changed,
                       canonical.stdout.decode("utf-8", "replace"))
