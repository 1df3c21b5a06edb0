"""``kms-iac scan template``: the shared rule cases through CloudFormation (YAML short forms
and JSON) and Terraform plans, intrinsics and unknown values, the plan-delete gate, report
formats, exit statuses, config suppressions and bad input. The scans are the real command,
run as a subprocess; the adapter-level tests call the adapters directly."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from click.testing import CliRunner

from kms_iac.cli.main import cli
from kms_iac.rules.adapters.cloudformation import (
    TemplateError, load_template, view_from_resource, views_from_template,
)
from kms_iac.rules.adapters.terraform import PlanError, view_from_values, views_from_plan
from kms_iac.rules.config import RulesConfig, config_from_dict
from kms_iac.rules.engine import evaluate
from kms_iac.rules.view import PLACEHOLDER_ACCOUNT, IdentityPolicyView, KeyView
from tests.rule_cases import ACCOUNT, CASES, GOOD_POLICY, IDENTITY_CASES, PARTNER, by_name, policy, stmt
from tests.rules_doors_templates import (
    ScanRun, _Res, _key_res, plan_document, render_cfn, render_tf_plan, scan_template, to_cfn_yaml,
    verdicts_via_cloudformation, verdicts_via_terraform,
)

# One worker for the module under xdist's loadgroup: the three corpus scans (module fixtures)
# run once instead of once per worker.
pytestmark = pytest.mark.xdist_group("rules_templates")

POLICY_RULES = ("KMS001", "KMS004", "KMS005", "KMS006", "KMS013")
CFN_CASES = [c for c in CASES if "cloudformation" in c.doors]
TF_CASES = [c for c in CASES if "terraform" in c.doors]


# --- every shared case, through every template door ---------------------------------------

@pytest.fixture(scope="module")
def cfn_yaml_verdicts(tmp_path_factory):
    return verdicts_via_cloudformation(CASES, IDENTITY_CASES, tmp_path_factory.mktemp("cfn"))


@pytest.fixture(scope="module")
def cfn_json_literal_verdicts(tmp_path_factory):
    return verdicts_via_cloudformation(CASES, IDENTITY_CASES, tmp_path_factory.mktemp("cfn"), style="literal", fmt="json")


@pytest.fixture(scope="module")
def tf_verdicts(tmp_path_factory):
    return verdicts_via_terraform(CASES, IDENTITY_CASES, tmp_path_factory.mktemp("tf"))


def _check(verdicts: dict, case) -> None:
    got = verdicts[case.name]
    assert {r: got.get(r) for r in case.expect} == case.expect


@pytest.mark.slow
@pytest.mark.parametrize("case", CFN_CASES, ids=lambda c: c.name)
def test_case_via_cloudformation_yaml_intrinsics(cfn_yaml_verdicts, case) -> None:
    _check(cfn_yaml_verdicts, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", CFN_CASES, ids=lambda c: c.name)
def test_case_via_cloudformation_json_literal_account(cfn_json_literal_verdicts, case) -> None:
    _check(cfn_json_literal_verdicts, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", TF_CASES, ids=lambda c: c.name)
def test_case_via_terraform_plan(tf_verdicts, case) -> None:
    _check(tf_verdicts, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", IDENTITY_CASES, ids=lambda c: c.name)
def test_identity_cases_via_both(cfn_yaml_verdicts, cfn_json_literal_verdicts, tf_verdicts, case) -> None:
    for verdicts in (cfn_yaml_verdicts, cfn_json_literal_verdicts, tf_verdicts):
        assert verdicts[case.name] == {"KMS016": case.expect}


@pytest.mark.slow
def test_both_doors_agree_on_every_verdict(cfn_yaml_verdicts, cfn_json_literal_verdicts, tf_verdicts) -> None:
    """Beyond case.expect: both CloudFormation renderings and the plan give the same verdict
    for every rule on every case both doors run."""
    for case in TF_CASES:
        assert cfn_yaml_verdicts[case.name] == cfn_json_literal_verdicts[case.name] == tf_verdicts[case.name], case.name


def test_rendered_template_uses_short_forms_and_account_intrinsics() -> None:
    text = to_cfn_yaml(render_cfn(CFN_CASES, IDENTITY_CASES))
    for form in ("!Sub", "!Ref AWS::AccountId", "!GetAtt KeyAdminRole.Arn", "!Join", "!Ref AppRoleName"):
        assert form in text
    assert ACCOUNT not in text  # every own-account value goes through AWS::AccountId


# --- intrinsics -----------------------------------------------------------------------------

SHORT_FORMS = """\
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Tenant: {Type: String, Default: acme}
  Partners: {Type: CommaDelimitedList, Default: "444455556666,777788889999"}
  Unset: {Type: String}
Mappings:
  Env: {prod: {Service: s3}}
Conditions:
  IsProd: !Equals [!Ref "AWS::Region", us-east-1]
Resources:
  Admin:
    Type: AWS::IAM::Role
    Properties:
      Path: /ops/
      AssumeRolePolicyDocument: {}
  Key:
    Type: AWS::KMS::Key
    Properties:
      EnableKeyRotation: "true"
      PendingWindowInDays: "30"
      Tags:
        - {Key: tenant, Value: !Ref Tenant}
      KeyPolicy:
        Version: "2012-10-17"
        Statement:
          - Sid: Root
            Effect: Allow
            Principal: {AWS: !Join ["", ["arn:", !Ref "AWS::Partition", ":iam::", !Ref "AWS::AccountId", ":root"]]}
            Action: kms:*
            Resource: "*"
          - Sid: Admin
            Effect: Allow
            Principal: {AWS: !GetAtt Admin.Arn}
            Action: [kms:Describe*, kms:Put*]
            Resource: !GetAtt Key.Arn
          - Sid: Partner
            Effect: Allow
            Principal:
              AWS: !Sub
                - "arn:${AWS::Partition}:iam::${Acct}:root"
                - Acct: !Select [0, !Ref Partners]
            Action: kms:Decrypt
            Resource: "*"
            Condition:
              StringEquals:
                kms:ViaService: !Sub
                  - "${Svc}.${AWS::Region}.${AWS::URLSuffix}"
                  - Svc: !FindInMap [Env, prod, Service]
                kms:EncryptionContext:path: !Sub "${!aws:username}"
                kms:EncryptionContext:part: !Select [1, !Split ["/", "a/b/c"]]
  KeyAlias:
    Type: AWS::KMS::Alias
    Properties:
      AliasName: !Sub "alias/${Tenant}/data"
      TargetKeyId: !GetAtt Key.KeyId
  Unresolvable:
    Type: AWS::KMS::Key
    Properties:
      EnableKeyRotation: true
      KeyPolicy:
        Statement:
          - {Effect: Allow, Principal: {AWS: !Ref Unset}, Action: "kms:*", Resource: "*"}
  Conditional:
    Type: AWS::KMS::Key
    Properties:
      EnableKeyRotation: true
      KeyPolicy:
        Statement:
          - Effect: Allow
            Principal: {AWS: !If [IsProd, !Sub "arn:aws:iam::${AWS::AccountId}:root", !ImportValue Other]}
            Action: "kms:*"
            Resource: "*"
  Imported:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Statement: [{Effect: Allow, Action: kms:Decrypt, Resource: !ImportValue SharedKeyArn}]
"""


@pytest.fixture
def short_forms(tmp_path) -> Path:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT_FORMS)
    return path


def _views(path: Path, **config) -> dict:
    return {v.resource: v for v in views_from_template(load_template(path), str(path), config_from_dict(config))}


def test_yaml_short_forms_resolve(short_forms) -> None:
    key = _views(short_forms)["Key"]
    assert isinstance(key, KeyView)
    root, admin, partner = key.policy["Statement"]
    assert root["Principal"]["AWS"] == f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:root"
    assert admin["Principal"]["AWS"] == f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:role/ops/Admin"
    assert admin["Resource"] == f"arn:aws:kms:us-east-1:{PLACEHOLDER_ACCOUNT}:key/Key"
    assert partner["Principal"]["AWS"] == f"arn:aws:iam::{PARTNER}:root"
    assert partner["Condition"]["StringEquals"] == {
        "kms:ViaService": "s3.us-east-1.amazonaws.com", "kms:EncryptionContext:path": "${aws:username}",
        "kms:EncryptionContext:part": "b"}
    assert key.aliases == ["alias/acme/data"] and key.tags == {"tenant": "acme"}
    assert key.rotation_enabled is True and key.deletion_window_days == 30 and key.account == PLACEHOLDER_ACCOUNT
    assert not key.policy_unresolved


def test_account_from_config_flows_into_intrinsics(short_forms) -> None:
    key = _views(short_forms, account="210987654321")["Key"]
    assert key.account == "210987654321"
    assert key.policy["Statement"][0]["Principal"]["AWS"] == "arn:aws:iam::210987654321:root"


def test_unresolvable_intrinsics_are_not_applicable(short_forms) -> None:
    views = _views(short_forms)
    for name in ("Unresolvable", "Conditional"):
        assert views[name].policy_unresolved and views[name].policy is None
        by_rule = {f.rule: f for f in evaluate([views[name]])}
        for rule in POLICY_RULES:
            assert by_rule[rule].status == "NOT_APPLICABLE", (name, rule)
            assert "could not be resolved" in by_rule[rule].message
        assert by_rule["KMS002"].status == "PASS"  # what the template does say is still judged
    imported = views["Imported"]
    assert isinstance(imported, IdentityPolicyView) and imported.policy_unresolved
    assert [f.status for f in evaluate([imported])] == ["NOT_APPLICABLE"]


def test_short_forms_through_the_command(short_forms) -> None:
    run = scan_template(short_forms, "--format", "json")
    assert run.returncode == 1, run.stderr  # Unresolvable has no alias or tenant tag (KMS012)
    got = {(f["resource"], f["rule"]): f["status"] for f in run.findings}
    assert got[("Key", "KMS001")] == got[("Key", "KMS005")] == got[("Key", "KMS012")] == "PASS"
    assert got[("Unresolvable", "KMS001")] == got[("Conditional", "KMS004")] == "NOT_APPLICABLE"
    assert got[("Unresolvable", "KMS012")] == "FAIL"
    assert all(f["file"] == str(short_forms) for f in run.findings)


def test_account_inference_for_hard_coded_templates() -> None:
    """No AWS::AccountId anywhere: the key's account is the most frequent in its policy, so a
    template that hard-codes its own account is not judged against a placeholder."""
    case = by_name("KMS005-FAIL-partner-unconditioned")  # its root and a partner: one each, root first
    doc = render_cfn([case, by_name("compliant-baseline")], [], style="literal")
    views = {v.resource: v for v in views_from_template(doc, None, RulesConfig())}
    assert {v.account for v in views.values()} == {ACCOUNT}
    by_rule = {f.rule: f.status for f in evaluate([views["KMS005FAILPartnerUnconditioned"]])}
    assert by_rule["KMS001"] == "PASS" and by_rule["KMS005"] == "FAIL"
    # AWS::AccountId elsewhere in the template (a bucket name) does not make the literal policy foreign.
    doc["Resources"]["Logs"] = {"Type": "AWS::S3::Bucket", "Properties": {
        "BucketName": {"Fn::Sub": "logs-${AWS::AccountId}"}}}
    views = {v.resource: v for v in views_from_template(doc, None, RulesConfig())}
    assert views["CompliantBaseline"].account == ACCOUNT
    # The same template said to deploy elsewhere: its hard-coded root is now foreign.
    other = {v.resource: v for v in views_from_template(doc, None, config_from_dict({"account": "999988887777"}))}
    assert {f.rule: f.status for f in evaluate([other["CompliantBaseline"]])}["KMS001"] == "FAIL"


def test_key_without_policy_gets_the_default_policy_and_cfn_defaults() -> None:
    doc = {"Resources": {"K": {"Type": "AWS::KMS::Key"}}}
    (view,) = views_from_template(doc, None, RulesConfig())
    assert view.policy is None and not view.policy_unresolved
    assert (view.rotation_enabled, view.deletion_window_days, view.enabled, view.key_spec, view.multi_region) == (
        False, 30, True, "SYMMETRIC_DEFAULT", False)
    by_rule = {f.rule: f.status for f in evaluate([view])}
    assert by_rule["KMS001"] == by_rule["KMS004"] == "PASS" and by_rule["KMS002"] == "FAIL"


def test_replica_key_is_multi_region_and_shares_its_primary() -> None:
    doc = {"Resources": {
        "Primary": {"Type": "AWS::KMS::Key", "Properties": {"MultiRegion": True, "EnableKeyRotation": True,
                                                             "KeySpec": "SYMMETRIC_DEFAULT"}},
        "Replica": {"Type": "AWS::KMS::ReplicaKey", "Properties": {
            "PrimaryKeyArn": {"Fn::GetAtt": ["Primary", "Arn"]}, "KeyPolicy": GOOD_POLICY,
            "PendingWindowInDays": 7, "Tags": [{"Key": "tenant", "Value": "t"}]}},
        "ReplicaAlias": {"Type": "AWS::KMS::Alias", "Properties": {"AliasName": "alias/r",
                                                                   "TargetKeyId": {"Ref": "Replica"}}},
        "Orphan": {"Type": "AWS::KMS::ReplicaKey", "Properties": {
            "PrimaryKeyArn": "arn:aws:kms:eu-west-1:111122223333:key/mrk-1", "KeyPolicy": GOOD_POLICY}},
    }}
    views = {v.resource: v for v in views_from_template(doc, None, RulesConfig())}
    replica = views["Replica"]
    assert replica.multi_region and replica.rotation_enabled and replica.aliases == ["alias/r"]
    by_rule = {f.rule: f.status for f in evaluate([replica])}
    assert by_rule["KMS015"] == "FAIL" and by_rule["KMS007"] == "FAIL" and by_rule["KMS012"] == "PASS"
    assert {f.rule: f.status for f in evaluate([views["Orphan"]])}["KMS002"] == "NOT_APPLICABLE"


def test_view_from_resource_one_at_a_time() -> None:
    doc = render_cfn([by_name("KMS011-FAIL-bypass")], IDENTITY_CASES[:1])
    resources = doc["Resources"]
    views = {lid: view_from_resource(lid, res, doc, "t.yaml", RulesConfig()) for lid, res in resources.items()}
    assert views["KeyAdminRole"] is None and views["KMS011FAILBypassAlias"] is None
    key = views["KMS011FAILBypass"]
    assert key.bypass_lockout is True and key.aliases == ["alias/tenants/KMS011-FAIL-bypass"] and key.file == "t.yaml"
    assert isinstance(views["KMS016FAILDecryptAllKeys"], IdentityPolicyView)
    assert view_from_resource("X", {"Type": "AWS::S3::Bucket"}, doc, None, RulesConfig()) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8)
                    | st.sampled_from(["AWS::AccountId", "Key", "Role", "${AWS::Region}", "Key.Arn", "*"]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["Ref", "Fn::Sub", "Fn::GetAtt", "Fn::Join", "Fn::Select", "Fn::Split",
                                         "Fn::FindInMap", "Fn::If", "Statement", "Principal", "AWS", "Effect",
                                         "Action", "Resource", "Condition", "Key", "Value"]), inner, max_size=3),
                    max_leaves=12))
@pytest.mark.slow
def test_arbitrary_property_values_never_crash(value) -> None:
    doc = {"Parameters": {"P": {"Default": value}}, "Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": value, "Policies": value}},
        "Key": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": value, "Tags": value, "EnableKeyRotation": value,
                                                         "KeySpec": value, "PendingWindowInDays": value}},
        "Alias": {"Type": "AWS::KMS::Alias", "Properties": {"AliasName": value, "TargetKeyId": value}},
    }}
    for view in views_from_template(doc, None, RulesConfig()):
        evaluate([view])
    plan_values = {"policy": value, "tags": value, "enable_key_rotation": value, "deletion_window_in_days": value}
    for rtype in ("aws_kms_key", "aws_kms_external_key", "aws_iam_role"):
        view = view_from_values(rtype, f"{rtype}.x", {**plan_values, "inline_policy": value}, None, RulesConfig())
        if view is not None:
            evaluate([view])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5)
    | st.sampled_from(["AWS::AccountId", "AWS::NoValue", "AppRoleName", "KeyAdminRole", "KeyAdminRole.Arn", "${AWS::AccountId}"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["Ref", "Fn::Sub", "Fn::GetAtt", "Fn::Join", "Fn::Select", "Fn::If", "Type", "Properties", "Statement",
         "Principal", "AWS", "Default", "RoleName"]) | st.text(max_size=5), inner, max_size=3), max_leaves=10))
@pytest.mark.slow
def test_damaged_templates_never_crash(slot, junk) -> None:
    """Any part of a rendered template replaced by anything: views or a TemplateError."""
    doc = render_cfn([by_name(n) for n in ("compliant-baseline", "KMS001-PASS-bare-account-id", "KMS005-PASS-partner-via-service")],
                     IDENTITY_CASES[:3])
    slots = _slots(doc, [])
    container, key = slots[slot % len(slots)]
    container[key] = junk
    try:
        views = views_from_template(doc, None, RulesConfig())
    except TemplateError:
        return
    for view in views:
        evaluate([view])


# --- Terraform plans ------------------------------------------------------------------------

_PLAN_WORDS = ["planned_values", "root_module", "resources", "child_modules", "values", "address", "type", "name",
               "mode", "managed", "index", "change", "actions", "delete", "create", "before", "after",
               "after_unknown", "module_calls", "module", "expressions", "references", "policy", "key_id",
               "target_key_id", "aws_kms_key.x", "aws_kms_key", "aws_kms_alias", "format_version", "1.2", "var.r"]
_JUNK = st.recursive(st.none() | st.booleans() | st.integers() | st.sampled_from(_PLAN_WORDS) | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(_PLAN_WORDS) | st.text(max_size=5), inner, max_size=3), max_leaves=10)


def _slots(node, out) -> list:
    """Every (container, key) of a JSON document, to damage one at a time."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append((node, k))
        _slots(v, out)
    return out


def test_rendered_documents_share_nothing_with_the_next_render() -> None:
    """The damage tests above and below write into rendered documents; a render that shared a
    dict with the cases or the intrinsic forms let one random example break later tests (CI
    saw CompliantBaseline fail KMS001 after a root ``Fn::Sub`` was overwritten)."""
    for render in (lambda: render_cfn(CFN_CASES, IDENTITY_CASES), lambda: render_cfn(CFN_CASES, IDENTITY_CASES, style="literal"),
                   _damaged_plan_base):
        pristine = copy.deepcopy(render())
        damaged = render()
        for container, key in _slots(damaged, []):
            container[key] = "junk"
        assert render() == pristine


def _damaged_plan_base() -> dict:
    cases = [by_name(n) for n in ("compliant-baseline", "KMS001-FAIL-no-root", "KMS001-FAIL-root-denied",
                                  "KMS008-FAIL-disabled", "KMS002-NA-imported", "KMS001-PASS-root-in-list")]
    gone = by_name("KMS015-FAIL-multi-region")
    return plan_document([r for i, c in enumerate(cases) for r in _key_res(c, i)], deleted=_key_res(gone, 3))


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0), _JUNK)
def test_damaged_plans_never_crash(slot, junk) -> None:
    """Any part of a plan replaced by anything: views or a PlanError, never another exception."""
    plan = _damaged_plan_base()
    slots = _slots(plan, [])
    container, key = slots[slot % len(slots)]
    container[key] = junk
    try:
        views = views_from_plan(plan, "plan.json", RulesConfig())
    except PlanError:
        return
    for view in views:
        evaluate([view])


def _plan_views(plan: dict, **config) -> dict:
    return {v.resource: v for v in views_from_plan(plan, "plan.json", config_from_dict(config))}


def test_plan_that_deletes_a_key_fails_kms003(tmp_path) -> None:
    keep, gone, swap = by_name("compliant-baseline"), by_name("KMS015-FAIL-multi-region"), by_name("KMS010-FAIL-period-730")
    deleted = [r for r in _key_res(gone, 3)]  # in module.tenants: its key, alias
    replaced = [r for r in _key_res(swap, 1) if r.type == "aws_kms_key"]
    plan = plan_document(_key_res(keep, 0), deleted=deleted, replaced=replaced)
    views = _plan_views(plan)
    assert views[f"module.tenants.aws_kms_key.{gone.name}"].pending_deletion
    assert views[f"aws_kms_key.{swap.name}"].pending_deletion  # replacing a key destroys the old one
    path = tmp_path / "plan.tfplan.json"
    path.write_text(json.dumps(plan))
    run = scan_template(path, "--format", "json")
    assert run.returncode == 1
    kms003 = {f["resource"]: f for f in run.findings if f["rule"] == "KMS003"}
    assert kms003[f"aws_kms_key.{keep.name}"]["status"] == "PASS"
    for address in (f"module.tenants.aws_kms_key.{gone.name}", f"aws_kms_key.{swap.name}"):
        assert kms003[address]["status"] == "FAIL"
        assert kms003[address]["message"] == "key would be deleted by this change"
        assert kms003[address]["severity"] == "HIGH"
    # The deletion is intended: a suppression with a reason lets the pipeline through.
    (tmp_path / "kms-iac.yaml").write_text(
        "suppressions:\n"
        f"  - {{rule: KMS003, resource: 'module.tenants.*', reason: 'tenant offboarded, ticket OPS-7'}}\n"
        f"  - {{rule: '*', resource: 'aws_kms_key.{swap.name}', reason: 'spec change approved'}}\n"
        f"  - {{rule: KMS015, resource: '*', reason: 'DR replicas'}}\n")
    run = scan_template(path, "--format", "json")
    assert run.returncode == 0, run.stdout
    suppressed = {f["resource"]: f["suppressed"] for f in run.findings if f["rule"] == "KMS003" and f["status"] == "FAIL"}
    assert suppressed == {f"module.tenants.aws_kms_key.{gone.name}": "tenant offboarded, ticket OPS-7",
                          f"aws_kms_key.{swap.name}": "spec change approved"}


def test_unknown_plan_values_are_unresolved_not_crashes() -> None:
    case = by_name("compliant-baseline")
    resources = _key_res(case, 1)
    key = resources[0]
    from tests import rules_doors_templates as helper
    key.values["policy"] = helper.UNKNOWN  # rendered from a data source read only at apply
    key.values["enable_key_rotation"] = helper.UNKNOWN
    key.exprs["policy"] = {"references": ["data.aws_iam_policy_document.key.json", "data.aws_iam_policy_document.key"]}
    view = _plan_views(plan_document(resources))[f"aws_kms_key.{case.name}"]
    assert view.policy_unresolved and view.rotation_enabled is None
    by_rule = {f.rule: f.status for f in evaluate([view])}
    assert all(by_rule[r] == "NOT_APPLICABLE" for r in POLICY_RULES)
    assert by_rule["KMS002"] == "NOT_APPLICABLE" and by_rule["KMS012"] == "PASS"
    # Without a policy in the configuration, the unknown policy is AWS's default one.
    del key.exprs["policy"]
    view = _plan_views(plan_document(resources))[f"aws_kms_key.{case.name}"]
    assert view.policy is None and not view.policy_unresolved
    assert {f.rule: f.status for f in evaluate([view])}["KMS001"] == "PASS"


def test_plan_account_sources() -> None:
    case = by_name("KMS005-FAIL-partner-unconditioned")
    with_caller = _plan_views(plan_document(_key_res(case, 0)))
    assert {v.account for v in with_caller.values()} == {ACCOUNT}
    inferred = _plan_views(plan_document(_key_res(case, 0), account=None))  # no data.aws_caller_identity
    assert {v.account for v in inferred.values()} == {ACCOUNT}
    told = _plan_views(plan_document(_key_res(case, 0)), account="999988887777")
    assert {v.account for v in told.values()} == {"999988887777"}
    # An existing key's ARN says its account and Region.
    plan = plan_document(_key_res(case, 0), account=None)
    key, change = plan["planned_values"]["root_module"]["resources"][0], plan["resource_changes"][0]
    arn = f"arn:aws:kms:eu-west-1:{PARTNER}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    key["values"]["arn"] = change["change"]["after"]["arn"] = arn
    del change["change"]["after_unknown"]["arn"]
    view = _plan_views(plan)[key["address"]]
    assert (view.account, view.region) == (PARTNER, "eu-west-1")


def test_plan_links_key_policy_grants_and_replicas() -> None:
    plan = render_tf_plan(TF_CASES, [])
    views = _plan_views(plan)
    base = views["aws_kms_key.compliant-baseline"]
    assert base.grants == [{"Name": "compliant-baseline-app", "GranteePrincipal": f"arn:aws:iam::{ACCOUNT}:role/App",
                            "Operations": ["Decrypt", "Encrypt"]}]
    # Some keys get their policy from an aws_kms_key_policy, linked by the configuration's references.
    separate = [r for r in plan["resource_changes"] if r["type"] == "aws_kms_key_policy"]
    assert separate
    for rc in separate:
        key_address = rc["address"].replace("aws_kms_key_policy", "aws_kms_key")
        key_view = views.get(key_address) or views[key_address + "[0]"]
        assert key_view.policy == json.loads(rc["change"]["after"]["policy"])
    replica = {
        "bypass_policy_lockout_safety_check": False, "deletion_window_in_days": 30, "description": "dr",
        "enabled": True, "policy": json.dumps(GOOD_POLICY), "tags": {"tenant": "dr"}, "tags_all": {"tenant": "dr"}}
    extra = plan_document([*_key_res(by_name("compliant-baseline"), 0),
                           _Res("aws_kms_replica_key", "dr", replica, {"primary_key_arn": {
                               "references": ["aws_kms_key.compliant-baseline.arn", "aws_kms_key.compliant-baseline"]}})])
    dr = _plan_views(extra)["aws_kms_replica_key.dr"]
    assert dr.multi_region and dr.rotation_enabled is True and dr.rotation_period_days == 365


def test_external_key_material_expiry_from_plan() -> None:
    values = {"bypass_policy_lockout_safety_check": False, "deletion_window_in_days": 30, "enabled": True,
              "key_spec": "SYMMETRIC_DEFAULT", "multi_region": False, "policy": json.dumps(GOOD_POLICY),
              "tags": {"tenant": "t"}, "valid_to": "2030-01-01T00:00:00Z"}
    view = view_from_values("aws_kms_external_key", "aws_kms_external_key.k", values, None, RulesConfig(),
                            aliases=["alias/k"])
    by = {f.rule: f for f in evaluate([view])}
    assert by["KMS009"].status == "FAIL" and "2030-01-01" in by["KMS009"].message
    assert by["KMS002"].status == "NOT_APPLICABLE" and by["KMS012"].status == "PASS"


def test_view_from_values_as_checkov_gives_them() -> None:
    """checkov's HCL values wrap scalars in one-element lists; a key policy resource overrides."""
    values = {"enable_key_rotation": [True], "deletion_window_in_days": [7], "tags": [{"tenant": "a"}],
              "policy": ["${data.aws_iam_policy_document.k.json}"]}
    view = view_from_values("aws_kms_key", "aws_kms_key.k", values, "main.tf", RulesConfig())
    assert view.rotation_enabled and view.deletion_window_days == 7 and view.tags == {"tenant": "a"}
    assert view.policy_unresolved
    override = policy(stmt("Partner", {"AWS": f"arn:aws:iam::{PARTNER}:root"}, "kms:Decrypt"))
    view = view_from_values("aws_kms_key", "aws_kms_key.k", values, "main.tf", RulesConfig(),
                            policy_override=json.dumps(override))
    assert view.policy == override and not view.policy_unresolved and view.account == PARTNER
    assert view_from_values("aws_kms_alias", "aws_kms_alias.a", {"name": "alias/a"}, None, RulesConfig()) is None


def test_plan_format_checks() -> None:
    with pytest.raises(PlanError, match="format_version 2.0 is not supported"):
        views_from_plan({"format_version": "2.0", "planned_values": {}}, "p.json", RulesConfig())
    with pytest.raises(PlanError, match="not a Terraform plan"):
        views_from_plan({"Resources": {}}, "p.json", RulesConfig())
    assert views_from_plan({"format_version": "1.2", "planned_values": {}, "resource_changes": []}, "p", RulesConfig()) == []


# --- the command: formats, exit statuses, config -------------------------------------------

@pytest.fixture
def mixed(tmp_path) -> Path:
    """A directory with one template, one plan, and files the scan must skip."""
    infra = tmp_path / "infra"
    (infra / "cfn").mkdir(parents=True)
    (infra / "tf").mkdir()
    (infra / ".terraform").mkdir()
    good, bad = by_name("compliant-baseline"), by_name("KMS002-FAIL-rotation-off")
    (infra / "cfn" / "keys.template").write_text(to_cfn_yaml(render_cfn([good, bad], [])))
    (infra / "tf" / "keys.tfplan.json").write_text(json.dumps(render_tf_plan([by_name("KMS007-FAIL-window-7-days")], [])))
    (infra / "package.json").write_text('{"name": "not-iac"}')
    (infra / "values.yaml").write_text("replicas: {{ .Values.n }}\n")  # a Helm file: not YAML, not IaC
    (infra / ".terraform" / "broken.json").write_text("{")
    (infra / "notes.txt").write_text("AWS::KMS::Key")
    return infra


def cli_scan(*args) -> ScanRun:
    """``kms-iac scan template ARGS`` in-process (click's runner): the same command as the
    subprocess, without an interpreter start per call. An exception other than the exit is
    raised: the user would have seen a traceback."""
    result = CliRunner().invoke(cli, ["scan", "template", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return ScanRun(result.exit_code, result.stdout, result.stderr)


def _one_error_line(run) -> str:
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in run.stderr, run.stderr
    return lines[0]


def test_directory_scan_text_and_show_passed(mixed) -> None:
    run = cli_scan(mixed)
    assert run.returncode == 1, run.stderr
    assert "KMS002FAILRotationOff" in run.stdout and "aws_kms_key.KMS007-FAIL-window-7-days" in run.stdout
    assert "CompliantBaseline" in run.stdout and "compliant" in run.stdout and "PASS" not in run.stdout
    assert "3 resource(s)" in run.stdout
    shown = cli_scan(mixed, "--show-passed")
    assert "PASS" in shown.stdout and "NOT_APPLICABLE" in shown.stdout


def test_sarif_and_junit(mixed, tmp_path) -> None:
    run = cli_scan(mixed, "--format", "sarif")
    sarif = json.loads(run.stdout)
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"KMS002", "KMS007"}
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert uris == {str(mixed / "cfn" / "keys.template"), str(mixed / "tf" / "keys.tfplan.json")}
    out = tmp_path / "report.xml"
    run = cli_scan(mixed, "--format", "junit", "-o", out)
    assert run.returncode == 1 and run.stdout == ""
    suites = ET.fromstring(out.read_text().split("\n", 1)[1])
    assert suites.get("failures") == "2"
    failed = [tc.get("name") for tc in suites.iter("testcase") if tc.find("failure") is not None]
    assert sorted(failed) == ["KMS002 KMS002FAILRotationOff", "KMS007 aws_kms_key.KMS007-FAIL-window-7-days"]


def test_exit_statuses_and_fail_on(mixed, tmp_path) -> None:
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(render_cfn([by_name("compliant-baseline")], IDENTITY_CASES[2:])))
    assert scan_template(clean).returncode == 0
    assert scan_template(mixed, "--fail-on", "LOW").returncode == 1
    assert cli_scan(mixed, "--fail-on", "medium").returncode == 1  # KMS002 is MEDIUM
    assert cli_scan(mixed, "--fail-on", "HIGH").returncode == 0
    (tmp_path / "sev.yaml").write_text("severities: {KMS002: CRITICAL}\n")
    assert cli_scan(mixed, "--fail-on", "CRITICAL", "--config", tmp_path / "sev.yaml").returncode == 1


def test_config_found_upward_with_suppressions(mixed) -> None:
    (mixed.parent / "kms-iac.yaml").write_text(
        "min_deletion_window_days: 7\n"
        "suppressions:\n"
        "  - rule: KMS002\n    resource: KMS002*\n    reason: rotation handled by the HSM team\n    expires: 2999-01-01\n")
    run = cli_scan(mixed / "cfn", mixed / "tf", "--format", "json")
    assert run.returncode == 0, run.stdout
    by = {(f["resource"], f["rule"]): f for f in run.findings}
    assert by[("KMS002FAILRotationOff", "KMS002")]["suppressed"] == "rotation handled by the HSM team"
    assert by[("aws_kms_key.KMS007-FAIL-window-7-days", "KMS007")]["status"] == "PASS"
    twice = cli_scan(mixed / "cfn", mixed / "cfn" / "keys.template", "--format", "json")
    assert len(twice.findings) == 2 * 15  # two keys, fifteen key rules each: the file is scanned once
    text = cli_scan(mixed / "cfn", "--show-passed")
    assert "(suppressed)" in text.stdout
    (mixed.parent / "kms-iac.yaml").write_text("suppressions:\n  - {rule: KMS002, resource: x}\n")
    assert "needs a reason" in _one_error_line(cli_scan(mixed))


BAD_INPUTS = {
    "missing": (None, "no such file or directory"),
    "bad.json": ('{"Resources": {', "not valid JSON"),
    "bad.yaml": ("Resources:\n  K: [1\n", "not valid YAML at line"),
    "neither.json": ('{"name": "x"}', "neither a CloudFormation template"),
    "empty.yaml": ("", "empty file"),
    "list.yaml": ("- 1\n- 2\n", "top level must be a mapping"),
    "binary.json": (b"\xff\xfe\x00{", "not UTF-8"),
    "resources.json": ('{"AWSTemplateFormatVersion": "2010-09-09", "Resources": [1]}', "Resources must be a mapping"),
    "plan2.json": ('{"format_version": "2.0", "planned_values": {}}', "format_version 2.0 is not supported"),
    "dup.yaml": ("Resources:\n  K: {Type: AWS::KMS::Key}\n  K: {Type: AWS::KMS::Key}\n", "not valid YAML"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_inputs_are_one_error_line(tmp_path, name) -> None:
    content, message = BAD_INPUTS[name]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    line = _one_error_line(cli_scan(path))
    assert message in line and str(path) in line


def test_bad_invocations(tmp_path, mixed) -> None:
    assert "at least one" in _one_error_line(scan_template())
    (tmp_path / "empty").mkdir()
    assert "nothing to scan" in _one_error_line(cli_scan(tmp_path / "empty"))
    (mixed / "cfn" / "broken.yaml").write_text("AWSTemplateFormatVersion: '2010-09-09'\nResources: [\n")
    assert "broken.yaml: not valid YAML" in _one_error_line(cli_scan(mixed))  # a broken template is not skipped
    assert "cannot write" in _one_error_line(cli_scan(mixed / "tf", "-o", tmp_path / "no" / "dir" / "r.txt"))
    assert "cannot read" in _one_error_line(cli_scan(mixed / "tf", "--config", tmp_path / "none.yaml"))


def test_templates_without_keys_scan_clean(tmp_path) -> None:
    path = tmp_path / "bucket.yaml"
    path.write_text("AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  B: {Type: AWS::S3::Bucket}\n")
    run = cli_scan(path, "--format", "json")
    assert (run.returncode, run.findings) == (0, [])


def test_load_template_errors_are_typed(tmp_path) -> None:
    with pytest.raises(TemplateError, match="no such file"):
        load_template(tmp_path / "nope.yaml")
    with pytest.raises(TemplateError, match="is a directory"):
        load_template(tmp_path)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(TemplateError, match="nested too deeply|top level"):
        load_template(deep)
    flow = tmp_path / "flow.yaml"  # YAML in flow style starts like JSON
    flow.write_text("{Resources: {K: {Type: AWS::KMS::Key, Properties: {KeyPolicy: {Statement: []}, "
                    "Tags: [{Key: tenant, Value: !Ref AWS::StackName}]}}}}")
    (key,) = views_from_template(load_template(flow), None, RulesConfig())
    assert key.policy == {"Statement": []} and key.tags == {"tenant": "{Ref: AWS::StackName}"}
    doc = copy.deepcopy(render_cfn(CFN_CASES, IDENTITY_CASES))
    path = tmp_path / "t.yaml"
    path.write_text(to_cfn_yaml(doc))
    assert "&id" not in path.read_text()
    # The YAML short forms decode to what the JSON long forms say (cfn-lint writes GetAtt as a list).
    assert views_from_template(load_template(path), None, RulesConfig()) == views_from_template(doc, None, RulesConfig())
