"""The README's main job, run as a user runs it: every scenario must pass and the exit status must say so."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent


def test_the_drill_passes_every_scenario():
    out = subprocess.run([sys.executable, "-m", "drill"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert "all scenarios OK" in out.stdout
    for scenario in ("== rollback", "== errors", "== replication", "== downshift", "== gate", "== 3 AM"):
        assert scenario in out.stdout
