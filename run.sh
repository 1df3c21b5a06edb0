#!/usr/bin/env bash
# The main job: sets everything up, then runs the example multi-tenant deployment
# against the embedded local KMS backend with the real Pulumi engine, and prints its report.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/python examples/main_job.py "$@"
