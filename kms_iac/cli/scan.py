"""``kms-iac scan template|live``: the rule engine's command-line front doors.

Exit status of every scan: 0 clean, 1 a rule at or above ``--fail-on`` failed (and was
not suppressed), 2 a usage, configuration or connection error (one line saying why).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import click

from kms_iac.rules.registry import SEVERITIES

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class ScanError(click.ClickException):
    """A usage, configuration or connection error: one line, exit status 2."""

    exit_code = EXIT_ERROR

    def show(self, file=None) -> None:  # one line, no usage block
        click.echo(f"Error: {self.format_message()}", err=True)


def fail_on_option(f):
    return click.option("--fail-on", type=click.Choice(SEVERITIES, case_sensitive=False), default="LOW",
                        show_default=True, callback=lambda c, p, v: v.upper(),
                        help="Exit 1 when an unsuppressed finding at or above this severity fails.")(f)


def config_option(f):
    return click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                        help="Rules config (kms-iac.yaml or pyproject.toml); default: found upward from the scanned path.")(f)


def output_option(f):
    return click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
                        help="Write the report to this file instead of standard output.")(f)


def load_rules_config(start: Path | None, explicit: Path | None):
    from kms_iac.rules.config import ConfigError, load_config

    try:
        return load_config(start, explicit)
    except ConfigError as e:
        raise ScanError(f"{e}; fix the rules config, or name another with --config") from None


def emit(findings: Sequence, fmt: str, fail_on: str, output: Path | None, show_passed: bool = False) -> None:
    """Print the report in ``fmt`` and exit with the scan's status."""
    from kms_iac.rules.engine import failing
    from kms_iac.rules.report import print_text, render

    if fmt == "text":
        if output:
            from rich.console import Console
            with output.open("w") as fh:
                print_text(findings, Console(file=fh, width=160), show_passed)
        else:
            print_text(findings, show_passed=show_passed)
    else:
        text = render(findings, fmt)
        if output:
            output.write_text(text + "\n")
        else:
            click.echo(text)
    sys.exit(EXIT_FINDINGS if failing(findings, fail_on) else EXIT_CLEAN)


@click.group()
def scan() -> None:
    """Check KMS keys against the rules KMS001-KMS016 (templates or live keys)."""


def _register() -> None:
    from kms_iac.cli.scan_live import live
    from kms_iac.cli.scan_template import template

    scan.add_command(template)
    scan.add_command(live)


_register()
