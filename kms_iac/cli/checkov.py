"""``kms-iac checkov [checkov arguments...]``: the real checkov with kms-iac's checks loaded.

checkov pins boto3 and packaging versions the Pulumi SDK cannot share, so it lives in its
own virtualenv that ``scripts/ensure_checkov.sh`` (run by ``scripts/setup.sh``) creates
under ``${XDG_CACHE_HOME:-~/.cache}/kms-iac/checkov/<hash of tools/checkov/requirements.txt>``.
This command only finds that environment and replaces itself with its checkov (so exit
status and output are checkov's own), adding ``--external-checks-dir <repo>/rules/checkov``
and a ``PYTHONPATH`` of just the repository, so the checks import ``kms_iac.rules`` (stdlib
and PyYAML only) and nothing from the project's own virtualenv leaks into checkov's.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[2]
CHECKS_DIR = ROOT / "rules" / "checkov"
REQUIREMENTS = ROOT / "tools" / "checkov" / "requirements.txt"


class CheckovError(click.ClickException):
    """checkov cannot be started (its environment, the checks or the rules config): one line, exit 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def checkov_env_dir() -> Path:
    """Where ``scripts/ensure_checkov.sh`` puts the environment for the current pin (same hash)."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    cache = os.environ.get("KMS_IAC_CHECKOV_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kms-iac", "checkov")
    return Path(cache) / digest


def checkov_executable() -> Path:
    """The pinned checkov, or :class:`CheckovError` saying how to get it."""
    if not REQUIREMENTS.is_file() or not (CHECKS_DIR / "__init__.py").is_file():
        raise CheckovError(f"kms-iac's checkov checks are not at {CHECKS_DIR} (run kms-iac from its source tree)")
    env = checkov_env_dir()
    exe = env / "bin" / "checkov"
    stamp = env / ".kms-iac-stamp"
    if not (exe.is_file() and os.access(exe, os.X_OK) and stamp.is_file()
            and stamp.read_text().strip() == env.name):
        raise CheckovError(f"checkov's environment is not installed ({env}); run scripts/setup.sh")
    return exe


def checkov_env() -> dict[str, str]:
    """The environment checkov runs with: ours, with PYTHONPATH naming only the repository.

    checkov otherwise calls Prisma Cloud for check metadata (guidelines) on every run and
    PyPI for a newer version; neither is needed for local checks (our pin is the version),
    and a pipeline without internet access would wait on them, so both are off unless the
    caller sets the variables.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(ROOT)
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


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False,
                                 "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def checkov(args: tuple[str, ...]) -> None:
    """Run checkov with kms-iac's CKV_KMSIAC_<n> checks (all arguments go to checkov)."""
    cmd = checkov_command(args)
    _check_rules_config()
    os.execve(cmd[0], cmd, checkov_env())
