#!/usr/bin/env bash
# The whole test suite: unit, property, integration (Azurite, stand-ins, real registries), infra checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q "$@"
