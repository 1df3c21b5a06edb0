"""Where kms-iac's non-Python parts are: in the source checkout, or inside an installed wheel.

Some of what kms-iac runs is not an importable module: the checkov checks (a directory
checkov loads with ``--external-checks-dir``), the Pulumi policy pack (a directory the
engine runs), the Go sources the Pulumi CLI is built from and checkov's pinned
requirements. Each has ONE copy in the source tree (``rules/...``, ``tools/...``).
``setup.py`` maps each into the wheel as ``kms_iac/_bundled/<name>/`` (the same way it maps
``components/`` to ``kms_iac.components``), so an install from a wheel or a git URL carries
them; a checkout (and its editable install) uses them where they are.

This module is standard library only: setup.py reads :data:`LAYOUT` from it, and the
toolchain scripts run it with any Python 3.
"""

from __future__ import annotations

from pathlib import Path

# name inside the wheel (kms_iac/_bundled/<name>) -> directory in the source tree, and the
# files (setuptools package_data globs) the wheel must carry besides *.py modules.
LAYOUT: dict[str, tuple[str, tuple[str, ...]]] = {
    "checkov_checks": ("rules/checkov", ()),
    "policy_pack": ("rules/policy_pack", ("PulumiPolicy.yaml",)),
    "pulumi": ("tools/pulumi", ("VERSION", "go.mod", "go.sum", "cmd/*/*.go")),
    "pulumi_yaml": ("tools/pulumi-yaml", ("go.mod", "go.sum", "tools.go")),
    "checkov": ("tools/checkov", ("requirements.txt",)),
}

PACKAGE_DIR = Path(__file__).resolve().parent
WHEEL_DIR = PACKAGE_DIR / "_bundled"
SOURCE_ROOT = PACKAGE_DIR.parent


def installed_from_wheel() -> bool:
    """True for a wheel (or git URL) install; False in a source checkout or an editable install."""
    return WHEEL_DIR.is_dir()


def bundled(name: str) -> Path:
    """The directory of one bundled part (a key of :data:`LAYOUT`), wherever this install keeps it."""
    source_dir, _ = LAYOUT[name]
    return WHEEL_DIR / name if installed_from_wheel() else SOURCE_ROOT / source_dir
