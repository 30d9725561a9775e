#!/usr/bin/env bash
# Installs everything Healer's drill, tests and benchmarks need on a fresh machine, and nothing twice.
# Python deps into .venv (pinned), Node tools (Azurite, Kusto language service) into tools/node_modules,
# Debian's docker-registry (a real OCI registry standing in for ACR geo-replicas).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
want=$(stamp requirements.txt requirements-dev.txt)
if [ "$(cat .venv/.installed 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  # The `healer` CLI (entry point in pyproject.toml), editable so it is this checkout's code.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$want" > .venv/.installed
fi

want=$(stamp tools/package.json tools/package-lock.json)
if [ "$(cat tools/node_modules/.installed 2>/dev/null)" != "$want" ]; then
  (cd tools && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > tools/node_modules/.installed
fi

if ! command -v docker-registry >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
  # The package starts a system service on :5000; Healer's tests start their own instances.
  $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
