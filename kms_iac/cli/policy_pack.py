"""``kms-iac policy-pack path``: where the Pulumi policy pack is, for ``pulumi preview --policy-pack``.

    pulumi preview --policy-pack "$(kms-iac policy-pack path)"

The pack is the top-level ``rules/policy_pack`` directory of the kms-iac checkout this
package is installed from (editable, as scripts/setup.sh installs it). Its
PulumiPolicy.yaml runs it in the checkout's virtualenv; the command checks that this
virtualenv exists, so a broken setup is one ``Error:`` line here rather than a language
host failure in the middle of a preview.
"""

from __future__ import annotations

from pathlib import Path

import click

EXIT_ERROR = 2
PACK_DIR = Path(__file__).resolve().parents[2] / "rules" / "policy_pack"


class PolicyPackError(click.ClickException):
    """The pack or its virtualenv is missing: one line, exit status 2."""

    exit_code = EXIT_ERROR

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def pack_virtualenv(pack: Path) -> Path | None:
    """The virtualenv PulumiPolicy.yaml names (relative to the pack), or None if it names none."""
    import yaml

    try:
        doc = yaml.safe_load((pack / "PulumiPolicy.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise PolicyPackError(f"cannot read {pack / 'PulumiPolicy.yaml'}: {e}") from None
    runtime = doc.get("runtime")
    options = runtime.get("options") if isinstance(runtime, dict) else None
    venv = options.get("virtualenv") if isinstance(options, dict) else None
    return (pack / venv).resolve() if isinstance(venv, str) and venv else None


def checked_pack_dir(pack: Path = PACK_DIR) -> Path:
    """The pack's absolute directory, after checking that it and its virtualenv are there."""
    if not (pack / "PulumiPolicy.yaml").is_file() or not (pack / "__main__.py").is_file():
        raise PolicyPackError(f"no policy pack at {pack} (kms-iac must be installed from its source checkout)")
    venv = pack_virtualenv(pack)
    if venv is not None and not (venv / "bin" / "python").exists():
        raise PolicyPackError(f"the policy pack runs in {venv}, which has no bin/python: run scripts/setup.sh")
    return pack


@click.group("policy-pack")
def policy_pack() -> None:
    """The Pulumi policy pack that gates `pulumi preview` / `pulumi up` with rules KMS001-KMS016."""


@policy_pack.command("path")
def path() -> None:
    """Print the policy pack's absolute directory (for `pulumi preview --policy-pack`)."""
    click.echo(str(checked_pack_dir()))
