#!/usr/bin/env python3
"""Writes rules/checkov/ckv_kmsiac_<n>_<name>.py, one checkov check file per registered rule.

Each file is metadata only (the rule, its checkov id and name, category and resource
types); the logic is rules/checkov/_base.py. The files are generated so they cannot drift
from the rule registry (tests/test_rules_checkov.py regenerates them in memory and
compares), yet each stands on its own the way checkov's checks do: one check, one file,
its metadata at the top.

    python scripts/generate_checkov_checks.py          # (re)write the files
    python scripts/generate_checkov_checks.py --check  # exit 1 if any file is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kms_iac.rules.registry import Rule, all_rules  # noqa: E402

CHECKS_DIR = ROOT / "rules" / "checkov"

# Rules that judge a key policy also run on an aws_kms_key_policy whose key is not in the
# scanned configuration (a key policy of a key managed elsewhere); with its key present,
# the policy is judged on the key (it replaces the key's own policy there).
POLICY_RULES = {"KMS001", "KMS004", "KMS005", "KMS006", "KMS011", "KMS013"}


def resources(rule: Rule) -> tuple[str, str, str]:
    """(category, CloudFormation types, Terraform types) as expressions over _base's constants."""
    if rule.applies_to == "identity-policy":
        return "IAM", "CFN_IDENTITY", "TF_IDENTITY"
    tf = "TF_KEYS + TF_KEY_POLICY" if rule.id in POLICY_RULES else "TF_KEYS"
    return "ENCRYPTION", "CFN_KEYS", tf


def file_name(rule: Rule) -> str:
    mod = rule.check.__module__.rsplit(".", 1)[-1]          # kms001_root_access
    return f"ckv_kmsiac_{rule.number}_{mod.split('_', 1)[1]}.py"


def render(rule: Rule) -> str:
    category, cfn, tf = resources(rule)
    names = sorted({n for expr in (cfn, tf) for n in expr.replace("+", " ").split()})
    return f'''"""{rule.checkov_id}: {rule.id}, {rule.title}.

Generated from the rule registry by scripts/generate_checkov_checks.py; the logic is _base.py.
"""

from _base import {", ".join(names)}, cloudformation_check, terraform_check

RULE = "{rule.id}"
ID = "{rule.checkov_id}"
NAME = {json.dumps(rule.title)}
CATEGORY = "{category}"
CFN_RESOURCES = {cfn}
TF_RESOURCES = {tf}

cfn_check = cloudformation_check(RULE, ID, NAME, CATEGORY, CFN_RESOURCES)
tf_check = terraform_check(RULE, ID, NAME, CATEGORY, TF_RESOURCES)
'''


def expected() -> dict[Path, str]:
    return {CHECKS_DIR / file_name(r): render(r) for r in all_rules()}


def main(argv: list[str]) -> int:
    want = expected()
    stale = [p for p, text in want.items() if not p.is_file() or p.read_text() != text]
    extra = [p for p in CHECKS_DIR.glob("ckv_kmsiac_*.py") if p not in want]
    if "--check" in argv:
        for p in stale + extra:
            print(f"stale: {p.relative_to(ROOT)}", file=sys.stderr)
        return 1 if stale or extra else 0
    for p in extra:
        p.unlink()
    for p in stale:
        p.write_text(want[p])
        print(f"wrote {p.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
