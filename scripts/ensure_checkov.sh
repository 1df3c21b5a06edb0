#!/usr/bin/env bash
# Makes the pinned checkov available in its own virtualenv, and prints that
# virtualenv's bin directory as the last (and only) line of stdout:
#
#     CHECKOV_BIN=$(scripts/ensure_checkov.sh) && "$CHECKOV_BIN/checkov" --version
#
# Everything else (progress, pip output, errors) goes to stderr.
#
# Why its own environment: checkov pins boto3/botocore and packaging versions that
# the Pulumi SDK and the project's boto3 cannot share, so it is installed apart and
# run as a program (`kms-iac checkov ...`).
#
# The pin lives in one file, tools/checkov/requirements.txt. The environment is
#   ${KMS_IAC_CHECKOV_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kms-iac/checkov}/<hash of that file>/
# so a changed pin makes a new one and an unchanged pin finds the old one: a
# second run is a stamp comparison, instant.
set -euo pipefail
exec 3>&1 1>&2 # fd 3 is the real stdout; everything else goes to stderr

cd "$(dirname "$0")/.."
REQ="$PWD/tools/checkov/requirements.txt"

say() { echo "ensure_checkov: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ -f "$REQ" ] || die "missing $REQ"
hash=$(sha256sum "$REQ" | cut -c1-16)
CACHE_ROOT=${KMS_IAC_CHECKOV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kms-iac/checkov}
DEST="$CACHE_ROOT/$hash"
BIN="$DEST/bin"

cache_ok() { [ -x "$BIN/checkov" ] && [ -f "$DEST/.kms-iac-stamp" ] && [ "$(cat "$DEST/.kms-iac-stamp")" = "$hash" ]; }

if cache_ok; then echo "$BIN" >&3; exit 0; fi

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in python3.11 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
[ -n "$PY" ] || die "no python3 found to create checkov's environment"

mkdir -p "$CACHE_ROOT"
# One installer at a time; a second caller waits, then finds the environment ready.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_ROOT/.lock"
  flock 9
  if cache_ok; then echo "$BIN" >&3; exit 0; fi
fi

say "installing $(grep -E '^checkov' "$REQ") into $DEST (first run only)"
start=$(date +%s)
# A venv's scripts embed its path, so it is created at its final path; the stamp is
# written last, so an interrupted install never looks ready and is redone next time.
rm -rf "$DEST"
"$PY" -m venv "$DEST"
"$BIN/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$BIN/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
"$BIN/checkov" --version >/dev/null || die "checkov did not run after installing it"
echo "$hash" > "$DEST/.kms-iac-stamp"
say "installed checkov $("$BIN/checkov" --version) in $(( $(date +%s) - start ))s"
echo "$BIN" >&3
