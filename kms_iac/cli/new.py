"""``kms-iac new [DIR]``: a Pulumi project of your own that uses kms-iac, ready for
``kms-iac pulumi up``.

``pulumi new`` cannot do this: templates need the language host's code generation, which
kms-iac's build of the Python host does not have. The project written here is a plain
Pulumi project, complete without any PATH set-up:

* ``Pulumi.yaml``: the python runtime in the virtualenv kms-iac is installed in (or the one
  ``--venv`` names); a ``plugins: providers:`` entry pointing the engine at that
  virtualenv's ``pulumi-resource-kms-iac`` (project plugins come before anything on PATH or
  in the plugin cache, so there is nothing to install and no "using ... from $PATH"
  warning); a file state backend in ``.pulumi-state/`` so ``pulumi up`` needs no login;
  and ``kms-iac:target: local``, the embedded KMS backend (its data in ``.kms-iac/``).
* ``__main__.py`` + ``tenants.yaml``: a ``TenantKeyFleet`` of two tenants, each with a key,
  an alias and a role-based key policy.
* ``README.md`` and ``.gitignore`` (``.pulumi-state/`` keeps only its own ``.gitignore``,
  so a clone has the directory pulumi needs and none of the machine-local state).

Paths to a virtualenv inside the project are written relative to it (the project moves
with it); others are absolute.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from string import Template
import click

from kms_iac.cli.errors import BadInput
from kms_iac.provider import PACKAGE

TEMPLATE_DIR = Path(__file__).with_name("new_project")
# written path -> (template file, whether ${...} placeholders are filled in)
FILES: dict[str, tuple[str, bool]] = {
    "Pulumi.yaml": ("Pulumi.yaml", True),
    "__main__.py": ("__main__.py", False),
    "tenants.yaml": ("tenants.yaml", False),
    "README.md": ("README.md", True),
    ".gitignore": ("gitignore", False),
    ".pulumi-state/.gitignore": ("state-gitignore", False),
}
PROJECT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")  # what Pulumi accepts as a project name


def default_venv() -> Path:
    """The virtualenv this kms-iac runs from."""
    if sys.prefix == sys.base_prefix:
        raise BadInput("kms-iac is not running from a virtualenv: install it into one (python3 -m venv VENV && "
                              "VENV/bin/pip install kms-iac) or name one with --venv")
    return Path(sys.prefix)


def checked_venv(venv: Path) -> Path:
    """``venv``, absolute, after checking that it has a python and the kms-iac provider."""
    venv = venv.expanduser().absolute()
    if not (venv / "bin" / "python").exists():
        raise BadInput(f"{venv} is not a virtualenv (no bin/python)")
    if not (venv / "bin" / f"pulumi-resource-{PACKAGE}").exists():
        raise BadInput(f"kms-iac is not installed in {venv} (no bin/pulumi-resource-{PACKAGE}): "
                              f"{venv}/bin/pip install kms-iac")
    return venv


def project_name(name: str | None, directory: Path) -> str:
    """``--name``, or the directory's name made into a valid Pulumi project name."""
    if name is not None:
        if not PROJECT_NAME.fullmatch(name):
            raise BadInput(f"--name {name!r} is not a Pulumi project name (letters, digits, '_', '.', '-'; "
                                  "at most 100)")
        return name
    derived = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory.name).strip("-.")[:100]
    return derived or "kms-iac-project"


def path_in_project(path: Path, project: Path) -> str:
    """``path`` relative to the project when it is inside it, else absolute."""
    try:
        return str(path.relative_to(project)) or "."
    except ValueError:
        return str(path)


def command_name(venv: Path) -> str:
    """How to call this venv's kms-iac in the instructions: plain ``kms-iac`` if that is what PATH
    finds, else its full path."""
    exe = venv / "bin" / "kms-iac"
    found = shutil.which("kms-iac")
    return "kms-iac" if found and Path(found).resolve() == exe.resolve() else str(exe)


def write_project(directory: Path, name: str, venv: Path, force: bool = False) -> list[str]:
    """Write the project's files into ``directory`` (created if missing); the written paths."""
    if directory.exists() and not directory.is_dir():
        raise BadInput(f"{directory} exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise BadInput(f"{directory} is not empty; choose a new or empty directory, or add --force to "
                              "write the project's files into it (replacing files of the same names)")
    from kms_iac.toolchain.pulumi_cli import pinned_version

    project = directory.absolute()
    values = {"name": name, "virtualenv": path_in_project(venv, project),
              "plugin_dir": path_in_project(venv / "bin", project), "kms_iac": command_name(venv),
              "pulumi_version": pinned_version()}
    project.mkdir(parents=True, exist_ok=True)
    for dest, (template, fill) in FILES.items():
        text = (TEMPLATE_DIR / template).read_text()
        path = project / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(text).substitute(values) if fill else text)
    return list(FILES)


@click.command()
@click.argument("directory", default=".", type=click.Path(path_type=Path))
@click.option("--name", help="Pulumi project name (default: the directory's name).")
@click.option("--venv", type=click.Path(path_type=Path),
              help="Virtualenv the program runs in, with kms-iac installed (default: the one this kms-iac runs from).")
@click.option("--force", is_flag=True, help="Write into a non-empty directory, replacing files of the same names.")
def new(directory: Path, name: str | None, venv: Path | None, force: bool) -> None:
    """Create a Pulumi project that deploys a KMS key per tenant with kms-iac (DIR: default '.')."""
    venv = checked_venv(venv if venv is not None else default_venv())
    name = project_name(name, directory.absolute())
    written = write_project(directory, name, venv, force=force)
    kms = command_name(venv)
    where = directory if directory.is_absolute() else Path(os.path.relpath(directory.absolute()))
    click.echo(f"Created the kms-iac project {name!r} in {where}: {', '.join(written)}")
    click.echo(f"  python: {venv}; kms-iac provider: {venv / 'bin'}; state: .pulumi-state/; keys: the embedded "
               "local backend (.kms-iac/)")
    click.echo("Next:")
    if str(where) != ".":
        click.echo(f"  cd {where}")
    click.echo(f"  {kms} pulumi stack init dev   # the first run builds the pinned Pulumi CLI if it is not on PATH "
               "(once, usually 6-17 min)")
    click.echo(f"  {kms} pulumi up")
    click.echo(f"  {kms} scan live --data-dir .kms-iac")
    click.echo("More in README.md.")
