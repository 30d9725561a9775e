#!/usr/bin/env bash
# Installs everything Healer's drill, tests and benchmarks need on a fresh machine, and nothing twice.
# Python deps into .venv (pinned), Node tools (Azurite, Kusto language service) into tools/node_modules,
# Debian's docker-registry (a real OCI registry standing in for ACR geo-replicas) and chromium (browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}   # scripts/test.sh sets VENV=.venv313 PYTHON=<a 3.13 interpreter> for its 3.13 pass

stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
want=$(stamp requirements-pip.txt requirements.txt requirements-dev.txt)
if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$want" ]; then
  # The lock (scripts/lock.sh): every package pinned with its hashes; pip refuses anything else. First the pinned pip.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-pip.txt
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
  # The `healer` CLI (entry point in pyproject.toml), editable so it is this checkout's code.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$want" > "$VENV/.installed"
fi

want=$(stamp tools/package.json tools/package-lock.json)
if [ "$(cat tools/node_modules/.installed 2>/dev/null)" != "$want" ]; then
  (cd tools && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > tools/node_modules/.installed
fi

# Debian's docker-registry (ACR replicas in tests) and chromium (the console's browser tests, driven by Playwright).
missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # docker-registry starts a system service on :5000; Healer's tests start their own instances.
  $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
