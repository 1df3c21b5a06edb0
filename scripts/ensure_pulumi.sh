#!/usr/bin/env bash
# Makes the pinned Pulumi CLI and its Python and YAML language hosts available, and prints
# the directory to put on PATH as the last (and only) line of stdout:
#
#     PULUMI_BIN=$(scripts/ensure_pulumi.sh) && export PATH="$PULUMI_BIN:$PATH"
#
# Everything else (progress, errors) goes to stderr.
#
# A thin wrapper: the logic (the version pin and its checks, a matching `pulumi` on PATH,
# the cache in ~/.cache/kms-iac/pulumi/<version>/, the build from the Go module proxy with
# progress) is kms_iac/toolchain/pulumi_cli.py, the one copy that `kms-iac pulumi` also uses
# from a wheel install. It needs only the standard library, so any Python 3.11+ runs it;
# the checkout's .venv is preferred when it exists.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m kms_iac.toolchain pulumi
