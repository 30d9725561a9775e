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
py313=""
for candidate in $(ls -d "$HOME"/.pyenv/versions/3.13*/bin/python 2>/dev/null) $(command -v python3.13 || true); do
  # a pyenv shim exists even where it cannot run 3.13: take the first interpreter that really runs
  if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1; then
    py313=$candidate; break
  fi
done
if [ -z "$py313" ]; then
  echo "no Python 3.13 interpreter on this machine: the 3.13 pass is skipped"
  exit 0
fi
VENV=.venv313 PYTHON="$py313" bash scripts/bootstrap.sh
exec .venv313/bin/python -m pytest -q -m "not integration" -p no:cacheprovider
