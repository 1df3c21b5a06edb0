"""The rule engine on views built straight from the shared cases: every expected verdict,
the config (thresholds, severities, suppressions) and the report formats."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET

import pytest

from kms_iac.rules.config import ConfigError, config_from_dict, load_config
from kms_iac.rules.engine import evaluate, failing
from kms_iac.rules.registry import all_rules
from kms_iac.rules.report import render, to_config
from kms_iac.rules.view import IdentityPolicyView, KeyView
from tests.rule_cases import ACCOUNT, CASES, IDENTITY_CASES, Case


def view_of(case: Case) -> KeyView:
    a = case.key_args()
    return KeyView(
        resource=case.name, source="test", account=ACCOUNT,
        key_spec=a.get("key_spec", "SYMMETRIC_DEFAULT"), key_usage=a.get("key_usage", "ENCRYPT_DECRYPT"),
        origin=a.get("origin", "AWS_KMS"), enabled=a.get("is_enabled", True), policy=a["policy"],
        rotation_enabled=a["enable_key_rotation"], rotation_period_days=a["rotation_period_in_days"],
        deletion_window_days=a["deletion_window_in_days"], pending_deletion=a.get("scheduled_for_deletion", False),
        multi_region=a.get("multi_region", False), aliases=[case.alias.format(case=case.name)] if case.alias else [],
        tags=a["tags"], bypass_lockout=a.get("bypass_policy_lockout_safety_check", False),
    )


def verdicts(view) -> dict[str, str]:
    return {f.rule: f.status for f in evaluate([view])}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_verdicts(case: Case) -> None:
    got = verdicts(view_of(case))
    assert {r: got[r] for r in case.expect} == case.expect


@pytest.mark.parametrize("case", IDENTITY_CASES, ids=lambda c: c.name)
def test_identity_case_verdicts(case) -> None:
    got = verdicts(IdentityPolicyView(case.name, "test", case.document, account=ACCOUNT))
    assert got == {"KMS016": case.expect}


def test_sixteen_rules_with_metadata() -> None:
    rules = all_rules()
    assert [r.id for r in rules] == [f"KMS{n:03d}" for n in range(1, 17)]
    for r in rules:
        assert r.title and r.rationale and r.remediation and r.severity
        assert r.checkov_id == f"CKV_KMSIAC_{int(r.id[3:])}"


def test_aws_managed_keys_are_not_applicable_to_policy_rules() -> None:
    v = KeyView("aws/s3", "live", account=ACCOUNT, key_manager="AWS", policy={"Statement": []})
    got = verdicts(v)
    for r in ("KMS001", "KMS004", "KMS005", "KMS006", "KMS012", "KMS013"):
        assert got[r] == "NOT_APPLICABLE"


def test_default_policy_when_none_given_passes_policy_rules() -> None:
    got = verdicts(KeyView("k", "test", account=ACCOUNT, policy=None, rotation_enabled=True))
    assert got["KMS001"] == got["KMS004"] == got["KMS005"] == got["KMS006"] == got["KMS013"] == "PASS"


def test_thresholds_and_severities_from_config() -> None:
    view = view_of(next(c for c in CASES if c.name == "compliant-baseline"))
    view.deletion_window_days, view.rotation_period_days = 14, 300
    strict = config_from_dict({"min-deletion-window-days": 7, "max_rotation_period_days": 180,
                               "severities": {"KMS010": "high"}})
    by = {f.rule: f for f in evaluate([view], strict)}
    assert by["KMS007"].status == "PASS" and by["KMS010"].status == "FAIL" and by["KMS010"].severity == "HIGH"
    assert failing(evaluate([view], strict), "HIGH") == [by["KMS010"]]
    assert failing(evaluate([view], strict), "CRITICAL") == []


def test_suppressions_need_a_reason_and_expire() -> None:
    view = view_of(next(c for c in CASES if c.name == "KMS015-FAIL-multi-region"))
    cfg = config_from_dict({"suppressions": [{"rule": "KMS015", "resource": "KMS015-*", "reason": "DR replica",
                                              "expires": "2030-01-01"}]})
    f = next(f for f in evaluate([view], cfg, today=dt.date(2029, 12, 31)) if f.rule == "KMS015")
    assert f.status == "FAIL" and f.suppressed == "DR replica" and not f.blocking
    f = next(f for f in evaluate([view], cfg, today=dt.date(2030, 1, 2)) if f.rule == "KMS015")
    assert f.blocking and "suppression expired on 2030-01-01" in f.message
    with pytest.raises(ConfigError, match="needs a reason"):
        config_from_dict({"suppressions": [{"rule": "KMS015", "resource": "x"}]})
    with pytest.raises(ConfigError, match="not a rule id"):
        config_from_dict({"disabled": ["KMS99"]})
    with pytest.raises(ConfigError, match="unknown setting"):
        config_from_dict({"max_rotation": 3})


def test_config_found_upward(tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.kms-iac]\ntenant_tag = "team"\ndisabled = ["KMS015"]\n')
    (tmp_path / "infra" / "deep").mkdir(parents=True)
    cfg = load_config(tmp_path / "infra" / "deep")
    assert cfg.tenant_tag == "team" and cfg.disabled == {"KMS015"} and cfg.source.endswith("pyproject.toml")
    (tmp_path / "infra" / "kms-iac.yaml").write_text("tenant_tag: owner\n")
    assert load_config(tmp_path / "infra" / "deep").tenant_tag == "owner"
    (tmp_path / "infra" / "kms-iac.yaml").write_text("tenant_tag: [1\n")
    with pytest.raises(ConfigError, match="kms-iac.yaml: not valid YAML"):
        load_config(tmp_path / "infra")


def test_report_formats_are_well_formed() -> None:
    findings = evaluate([view_of(c) for c in CASES[:6]])
    doc = json.loads(render(findings, "json"))
    assert {"rule", "resource", "status", "severity", "message"} <= set(doc["findings"][0])
    sarif = json.loads(render(findings, "sarif"))
    results = sarif["runs"][0]["results"]
    assert sarif["version"] == "2.1.0" and results and all(r["ruleId"].startswith("KMS") for r in results)
    assert len(sarif["runs"][0]["tool"]["driver"]["rules"]) == 16
    suites = ET.fromstring(render(findings, "junit").split("\n", 1)[1])
    assert int(suites.get("failures")) == sum(f.blocking for f in findings)
    config = json.loads(to_config(findings))
    names = {g["ConfigRuleName"] for g in config["ConfigRuleEvaluations"]}
    assert {"cmk-backing-key-rotation-enabled", "kms-cmk-not-scheduled-for-deletion", "kms-iac-kms001"} <= names
    ev = config["ConfigRuleEvaluations"][0]["Evaluations"][0]
    assert ev["ComplianceResourceType"] == "AWS::KMS::Key"
    assert ev["ComplianceType"] in ("COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE")
