"""Reproducible installs: the locks pin exactly what requirements*.in ask for, every package with hashes, and
pyproject.toml's dependency list mirrors requirements.in."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\#]+?))?\s*(?:\\|#.*)?$")


def pins(path: Path) -> set[tuple[str, str, str]]:
    out = set()
    for line in path.read_text().splitlines():
        m = PIN.match(line.strip())
        if m:
            marker = re.sub(r"python_full_version|python_version", "py", (m.group(3) or "").replace('"', "'"))
            out.add((m.group(1).lower().replace("_", "-"), m.group(2), marker.strip()))
    return out


def locked(path: Path) -> dict[str, set[str]]:
    text = path.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    versions: dict[str, set[str]] = {}
    for entry in entries:
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", entry)
        if m:
            assert "--hash=sha256:" in entry, f"{path.name}: {m.group(1)} is locked without a hash"
            versions.setdefault(m.group(1).lower().replace("_", "-"), set()).add(m.group(2))
    return versions


def test_each_lock_pins_what_its_input_asks_for_with_hashes():
    for src, lock in (("requirements-pip.in", "requirements-pip.txt"), ("requirements.in", "requirements.txt"),
                      ("requirements-dev.in", "requirements-dev.txt")):
        wanted = pins(REPO / src) | (pins(REPO / "requirements.in") if src == "requirements-dev.in" else set())
        have = locked(REPO / lock)
        stale = [(name, version) for name, version, _ in wanted if version not in have.get(name, set())]
        assert not stale, f"{lock} is stale for {stale}: run scripts/lock.sh"


def test_pyproject_mirrors_the_runtime_pins():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    in_pyproject = {(n, v) for n, v, _ in (pins_from(d) for d in deps)}
    in_requirements = {(n, v) for n, v, _ in pins(REPO / "requirements.in")}
    assert in_pyproject == in_requirements


def pins_from(line: str) -> tuple[str, str, str]:
    m = PIN.match(line.strip())
    assert m, line
    return m.group(1).lower().replace("_", "-"), m.group(2), ""
