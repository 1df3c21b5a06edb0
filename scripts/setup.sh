#!/usr/bin/env bash
# Sets up everything kms-iac needs, idempotently: a virtualenv in .venv with the
# project (editable) and its test tools, and the Pulumi CLI. A second run with unchanged
# inputs is instant.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "setup: Python 3.11+ is required (found $("$PY" --version 2>&1))" >&2; exit 1; }

VENV=.venv
STAMP="$VENV/.kms-iac-setup"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-32)
if ! { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; }; then
  echo "setup: creating $VENV and installing kms-iac with its test tools (first run only)" >&2
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
  echo "$want" > "$STAMP"
fi

# The Pulumi CLI and Python language host, pinned to the SDK's version: the one on PATH
# if it is that version, else built once from the Go module proxy into ~/.cache/kms-iac/.
scripts/ensure_pulumi.sh >/dev/null
