"""How ``kms-iac`` reports a mistake: one line, a documented exit status, nothing changed.

Every command that fails because of its input or its environment prints exactly one line on
standard error, ``Error: <what is wrong>; <what to do>``, never a Python traceback, and exits
with one of these statuses:

====  =========================================================================================
0     success
1     a negative answer, not an error: ``policy simulate`` denied an action, ``scan`` found a
      failing rule at or above ``--fail-on``
2     usage or bad input: an option or argument, a file given on the command line (missing,
      binary, invalid), a name that does not exist (``--key``, ``--action``, ``--principal``),
      a tool the command needs and cannot find (SoftHSM2 for ``local hsm create-cluster``).
      ``scan``, ``checkov`` and ``policy-pack`` use 2 for *every* error (their CI contract:
      0 clean, 1 findings, 2 error)
3     the data dir cannot be used: missing, not a directory, not writable, a damaged database,
      a missing or truncated ``root.key`` next to keys that need it
4     the network: an endpoint cannot be reached or refused the credentials, or ``local serve``
      cannot listen on the address (port in use, address not on this machine)
====  =========================================================================================

Commands raise the typed exceptions below; errors of lower layers that reach the top
(:class:`kms_iac.backend.datadir.DataDirError`, a principals file's or a seed file's error,
click's own usage errors) are turned into them by :class:`KmsIacGroup`, the root command's
class, in one place.
"""

from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path
from typing import IO, Any, Iterator

import click

EXIT_OK = 0
EXIT_NEGATIVE = 1
EXIT_USAGE = 2
EXIT_DATA_DIR = 3
EXIT_NETWORK = 4


class CliError(click.ClickException):
    """A mistake the user can act on: one ``Error:`` line and the class's exit status."""

    exit_code = EXIT_USAGE

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


class BadInput(CliError):
    """An option, argument or input file is wrong (exit 2)."""

    exit_code = EXIT_USAGE


class DataDirUnusable(CliError):
    """The backend's data dir cannot be used as it is (exit 3)."""

    exit_code = EXIT_DATA_DIR


class NetworkError(CliError):
    """An endpoint cannot be reached or used, or an address cannot be listened on (exit 4)."""

    exit_code = EXIT_NETWORK


def _sentence(message: str) -> str:
    return message.rstrip().rstrip(".")


def _loaded(module: str, name: str) -> type | None:
    """``module.name`` if that module is already imported (an exception of a module never imported
    cannot be raised, and importing the backend just to compare would slow every command down)."""
    mod = sys.modules.get(module)
    return getattr(mod, name, None) if mod is not None else None


def _translate(exc: BaseException) -> CliError | None:
    """The CliError for an exception of a lower layer, or None to let it propagate."""
    if isinstance(exc, CliError) or isinstance(exc, click.exceptions.NoArgsIsHelpError):
        return None  # already one line; or `kms-iac local` alone, which prints its help
    if isinstance(exc, click.UsageError):
        where = exc.ctx.command_path if exc.ctx is not None else "kms-iac"
        return BadInput(f"{_sentence(exc.format_message())}; see '{where} --help'")
    data_dir_error = _loaded("kms_iac.backend.datadir", "DataDirError")
    if data_dir_error is not None and isinstance(exc, data_dir_error):
        return DataDirUnusable(str(exc))
    principals_error = _loaded("kms_iac.backend.principals", "PrincipalsError")
    if principals_error is not None and isinstance(exc, principals_error):
        return BadInput(f"{_sentence(str(exc))}; fix the principals file (YAML or JSON; its format: README, "
                        "'Authentication and authorization')")
    seed_error = _loaded("kms_iac.backend.seed", "SeedError")
    if seed_error is not None and isinstance(exc, seed_error):
        return BadInput(f"{_sentence(str(exc))}; fix the seed file (YAML or JSON, format in "
                        "`kms-iac local seed --help`)")
    unreachable = _loaded("botocore.exceptions", "ConnectionError")
    if unreachable is not None and isinstance(exc, unreachable):
        return NetworkError(f"{_sentence(str(exc))}; check that the endpoint is running and its URL is right")
    return None


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise lower layers' errors as :class:`CliError` (one line, a documented exit status)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - translated or re-raised unchanged
        mapped = _translate(exc)
        if mapped is None:
            raise
        raise mapped from None


class KmsIacGroup(click.Group):
    """The root command: every error of every subcommand passes :func:`translated` here, once."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        with translated():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with translated():
            return super().invoke(ctx)


class DataDirType(click.Path):
    """A data dir option: a directory path, never the empty string (which would silently mean the
    current directory)."""

    def __init__(self) -> None:
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.strip() == "":
            self.fail("the data dir is an empty path; give a directory, e.g. --data-dir .kms-iac", param, ctx)
        return super().convert(value, param, ctx)


_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")


def account_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An AWS account id option: 12 digits (it becomes part of every key ARN)."""
    if value is not None and not _ACCOUNT.match(value):
        raise click.BadParameter(f"{value!r} is not an AWS account id (12 digits, e.g. 111122223333)")
    return value


def region_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An AWS Region option, shaped like us-east-1 (it becomes part of every key ARN)."""
    if value is not None and not _REGION.match(value):
        raise click.BadParameter(f"{value!r} is not an AWS Region name (e.g. us-east-1, eu-west-2)")
    return value
