#!/usr/bin/env bash
# Prints the Python interpreter that kms-iac's virtualenv is made with.
#
# $PYTHON when set. Otherwise the fastest of this machine's python3.11 interpreters (on PATH
# and in $KMS_IAC_PYTHON_DIRS, by default /usr/bin /usr/local/bin) at scripts/python_probe.py, each probed in three interleaved
# rounds and scored by its best; one is taken over an earlier one only when it is at least
# 10% faster, so equal builds keep PATH's order. Only when no
# python3.11 can host a virtualenv, python3 (if it is 3.11 or later).
#
# Why: the local server is bound by the interpreter, and one CPython version can run pure
# Python up to twice as slowly as a shared-libpython build without --enable-optimizations
# (pyenv's default) as with libpython linked in (Debian's /usr/bin/python3.11).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${PYTHON:-}" ]; then
  command -v "$PYTHON"
  exit 0
fi

probe() {  # probe CANDIDATE: its time, or nothing when it cannot host the virtualenv
  "$1" scripts/python_probe.py 2>/dev/null || true
}

pick() {  # pick CANDIDATE...: the fastest that works (see above), or nothing
  local cand real t times=() cands=() seen=" " i best="" best_time=""
  for cand in "$@"; do
    real=$(readlink -f "$cand" 2>/dev/null) || continue
    case "$seen" in *" $real "*) continue ;; esac
    seen="$seen$real "
    t=$(probe "$cand")
    [ -n "$t" ] || continue
    cands+=("$cand") times+=("$t")
  done
  local round
  [ "${#cands[@]}" -gt 1 ] && for round in 2 3; do  # more rounds, interleaved: noise only adds time
    for i in "${!cands[@]}"; do
      t=$(probe "${cands[$i]}")
      if [ -n "$t" ] && awk -v t="$t" -v b="${times[$i]}" 'BEGIN { exit !(t < b) }'; then times[$i]=$t; fi
    done
  done
  for i in "${!cands[@]}"; do
    if [ -z "$best" ] || awk -v t="${times[$i]}" -v b="$best_time" 'BEGIN { exit !(t < 0.9 * b) }'; then
      best="${cands[$i]}" best_time="${times[$i]}"
    fi
  done
  echo "$best"
}

mapfile -t found < <(type -ap python3.11 2>/dev/null; for d in ${KMS_IAC_PYTHON_DIRS-/usr/bin /usr/local/bin}; do
                       [ -x "$d/python3.11" ] && echo "$d/python3.11"; done; true)
best=$(pick "${found[@]}")
if [ -z "$best" ] && command -v python3 >/dev/null 2>&1; then
  best=$(pick "$(command -v python3)")
fi
if [ -z "$best" ]; then
  echo "pick_python: no Python 3.11+ with venv and ensurepip found; install one (Debian: python3.11-venv) or set PYTHON" >&2
  exit 1
fi
echo "$best"
