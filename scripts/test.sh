#!/usr/bin/env bash
# The whole test suite: unit, property, integration (Azurite, stand-ins, real registries, a real browser), infra
# checks — on Python 3.11, the version Healer deploys on. Then, when a Python 3.13 interpreter is on the machine
# (Azure Functions' next runtime; this image's pyenv has one), the unit and property tests again on 3.13 in
# .venv313, from the same lock. The integration tests run on 3.11 only, to keep CI under 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/python -m pytest -q "$@"
[ $# -eq 0 ] || exit 0   # a chosen subset runs on 3.11 only
py313=$(command -v python3.13 || ls -d "$HOME"/.pyenv/versions/3.13*/bin/python 2>/dev/null | tail -n 1 || true)
if [ -z "$py313" ]; then
  echo "no Python 3.13 interpreter on this machine: the 3.13 pass is skipped"
  exit 0
fi
VENV=.venv313 PYTHON="$py313" bash scripts/bootstrap.sh
exec .venv313/bin/python -m pytest -q -m "not integration" -p no:cacheprovider
