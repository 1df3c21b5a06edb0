"""kms-iac's checkov front door, with the real checkov from its own environment: the shared
rule cases as a CloudFormation template, Terraform .tf files and a Terraform plan give the
cases' verdicts; checkov's outputs, skip comments and exit status; kms-iac's config; the
isolation of checkov's environment and what the checks import there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kms_iac.cli.checkov import CHECKS_DIR, checkov_env_dir
from kms_iac.rules.registry import all_rules
from tests.rule_cases import CASES, IDENTITY_CASES, UNOBSERVABLE, by_name
from tests.rules_doors_checkov import (
    ROOT_DIR, render_case_tf, run_checkov, verdicts_from_records, verdicts_via_checkov, write_cfn,
)

pytestmark = pytest.mark.slow

FRAMEWORKS = ["cloudformation", "terraform", "terraform_plan"]


@pytest.fixture(scope="module")
def checkov_bin() -> Path:
    """The pinned checkov's bin directory, from the same script setup runs."""
    out = subprocess.run([str(ROOT_DIR / "scripts" / "ensure_checkov.sh")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.strip().splitlines()[-1])


def _door(framework: str) -> str:
    return "cloudformation" if framework == "cloudformation" else "terraform"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_case_gives_its_verdicts(framework, tmp_path, checkov_bin) -> None:
    door = _door(framework)
    got = verdicts_via_checkov(CASES, IDENTITY_CASES, tmp_path, framework=framework)
    cases = [c for c in CASES if door in c.doors]
    wrong = {}
    for case in cases:
        want = {r: s for r, s in case.expect.items() if r not in UNOBSERVABLE.get(door, ())}
        have = {r: got[case.name].get(r) for r in want}
        if have != want:
            wrong[case.name] = {"want": want, "got": have}
    for ic in IDENTITY_CASES:
        if door in ic.doors and got[ic.name].get("KMS016") != ic.expect:
            wrong[ic.name] = {"want": ic.expect, "got": got[ic.name]}
    assert not wrong, json.dumps(wrong, indent=1)
    # A rule that does not apply is never a failure, in any case, for any rule.
    for case in cases:
        for rule, status in case.expect.items():
            if status == "NOT_APPLICABLE":
                assert got[case.name][rule] != "FAIL", (case.name, rule)


def test_outputs_carry_the_kmsiac_ids(tmp_path, checkov_bin) -> None:
    """sarif, json and junitxml, written by one checkov run, all name the CKV_KMSIAC checks."""
    cases = [by_name("compliant-baseline"), by_name("KMS001-FAIL-no-root"), by_name("KMS015-FAIL-multi-region")]
    path, _ = write_cfn(cases, [], tmp_path)
    out = tmp_path / "reports"
    run = run_checkov("-f", str(path), "--framework", "cloudformation", "--compact",
                      "-o", "cli", "-o", "json", "-o", "sarif", "-o", "junitxml", "--output-file-path", str(out),
                      cwd=tmp_path)
    assert run.returncode == 1, run.stderr  # KMS001 and KMS015 fail
    sarif = json.loads((out / "results_sarif.sarif").read_text())
    rule_ids = {r["id"] for r in sarif["runs"][0]["tool"]["driver"]["rules"]}
    result_ids = {r["ruleId"] for r in sarif["runs"][0]["results"]}
    assert {"CKV_KMSIAC_1", "CKV_KMSIAC_15"} <= result_ids <= rule_ids
    assert "CKV_KMSIAC_2" not in result_ids  # sarif lists failures only: rotation is on everywhere
    doc = json.loads((out / "results_json.json").read_text())
    failed = {(r["check_id"], r["resource"]) for r in doc["results"]["failed_checks"]}
    assert ("CKV_KMSIAC_1", "AWS::KMS::Key.KMS001FAILNoRoot") in failed
    assert ("CKV_KMSIAC_15", "AWS::KMS::Key.KMS015FAILMultiRegion") in failed
    passed = {r["check_id"] for r in doc["results"]["passed_checks"]}
    assert {f"CKV_KMSIAC_{n}" for n in (1, 2, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15)} <= passed
    suites = ET.parse(out / "results_junitxml.xml").getroot()
    cases_xml = [tc for tc in suites.iter("testcase")]
    assert any("CKV_KMSIAC_1" in (tc.get("name") or "") and tc.find("failure") is not None for tc in cases_xml)
    # checkov's CLI report shows the rule's own message for a failure.
    assert "CKV_KMSIAC_1" in run.stdout and "Key policy gives the account root access" in run.stdout


def test_checkov_skip_comments_suppress(tmp_path, checkov_bin) -> None:
    """checkov's own suppressions: `#checkov:skip=` in .tf, Metadata checkov: skip: in CloudFormation."""
    case = by_name("KMS002-FAIL-rotation-off")
    tf = tmp_path / "tf"
    tf.mkdir()
    (tf / "main.tf").write_text(render_case_tf(case, skip={"CKV_KMSIAC_2": "rotated by the HSM team"}))
    run = run_checkov("-d", str(tf), "--framework", "terraform", "-o", "json", "--check", "CKV_KMSIAC_*", cwd=tmp_path)
    records = run.records()
    skipped = [r for r in records if r["check_id"] == "CKV_KMSIAC_2"]
    assert [r["check_result"]["result"] for r in skipped] == ["SKIPPED"]
    assert skipped[0]["check_result"]["suppress_comment"] == "rotated by the HSM team"
    assert run.returncode == 0  # the only failure was skipped; everything else on the key passes

    path, _ = write_cfn([case], [], tmp_path)
    text = path.read_text().replace(
        "    Type: AWS::KMS::Key\n",
        "    Type: AWS::KMS::Key\n    Metadata:\n      checkov:\n        skip:\n"
        "          - id: CKV_KMSIAC_2\n            comment: rotated by the HSM team\n", 1)
    assert "checkov:" in text
    path.write_text(text)
    run = run_checkov("-f", str(path), "--framework", "cloudformation", "-o", "json", "--check", "CKV_KMSIAC_*",
                      cwd=tmp_path)
    skipped = [r for r in run.records() if r["check_id"] == "CKV_KMSIAC_2"]
    assert [r["check_result"]["result"] for r in skipped] == ["SKIPPED"]
    assert skipped[0]["check_result"]["suppress_comment"] == "rotated by the HSM team"
    assert run.returncode == 0


def test_kms_iac_config_applies_inside_checkov(tmp_path, checkov_bin) -> None:
    """The rules config found from checkov's working directory: thresholds, disabled rules, suppressions."""
    case = by_name("KMS007-FAIL-window-7-days")
    multi = by_name("KMS015-FAIL-multi-region")
    path, names = write_cfn([case, multi], [], tmp_path)
    (tmp_path / "kms-iac.yaml").write_text(textwrap.dedent("""\
        min_deletion_window_days: 7
        disabled: [KMS012]
        suppressions:
          - rule: KMS015
            resource: KMS015*
            reason: DR replica approved
    """))
    run = run_checkov("-f", str(path), "--framework", "cloudformation", "-o", "json", "--check", "CKV_KMSIAC_*",
                      cwd=tmp_path)
    got = verdicts_from_records(run.records(), names)
    assert got[case.name]["KMS007"] == "PASS"             # 7 days meets the configured minimum
    assert "KMS012" not in got[case.name]                 # disabled: checkov reports nothing for it
    assert got[multi.name]["KMS015"] == "SKIPPED"         # suppressed, with the reason
    assert run.returncode == 0
    (tmp_path / "kms-iac.yaml").write_text("min_deletion_window_days: -1\n")
    bad = subprocess.run([sys.executable, "-m", "kms_iac", "checkov", "-f", str(path)], capture_output=True,
                         text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT_DIR)})
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("Error: ") and "min_deletion_window_days" in bad.stderr


TF_UNRESOLVED = """
data "aws_caller_identity" "current" {}
data "aws_iam_policy_document" "key" {
  statement {
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}
variable "tags" {
  type = map(string)
}

# Own-account ARNs through data.aws_caller_identity: judged like AWS::AccountId.
resource "aws_kms_key" "via_caller_identity" {
  enable_key_rotation = true
  tags                = { tenant = "acme" }
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid = "Root", Effect = "Allow", Action = "kms:*", Resource = "*"
      Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
    }]
  })
}
resource "aws_kms_alias" "via_caller_identity" {
  name          = "alias/acme"
  target_key_id = aws_kms_key.via_caller_identity.key_id
}

# A policy from a data source, tags from a variable without a value: unknown, never a failure.
resource "aws_kms_key" "unresolved" {
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key.json
  tags                = var.tags
}
resource "aws_kms_alias" "unresolved" {
  name          = "alias/unresolved"
  target_key_id = aws_kms_key.unresolved.arn
}

# The key's own policy is replaced by an aws_kms_key_policy (that has no root statement).
resource "aws_kms_key" "replaced_policy" {
  enable_key_rotation = true
  tags                = { tenant = "acme" }
}
resource "aws_kms_key_policy" "replaced_policy" {
  key_id = aws_kms_key.replaced_policy.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{ Sid = "App", Effect = "Allow", Action = "kms:*", Resource = "*",
                   Principal = { AWS = "arn:aws:iam::111122223333:role/App" } }]
  })
}

# A key policy for a key this configuration does not manage: judged on its own.
variable "shared_key_id" {
  type    = string
  default = "1234abcd-12ab-34cd-56ef-1234567890ab"
}
resource "aws_kms_key_policy" "elsewhere" {
  key_id = var.shared_key_id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{ Sid = "Everyone", Effect = "Allow", Action = "kms:Decrypt", Resource = "*", Principal = "*" }]
  })
}
"""


def test_terraform_references_and_linked_resources(tmp_path, checkov_bin) -> None:
    tf = tmp_path / "tf"
    tf.mkdir()
    (tf / "main.tf").write_text(TF_UNRESOLVED)
    (tmp_path / "kms-iac.yaml").write_text("{}\n")
    run = run_checkov("-d", str(tf), "--framework", "terraform", "-o", "json", "--check", "CKV_KMSIAC_*",
                      cwd=tmp_path)
    names = {a: a for a in ("aws_kms_key.via_caller_identity", "aws_kms_key.unresolved",
                            "aws_kms_key.replaced_policy", "aws_kms_key_policy.elsewhere")}
    got = verdicts_from_records(run.records(), names)
    ok = got["aws_kms_key.via_caller_identity"]
    assert ok["KMS001"] == "PASS" and ok["KMS012"] == "PASS" and ok["KMS002"] == "PASS", ok
    unknown = got["aws_kms_key.unresolved"]
    for rule in ("KMS001", "KMS004", "KMS005", "KMS006", "KMS013", "KMS012"):
        assert rule not in unknown, (rule, unknown)       # UNKNOWN: checkov leaves it out
    assert unknown["KMS002"] == "PASS"                     # what is known is still judged
    replaced = got["aws_kms_key.replaced_policy"]
    assert replaced["KMS001"] == "FAIL" and replaced["KMS006"] == "FAIL"  # the aws_kms_key_policy's policy counts
    assert replaced["KMS012"] == "FAIL"                                     # no alias points at it
    elsewhere = got["aws_kms_key_policy.elsewhere"]
    assert elsewhere["KMS004"] == "FAIL" and elsewhere["KMS001"] == "FAIL" and elsewhere["KMS005"] == "PASS"
    assert set(elsewhere) == {"KMS001", "KMS004", "KMS005", "KMS006", "KMS011", "KMS013"}  # policy rules only
    assert "aws_kms_key_policy.replaced_policy" not in {r["resource"] for r in run.records()}  # judged on its key


def test_checks_are_generated_from_the_registry(checkov_bin) -> None:
    gen = subprocess.run([sys.executable, str(ROOT_DIR / "scripts" / "generate_checkov_checks.py"), "--check"],
                         capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    files = sorted(p.name for p in CHECKS_DIR.glob("ckv_kmsiac_*.py"))
    assert len(files) == len(set(files)) == len(all_rules()) == 16
    assert (CHECKS_DIR / "__init__.py").is_file()
    # checkov registers every check file under its bare name: none may shadow a module checkov's env has.
    probe = subprocess.run([str(checkov_bin / "python"), "-c", textwrap.dedent("""\
        import importlib.util, sys
        names = sys.argv[1:]
        print([n for n in names if importlib.util.find_spec(n) is not None])
        """), "_base", *(f[:-3] for f in files)], capture_output=True, text=True)
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr


def test_rules_import_only_stdlib_and_yaml_in_checkovs_env(checkov_bin) -> None:
    """What the checks import into checkov's environment: kms_iac's rules and policy packages,
    which must need nothing but the standard library and PyYAML (checkov's env has boto3,
    pydantic and much more: an accidental import would work there and break elsewhere)."""
    script = textwrap.dedent("""\
        import importlib, pkgutil, sys
        before = set(sys.modules)
        import kms_iac.rules, kms_iac.policy
        for pkg in (kms_iac.rules, kms_iac.policy):
            for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                importlib.import_module(m.name)
        from kms_iac.rules.registry import all_rules
        all_rules()
        allowed = set(sys.stdlib_module_names) | {"yaml", "_yaml", "kms_iac"}
        extra = sorted(m for m in set(sys.modules) - before if m.split(".")[0] not in allowed)
        print(extra)
        """)
    out = subprocess.run([str(checkov_bin / "python"), "-c", script], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT_DIR)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"kms_iac.rules/policy pull in: {out.stdout}"


def test_missing_checkov_env_is_one_line(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT_DIR), "KMS_IAC_CHECKOV_CACHE": str(tmp_path / "none")}
    out = subprocess.run([sys.executable, "-m", "kms_iac", "checkov", "-d", "."], capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("Error: ") and "scripts/setup.sh" in out.stderr
    assert "Traceback" not in out.stderr


def test_ensure_script_is_idempotent(checkov_bin) -> None:
    """A second run finds the environment (same directory, nothing installed, nothing said)."""
    out = subprocess.run([str(ROOT_DIR / "scripts" / "ensure_checkov.sh")], capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr == ""
    assert Path(out.stdout.strip()) == checkov_bin == checkov_env_dir() / "bin"
    assert (checkov_bin / "checkov").is_file()


def test_cloudformation_key_alone_when_its_template_is_not_found(checkov_bin, tmp_path) -> None:
    """Outside checkov's runner (another checkov version) a key is judged alone: its own
    properties decide, and its aliases (other resources) are unknown, not missing."""
    script = textwrap.dedent("""\
        import json, os, sys
        sys.path.insert(0, os.environ["CHECKS_DIR"])
        import _base
        key = {"Type": "AWS::KMS::Key", "Properties": {
            "EnableKeyRotation": True, "Tags": [{"Key": "tenant", "Value": "acme", "__startline__": 3}],
            "KeyPolicy": {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                                          "Action": "kms:*", "Resource": "*", "__file__": "t.yaml"}]}}}
        view = _base._cfn_view(key, "Key", "/t.yaml")
        out = {"aliases": view.aliases}
        for rule in ("KMS001", "KMS002", "KMS012"):
            check = _base.cloudformation_check(rule, _base.get_rule(rule).checkov_id, _base.get_rule(rule).title,
                                               "ENCRYPTION", _base.CFN_KEYS)
            out[rule] = check.verdict(view).value
        print(json.dumps(out))
        """)
    (tmp_path / "kms-iac.yaml").write_text("{}\n")
    out = subprocess.run([str(checkov_bin / "python"), "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT_DIR), "CHECKS_DIR": str(CHECKS_DIR)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"aliases": None, "KMS001": "PASSED", "KMS002": "PASSED", "KMS012": "UNKNOWN"}
