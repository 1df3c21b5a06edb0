"""The ``kms-iac`` command."""

from __future__ import annotations

import importlib

import click

from kms_iac.cli.errors import KmsIacGroup

# Subcommands are imported when used: `kms-iac local serve` need not load the rules, scan
# and checkov code (about 50 ms of its start-up).
_COMMANDS = {
    "local": "kms_iac.cli.local:local",
    "policy": "kms_iac.cli.policy:policy",
    "policy-pack": "kms_iac.cli.policy_pack:policy_pack",
    "checkov": "kms_iac.cli.checkov:checkov",
    "scan": "kms_iac.cli.scan:scan",
    "new": "kms_iac.cli.new:new",
    "pulumi": "kms_iac.cli.toolchain:pulumi",
    "setup": "kms_iac.cli.toolchain:setup",
}


class _LazyGroup(KmsIacGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*_COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in _COMMANDS:
            module, attr = _COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return self.commands.get(name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kms-iac")
def cli() -> None:
    """AWS KMS keys as code: local backend, provider, rules."""


def main() -> None:
    cli(prog_name="kms-iac")


if __name__ == "__main__":
    main()
