"""``kms-iac policy-pack path``: where the Pulumi policy pack is, for ``pulumi preview --policy-pack``.

    pulumi preview --policy-pack "$(kms-iac policy-pack path)"

In a checkout (installed editable, as scripts/setup.sh does) the pack is the top-level
``rules/policy_pack`` directory, whose PulumiPolicy.yaml runs it in the checkout's
virtualenv. A wheel install carries the pack inside the package, but the virtualenv to run
it in is the one kms-iac is installed in, which a file in the wheel cannot name: the
command writes the pack once per virtualenv into kms-iac's cache
(``~/.cache/kms-iac/policy-pack/<hash>/``) with that virtualenv in its PulumiPolicy.yaml.
Either way it checks that the virtualenv exists, so a broken setup is one ``Error:`` line
here rather than a language host failure in the middle of a preview.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import click

from kms_iac.bundled import bundled, installed_from_wheel
from kms_iac.toolchain._common import cache_root

EXIT_ERROR = 2
PACK_DIR = bundled("policy_pack")


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
        how = ("install kms-iac into a virtualenv" if installed_from_wheel() else "run scripts/setup.sh")
        raise PolicyPackError(f"the policy pack runs in {venv}, which has no bin/python: {how}")
    return pack


def pack_for_this_install(pack: Path = PACK_DIR, venv: Path = Path(sys.prefix)) -> Path:
    """The pack directory to hand the engine: the checkout's own, or (wheel install) a copy whose
    PulumiPolicy.yaml names ``venv``, the virtualenv kms-iac runs in, written once per
    virtualenv and pack content."""
    if not installed_from_wheel():
        return pack
    import yaml

    main = (pack / "__main__.py").read_bytes()
    try:
        doc = yaml.safe_load((pack / "PulumiPolicy.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise PolicyPackError(f"cannot read {pack / 'PulumiPolicy.yaml'}: {e}") from None
    doc.setdefault("runtime", {"name": "python"}).setdefault("options", {})["virtualenv"] = str(venv)
    manifest = (f"# kms-iac's policy pack for the virtualenv {venv}, written by `kms-iac policy-pack path`\n"
                f"# from {pack}.\n" + yaml.safe_dump(doc, sort_keys=False))
    digest = hashlib.sha256(manifest.encode() + main).hexdigest()[:16]
    dest = cache_root("policy-pack", "KMS_IAC_POLICY_PACK_CACHE") / digest
    if not ((dest / "__main__.py").is_file() and (dest / "PulumiPolicy.yaml").is_file()):
        dest.mkdir(parents=True, exist_ok=True)
        for name, data in (("__main__.py", main), ("PulumiPolicy.yaml", manifest.encode())):
            tmp = dest / f".{name}.{os.getpid()}"
            tmp.write_bytes(data)
            os.replace(tmp, dest / name)  # PulumiPolicy.yaml last: its presence means complete
    return dest


@click.group("policy-pack")
def policy_pack() -> None:
    """The Pulumi policy pack that gates `pulumi preview` / `pulumi up` with rules KMS001-KMS016."""


@policy_pack.command("path")
def path() -> None:
    """Print the policy pack's absolute directory (for `pulumi preview --policy-pack`)."""
    click.echo(str(checked_pack_dir(pack_for_this_install())))
