"""``kms-iac pulumi ARGS...`` and ``kms-iac setup``: the pinned Pulumi CLI (and checkov) for a
user's own project, from any install of kms-iac.

``kms-iac pulumi`` finds the Pulumi CLI kms-iac is pinned to (a matching ``pulumi`` on
PATH, else the cache, else a one-time build with Go, with progress on stderr: see
kms_iac/toolchain/pulumi_cli.py) and replaces itself with it, so the exit status and the
output are Pulumi's own. The environment is the caller's plus what a local project needs:
the pinned binaries first on PATH, no update check, no automatic plugin downloads, and a
default passphrase for the local secrets provider (``kms-iac-local``) when the caller has
neither PULUMI_CONFIG_PASSPHRASE nor PULUMI_CONFIG_PASSPHRASE_FILE. Every ``PULUMI_*``
variable the caller sets passes through unchanged and wins.

The kms-iac provider is found through the project: ``kms-iac new`` writes a ``plugins:``
entry pointing at the directory of this virtualenv's ``pulumi-resource-kms-iac``, so the
engine never looks on PATH (no "using ... from $PATH" warning) nor on the internet. For a
project without that entry this command says how to add it before handing over to Pulumi.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path
from typing import Callable

import click

from kms_iac.cli.errors import CliError
from kms_iac.cli.passthrough import passthrough_command
from kms_iac.provider import PACKAGE
from kms_iac.toolchain._common import ToolchainError


def provider_dir() -> Path:
    """The directory of this install's provider executable (the virtualenv's bin): what a project's
    ``plugins: providers: [{name: kms-iac, path: ...}]`` names."""
    return Path(sysconfig.get_path("scripts"))


def _project_file(args: tuple[str, ...]) -> Path | None:
    """The Pulumi.yaml pulumi will use: in ``-C/--cwd DIR`` or the current directory, or above it."""
    where = Path.cwd()
    for i, arg in enumerate(args):
        if arg in ("-C", "--cwd") and i + 1 < len(args):
            where = Path(args[i + 1])
        elif arg.startswith("--cwd="):
            where = Path(arg.split("=", 1)[1])
    for d in (where.resolve(), *where.resolve().parents):
        for name in ("Pulumi.yaml", "Pulumi.yml"):
            if (d / name).is_file():
                return d / name
    return None


def missing_plugin_hint(project_file: Path | None) -> str | None:
    """What to add to a Python project's Pulumi.yaml that does not point the engine at the provider."""
    if project_file is None:
        return None
    import yaml

    try:
        doc = yaml.safe_load(project_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None  # pulumi itself will say what is wrong with it
    runtime = doc.get("runtime")
    runtime_name = runtime.get("name") if isinstance(runtime, dict) else runtime
    if runtime_name != "python":
        return None
    plugins = doc.get("plugins")
    providers = plugins.get("providers") if isinstance(plugins, dict) else None
    if isinstance(providers, list) and any(isinstance(p, dict) and p.get("name") == PACKAGE for p in providers):
        return None
    return (f"kms-iac: note: {project_file} does not say where the kms-iac provider is; if the program uses "
            f"kms_iac, add to it:\n  plugins:\n    providers:\n      - name: {PACKAGE}\n        path: {provider_dir()}")


def provided(ensure: Callable[[], Path]) -> Path:
    """A tool's bin directory from its provisioner; a tool that cannot be had is one ``Error:`` line."""
    try:
        return ensure()
    except ToolchainError as e:
        raise CliError(str(e)) from None


@passthrough_command
def pulumi(args: tuple[str, ...]) -> None:
    """Run the pinned Pulumi CLI for a local project (all arguments go to pulumi; built once if needed)."""
    from kms_iac.toolchain.pulumi_cli import ensure_pulumi, pulumi_env

    bin_dir = provided(ensure_pulumi)
    hint = missing_plugin_hint(_project_file(args))
    if hint:
        click.echo(hint, err=True)
    exe = str(bin_dir / "pulumi")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(exe, [exe, *args], pulumi_env(bin_dir))


@click.command()
@click.argument("tools", nargs=-1, type=click.Choice(["pulumi", "checkov"]))
def setup(tools: tuple[str, ...]) -> None:
    """Provide the pinned Pulumi CLI and checkov now (both by default); print their bin directories.

    The Pulumi CLI is a matching `pulumi` on PATH or a one-time build with Go (usually 6-17
    minutes on 2 cores); checkov gets its own virtualenv (about 2 minutes). Both are cached
    in ~/.cache/kms-iac/ and shared by every kms-iac install of this user.
    """
    from kms_iac.toolchain.checkov_env import ensure_checkov
    from kms_iac.toolchain.pulumi_cli import ensure_pulumi

    provisioners = {"pulumi": ensure_pulumi, "checkov": ensure_checkov}
    for tool in tools or tuple(provisioners):
        click.echo(f"{tool}: {provided(provisioners[tool])}")
