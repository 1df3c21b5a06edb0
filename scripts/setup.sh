#!/usr/bin/env bash
# Sets up everything kms-iac needs, idempotently: a virtualenv in .venv with the
# project (editable) and its test tools, and the Pulumi CLI. A second run with unchanged
# inputs is instant.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages, installed quietly (as root, or through sudo).
apt_install() {
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

# SoftHSM2: the PKCS#11 token behind local CloudHSM clusters (custom key stores).
# Installed from the system's packages only when softhsm2-util is missing.
if ! command -v softhsm2-util >/dev/null 2>&1; then
  echo "setup: installing SoftHSM2 (custom key stores)" >&2
  if command -v apt-get >/dev/null 2>&1; then
    apt_install softhsm2
  elif command -v brew >/dev/null 2>&1; then
    brew install softhsm >/dev/null
  else
    echo "setup: warning: install SoftHSM2 yourself (custom key store tests will be skipped)" >&2
  fi
fi

VENV=.venv
STAMP="$VENV/.kms-iac-setup"
want=$(cat pyproject.toml setup.py scripts/setup.sh kms_iac/backend/_sigv4_native.c | sha256sum | cut -c1-32)
if ! { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; }; then
  # The interpreter: $PYTHON, else the fastest python3.11 here (see scripts/pick_python.sh;
  # the local server's speed is the interpreter's). A virtualenv made with another is made anew.
  PY=$(scripts/pick_python.sh)
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
    echo "setup: Python 3.11+ is required (found $("$PY" --version 2>&1))" >&2; exit 1; }
  base=$("$PY" -c 'import os, sys; print(os.path.realpath(sys.executable))')
  if [ -e "$VENV" ] && [ "$(readlink -f "$VENV/bin/python" 2>/dev/null)" != "$base" ]; then
    echo "setup: making $VENV anew with $base" >&2
    rm -rf "$VENV"
  fi
  # Headers for the one optional C extension (SigV4 verification's signature computation,
  # kms_iac/backend/_sigv4_native.c, against OpenSSL's libcrypto): from the system's packages
  # when missing, as SoftHSM2 above. Without them the install goes on and sigv4.py computes
  # every signature in Python.
  py_include=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  if { [ ! -f "$py_include/Python.h" ] || [ ! -f /usr/include/openssl/sha.h ]; } && command -v apt-get >/dev/null 2>&1; then
    pkgs="libssl-dev"
    case "$base" in /usr/bin/*) [ -f "$py_include/Python.h" ] || pkgs="$pkgs $(basename "$base")-dev" ;; esac
    echo "setup: installing $pkgs (the C build of SigV4 verification)" >&2
    # shellcheck disable=SC2086  # $pkgs: one or two package names
    apt_install $pkgs ||
      echo "setup: warning: could not install $pkgs; SigV4 signatures will be computed in Python" >&2
  fi
  echo "setup: creating $VENV with $base and installing kms-iac with its test tools (first run only)" >&2
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
  echo "$want" > "$STAMP"
fi

# The Pulumi CLI and Python language host, pinned to the SDK's version: the one on PATH
# if it is that version, else built once from the Go module proxy into ~/.cache/kms-iac/.
scripts/ensure_pulumi.sh >/dev/null

# checkov, pinned in tools/checkov/requirements.txt, in its own virtualenv (its boto3 and
# packaging pins conflict with the Pulumi SDK's): what `kms-iac checkov` runs.
scripts/ensure_checkov.sh >/dev/null
