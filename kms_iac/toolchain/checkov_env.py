"""checkov, pinned in tools/checkov/requirements.txt, in its own virtualenv: what ``kms-iac
checkov`` runs. The one implementation behind ``scripts/ensure_checkov.sh`` (setup) and
``kms-iac setup checkov`` (a wheel install).

Why its own environment: checkov pins boto3/botocore and packaging versions that the Pulumi
SDK and the project's boto3 cannot share, so it is installed apart and run as a program.

The environment is ``${KMS_IAC_CHECKOV_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kms-iac/checkov}/<hash
of the requirements file>/``: a changed pin makes a new one, an unchanged pin finds the old
one (a second run is a stamp comparison, instant), and a checkout and any wheel install of
the same pin share it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from kms_iac.bundled import bundled
from kms_iac.toolchain._common import Reporter, ToolchainError, cache_root, exclusive, minutes

STAMP = ".kms-iac-stamp"


def requirements_file() -> Path:
    return bundled("checkov") / "requirements.txt"


def checkov_env_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the environment for the current pin lives (whether or not it is installed yet)."""
    digest = hashlib.sha256(requirements_file().read_bytes()).hexdigest()[:16]
    return cache_root("checkov", "KMS_IAC_CHECKOV_CACHE", env) / digest


def checkov_ready(env_dir: Path) -> bool:
    """Installed completely: the stamp is written last, so an interrupted install is redone."""
    exe, stamp = env_dir / "bin" / "checkov", env_dir / STAMP
    return exe.is_file() and os.access(exe, os.X_OK) and stamp.is_file() and stamp.read_text().strip() == env_dir.name


def ensure_checkov(env: Mapping[str, str] | None = None, reporter: Reporter | None = None) -> Path:
    """checkov's bin directory, installing the pinned checkov first if it is not there."""
    env = dict(os.environ if env is None else env)
    dest = checkov_env_dir(env)
    if checkov_ready(dest):
        return dest / "bin"
    reporter = reporter or Reporter("kms-iac", "usually about 2 minutes")
    with exclusive(dest.parent / ".lock"):
        if not checkov_ready(dest):
            _install(dest, env, reporter)
    return dest / "bin"


def _install(dest: Path, env: Mapping[str, str], reporter: Reporter) -> None:
    req = requirements_file()
    pin = next((line.strip() for line in req.read_text().splitlines() if line.startswith("checkov")), "checkov")
    reporter.say(f"installing {pin} into its own virtualenv {dest} (once; usually about 2 minutes)")
    python = env.get("PYTHON") or sys.executable
    # A venv's scripts embed its path, so it is made at its final path.
    shutil.rmtree(dest, ignore_errors=True)
    pip = [str(dest / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    reporter.run("[1/3] creating the virtualenv", [python, "-m", "venv", str(dest)], env=env)
    reporter.run("[2/3] upgrading pip", [*pip, "--upgrade", "pip"], env=env)
    reporter.run(f"[3/3] installing {pin}", [*pip, "-r", str(req)], env=env)
    version = subprocess.run([str(dest / "bin" / "checkov"), "--version"], capture_output=True, text=True, env=env)
    if version.returncode != 0:
        raise ToolchainError(f"checkov did not run after installing it: {version.stderr.strip()}")
    (dest / STAMP).write_text(dest.name + "\n")
    reporter.say(f"installed checkov {version.stdout.strip()} in {minutes(reporter.elapsed())}")
