#!/usr/bin/env bash
# The local drill: starts Azurite and the stand-ins, runs every healer's scenario, prints the timeline.
# Exits non-zero if any healer did anything other than exactly what the scenario expects.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m drill "$@"
