"""``kms-iac checkov [checkov arguments...]``: the real checkov with kms-iac's checks loaded.

checkov pins boto3 and packaging versions the Pulumi SDK cannot share, so it lives in its
own virtualenv (kms_iac/toolchain/checkov_env.py) under
``${XDG_CACHE_HOME:-~/.cache}/kms-iac/checkov/<hash of tools/checkov/requirements.txt>``,
made by ``scripts/setup.sh`` in a checkout or ``kms-iac setup checkov`` after a wheel
install. This command only finds that environment and replaces itself with its checkov (so
exit status and output are checkov's own), adding ``--external-checks-dir`` with the checks
(``rules/checkov`` of the checkout, or their copy inside the installed package) and a
``PYTHONPATH`` naming a directory that holds ``kms_iac`` and nothing else, so the checks
import ``kms_iac.rules`` (stdlib and PyYAML only) and nothing from the project's own
virtualenv leaks into checkov's.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import click

from kms_iac.bundled import PACKAGE_DIR, SOURCE_ROOT, bundled, installed_from_wheel
from kms_iac.cli.passthrough import passthrough_command
from kms_iac.toolchain._common import point_symlink
from kms_iac.toolchain.checkov_env import checkov_env_dir, checkov_ready, requirements_file

CHECKS_DIR = bundled("checkov_checks")
REQUIREMENTS = requirements_file()


class CheckovError(click.ClickException):
    """checkov cannot be started (its environment, the checks or the rules config): one line, exit 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def checkov_executable() -> Path:
    """The pinned checkov, or :class:`CheckovError` saying how to get it."""
    if not REQUIREMENTS.is_file() or not (CHECKS_DIR / "__init__.py").is_file():
        raise CheckovError(f"kms-iac's checkov checks are not at {CHECKS_DIR} (a broken install: reinstall kms-iac)")
    env = checkov_env_dir()
    if not checkov_ready(env):
        how = "kms-iac setup checkov" if installed_from_wheel() else "scripts/setup.sh"
        raise CheckovError(f"checkov's environment is not installed ({env}); run {how}")
    return env / "bin" / "checkov"


def checks_python_path() -> Path:
    """A directory whose only importable package is ``kms_iac``, for checkov's PYTHONPATH.

    In a checkout that is the repository. In a wheel install ``kms_iac`` sits in a
    site-packages full of the project's own boto3, packaging, pulumi...; putting that on
    checkov's path would shadow checkov's pins, so a directory holding just a symlink to the
    installed package (one per install, beside checkov's environment) stands in for it.
    """
    if not installed_from_wheel():
        return SOURCE_ROOT
    links = checkov_env_dir().parent / "kms_iac-paths" / hashlib.sha256(str(PACKAGE_DIR).encode()).hexdigest()[:16]
    point_symlink(links / "kms_iac", PACKAGE_DIR)
    return links


def checkov_env() -> dict[str, str]:
    """The environment checkov runs with: ours, with PYTHONPATH naming only kms_iac's directory.

    checkov otherwise calls Prisma Cloud for check metadata (guidelines) on every run and
    PyPI for a newer version; neither is needed for local checks (our pin is the version),
    and a pipeline without internet access would wait on them, so both are off unless the
    caller sets the variables.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(checks_python_path())
    env.setdefault("BC_SKIP_MAPPING", "TRUE")
    env.setdefault("CKV_SKIP_PACKAGE_UPDATE_CHECK", "TRUE")
    return env


def checkov_command(args: tuple[str, ...] | list[str]) -> list[str]:
    """The full command line: checkov, kms-iac's checks directory, then the caller's arguments."""
    return [str(checkov_executable()), "--external-checks-dir", str(CHECKS_DIR), *args]


def _check_rules_config() -> None:
    """Fail before checkov starts on a broken kms-iac config, instead of one error per check."""
    from kms_iac.rules.config import ConfigError, load_config

    try:
        load_config(Path.cwd())
    except ConfigError as e:
        raise CheckovError(str(e)) from None


@passthrough_command
def checkov(args: tuple[str, ...]) -> None:
    """Run checkov with kms-iac's CKV_KMSIAC_<n> checks (all arguments go to checkov)."""
    cmd = checkov_command(args)
    _check_rules_config()
    os.execve(cmd[0], cmd, checkov_env())
