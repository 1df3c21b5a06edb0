"""The checkov front door of the rules, as a test helper: the shared rule cases rendered as a
CloudFormation template, Terraform ``.tf`` files or a Terraform plan, scanned by the real
checkov (from its own environment, through ``kms-iac checkov``) with kms-iac's
``CKV_KMSIAC_<n>`` checks.

``verdicts_via_checkov(cases, identity_cases, tmp_path, framework=...)`` is what the
four-door agreement test calls: ``{case name: {rule: status}}``. checkov reports a check
that does not apply (UNKNOWN) by leaving it out, so a rule with no record for a resource
it covers reads NOT_APPLICABLE here; a check that crashed also ends UNKNOWN in checkov,
which is why :func:`run_checkov` refuses any run whose log says a check failed to run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from tests.rule_cases import Case, IdentityCase

ROOT_DIR = Path(__file__).resolve().parents[1]
CHECKOV_TIMEOUT = 900  # a hang guard for the subprocess, not a speed expectation
KMSIAC_ID = re.compile(r"^CKV_KMSIAC_(\d+)$")
STATUS = {"PASSED": "PASS", "FAILED": "FAIL", "SKIPPED": "SKIPPED"}
# What checkov logs when one of our checks raised (it then reports nothing for it) or did not load.
CHECK_ERRORS = ("Failed to run check", "Cannot load external check", "Traceback")


@dataclass
class CheckovRun:
    returncode: int
    stdout: str
    stderr: str

    def reports(self) -> list[dict]:
        """checkov's JSON output: one report per framework (a single one is not wrapped in a list)."""
        doc = json.loads(self.stdout)
        return doc if isinstance(doc, list) else [doc]

    def records(self) -> list[dict]:
        """Every passed, failed and skipped record of every framework."""
        out = []
        for rep in self.reports():
            results = rep.get("results", {})
            for kind in ("passed_checks", "failed_checks", "skipped_checks"):
                out += results.get(kind, [])
        return out


def run_checkov(*args: str, cwd: Path, env: dict[str, str] | None = None, check_errors: bool = True) -> CheckovRun:
    """``kms-iac checkov ARGS`` as a real subprocess (exit 0 clean, 1 failed checks)."""
    proc = subprocess.run([sys.executable, "-m", "kms_iac", "checkov", *args], capture_output=True, text=True,
                          timeout=CHECKOV_TIMEOUT, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT_DIR), **(env or {})})
    run = CheckovRun(proc.returncode, proc.stdout, proc.stderr)
    if check_errors:
        bad = [line for line in proc.stderr.splitlines() if any(e in line for e in CHECK_ERRORS)]
        assert not bad, f"checkov could not run kms-iac's checks:\n{proc.stderr[-4000:]}"
    return run


# --- Terraform (.tf) ---------------------------------------------------------------

def hcl(value: Any) -> str:
    """A Python value as an HCL expression (strings JSON-quoted, template markers escaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value).replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {hcl(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(hcl(v) for v in value) + "]"
    raise TypeError(f"no HCL for {value!r}")


def heredoc(doc: dict, indent: str = "  ") -> str:
    """A JSON document as an HCL heredoc, the way policies are most often written in .tf files."""
    text = json.dumps(doc, indent=2).replace("${", "$${").replace("%{", "%%{")
    body = "\n".join(indent + "  " + line for line in text.splitlines())
    return f"<<-POLICY\n{body}\n{indent}POLICY"


TF_KEY_ARGS = {  # provider argument -> aws_kms_key argument
    "description": "description", "enable_key_rotation": "enable_key_rotation",
    "rotation_period_in_days": "rotation_period_in_days", "deletion_window_in_days": "deletion_window_in_days",
    "key_spec": "customer_master_key_spec", "key_usage": "key_usage", "is_enabled": "is_enabled",
    "multi_region": "multi_region", "bypass_policy_lockout_safety_check": "bypass_policy_lockout_safety_check",
    "tags": "tags",
}
TF_EXTERNAL_KEY_ARGS = {  # aws_kms_external_key has no spec, usage or rotation; `enabled`, not is_enabled
    "description": "description", "deletion_window_in_days": "deletion_window_in_days", "is_enabled": "enabled",
    "multi_region": "multi_region", "bypass_policy_lockout_safety_check": "bypass_policy_lockout_safety_check",
    "tags": "tags", "valid_to": "valid_to",
}


def tf_resource_type(case: Case) -> str:
    return "aws_kms_external_key" if case.key_args().get("origin") == "EXTERNAL" else "aws_kms_key"


def render_case_tf(case: Case, skip: dict[str, str] | None = None) -> str:
    """``case``'s key (and alias) as Terraform resources; ``skip`` adds checkov skip comments."""
    a = case.key_args()
    rtype = tf_resource_type(case)
    names = TF_EXTERNAL_KEY_ARGS if rtype == "aws_kms_external_key" else TF_KEY_ARGS
    # An imported-material key has no rotation arguments; "rotation off" is what it has anyway.
    ignored = {"policy", "origin"} | set(names)
    unknown = {k for k, v in a.items() if v not in (None, False)} - ignored
    if unknown:
        raise ValueError(f"{case.name}: no Terraform argument for {sorted(unknown)}")
    lines = [f'resource "{rtype}" "{case.name}" {{']
    for check_id, reason in (skip or {}).items():
        lines.append(f"  #checkov:skip={check_id}:{reason}")
    for arg, tf_arg in names.items():
        if a.get(arg) is not None:
            lines.append(f"  {tf_arg} = {hcl(a[arg])}")
    if a.get("policy") is not None:
        lines.append(f"  policy = {heredoc(a['policy'])}")
    lines.append("}")
    if case.alias:
        lines += ["", f'resource "aws_kms_alias" "{case.name}" {{',
                  f"  name          = {hcl(case.alias.format(case=case.name))}",
                  f"  target_key_id = {rtype}.{case.name}.key_id", "}"]
    return "\n".join(lines) + "\n"


def render_identity_tf(case: IdentityCase) -> str:
    return "\n".join([f'resource "aws_iam_policy" "{case.name}" {{', f"  name   = {hcl(case.name)}",
                      f"  policy = {heredoc(case.document)}", "}"]) + "\n"


def write_tf(cases: Iterable[Case], identity_cases: Iterable[IdentityCase], directory: Path) -> dict[str, str]:
    """One .tf file per case in ``directory``; returns {checkov resource address: case name}."""
    directory.mkdir(parents=True, exist_ok=True)
    names = {}
    for case in cases:
        (directory / f"{case.name}.tf").write_text(render_case_tf(case))
        names[f"{tf_resource_type(case)}.{case.name}"] = case.name
    for ic in identity_cases:
        (directory / f"{ic.name}.tf").write_text(render_identity_tf(ic))
        names[f"aws_iam_policy.{ic.name}"] = ic.name
    return names


# --- verdicts --------------------------------------------------------------------------

def kmsiac_rule(check_id: str) -> str | None:
    """KMS<n> for CKV_KMSIAC_<n>; None for any other check."""
    m = KMSIAC_ID.match(check_id)
    return f"KMS{int(m.group(1)):03d}" if m else None


def verdicts_from_records(records: Iterable[dict], names: dict[str, str]) -> dict[str, dict[str, str]]:
    """{case name: {rule: PASS|FAIL|SKIPPED}} from checkov records of the resources in ``names``."""
    out: dict[str, dict[str, str]] = {name: {} for name in names.values()}
    for rec in records:
        rule = kmsiac_rule(rec["check_id"])
        name = names.get(rec["resource"])
        if rule is None or name is None:
            continue
        status = STATUS[rec["check_result"]["result"]]
        prior = out[name].setdefault(rule, status)
        assert prior == status, f"{rec['resource']}: {rule} reported both {prior} and {status}"
    return out


def with_not_applicable(verdicts: dict[str, dict[str, str]], rules_for: dict[str, Iterable[str]]) -> dict[str, dict[str, str]]:
    """Fill the rules checkov left out (its UNKNOWN) as NOT_APPLICABLE."""
    return {name: {**{r: "NOT_APPLICABLE" for r in rules_for[name]}, **v} for name, v in verdicts.items()}


KEY_RULES = [f"KMS{n:03d}" for n in range(1, 16)]


def verdicts_via_checkov(cases: Iterable[Case], identity_cases: Iterable[IdentityCase], tmp_path: Path,
                         framework: str = "cloudformation") -> dict[str, dict[str, str]]:
    """{case name: {rule: status}} from real checkov over the cases rendered for ``framework``:
    ``cloudformation`` (one template), ``terraform`` (.tf files) or ``terraform_plan`` (plan JSON)."""
    cases = [c for c in cases if _door(framework) in c.doors]
    identity_cases = [c for c in identity_cases if _door(framework) in c.doors]
    work = Path(tmp_path) / f"checkov-{framework}"
    work.mkdir(parents=True, exist_ok=True)
    if framework == "terraform":
        names = write_tf(cases, identity_cases, work / "tf")
        target = ["-d", str(work / "tf"), "--framework", "terraform"]
    elif framework == "cloudformation":
        path, names = write_cfn(cases, identity_cases, work)
        target = ["-f", str(path), "--framework", "cloudformation"]
    elif framework == "terraform_plan":
        path, names = write_tf_plan(cases, identity_cases, work)
        target = ["-f", str(path), "--framework", "terraform_plan"]
    else:
        raise ValueError(f"unknown framework {framework}")
    (work / "kms-iac.yaml").write_text("{}\n")  # no rules config above tmp_path can leak in
    run = run_checkov(*target, "-o", "json", "--compact", "--check", "CKV_KMSIAC_*", cwd=work)
    assert run.returncode in (0, 1), f"checkov exited {run.returncode}:\n{run.stderr[-4000:]}"
    verdicts = verdicts_from_records(run.records(), names)
    # Every key has rules that always apply (KMS003, KMS011...), every identity policy KMS016:
    # a resource with no record at all was not scanned, and must not read as NOT_APPLICABLE.
    unseen = sorted(name for name, v in verdicts.items() if not v)
    assert not unseen, f"checkov reported nothing for {unseen}"
    rules_for = {c.name: KEY_RULES for c in cases} | {c.name: ["KMS016"] for c in identity_cases}
    return with_not_applicable(verdicts, rules_for)


def _door(framework: str) -> str:
    return "cloudformation" if framework == "cloudformation" else "terraform"


# --- CloudFormation and plans: rendered by the shared template renderers -----------------

def write_cfn(cases: list[Case], identity_cases: list[IdentityCase], work: Path) -> tuple[Path, dict[str, str]]:
    """The cases as one CloudFormation template (YAML, short-form intrinsics); {checkov resource: case name}."""
    from tests.rules_doors_templates import cfn_resource_names, render_cfn, to_cfn_yaml

    template = render_cfn(cases, identity_cases)
    path = work / "template.yaml"
    path.write_text(to_cfn_yaml(template))
    resources = template["Resources"]
    return path, {f"{resources[lid]['Type']}.{lid}": name
                  for lid, name in cfn_resource_names(cases, identity_cases).items()}


def write_tf_plan(cases: list[Case], identity_cases: list[IdentityCase], work: Path) -> tuple[Path, dict[str, str]]:
    """The cases as one Terraform plan (``terraform show -json``); {resource address: case name}."""
    from tests.rules_doors_templates import render_tf_plan, tf_resource_names

    path = work / "plan.json"
    path.write_text(json.dumps(render_tf_plan(cases, identity_cases), indent=2))
    return path, tf_resource_names(cases, identity_cases)
