"""Commands that hand every argument to another program (``kms-iac pulumi``, ``kms-iac checkov``)."""

from __future__ import annotations

from typing import Callable

import click


def passthrough_command(fn: Callable[[tuple[str, ...]], None]) -> click.Command:
    """A click command whose arguments, options and ``--help`` all go to the wrapped tool
    untouched: click parses none of them."""
    return click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False,
                                           "help_option_names": []})(
        click.argument("args", nargs=-1, type=click.UNPROCESSED)(fn))
