from __future__ import annotations

import shutil

import pytest

from standins.harness import make_test_ca, scratch_dir


@pytest.fixture(scope="session")
def repl_workdir():
    path = scratch_dir("healer-repl-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def test_ca(repl_workdir):
    return make_test_ca(repl_workdir / "tls")


@pytest.fixture(scope="module")
def fleet(repl_workdir, request):
    from standins.registries import start_registries

    fleet = start_registries("myreg", ["eastus", "westus", "northeurope"], repl_workdir / request.module.__name__)
    yield fleet
    fleet.stop()
