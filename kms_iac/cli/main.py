"""The ``kms-iac`` command."""

from __future__ import annotations

import click

from kms_iac.cli.checkov import checkov
from kms_iac.cli.errors import KmsIacGroup
from kms_iac.cli.local import local
from kms_iac.cli.new import new
from kms_iac.cli.policy import policy
from kms_iac.cli.policy_pack import policy_pack
from kms_iac.cli.scan import scan
from kms_iac.cli.toolchain import pulumi, setup


@click.group(cls=KmsIacGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kms-iac")
def cli() -> None:
    """AWS KMS keys as code: local backend, provider, rules."""


cli.add_command(local)
cli.add_command(policy)
cli.add_command(policy_pack)
cli.add_command(checkov)
cli.add_command(scan)
cli.add_command(new)
cli.add_command(pulumi)
cli.add_command(setup)


def main() -> None:
    cli(prog_name="kms-iac")


if __name__ == "__main__":
    main()
