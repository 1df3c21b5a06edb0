#!/usr/bin/env bash
# Makes the pinned checkov (tools/checkov/requirements.txt) available in its own
# virtualenv, and prints that virtualenv's bin directory as the last (and only) line of
# stdout:
#
#     CHECKOV_BIN=$(scripts/ensure_checkov.sh) && "$CHECKOV_BIN/checkov" --version
#
# Everything else (progress, pip output on failure, errors) goes to stderr.
#
# A thin wrapper: the logic (why its own environment, the cache directory named after the
# pin's hash, the install) is kms_iac/toolchain/checkov_env.py, the one copy that
# `kms-iac setup checkov` also uses from a wheel install. It needs only the standard
# library; the checkout's .venv is preferred when it exists.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m kms_iac.toolchain checkov
