"""The template front door of the rules, as a test helper: the shared rule cases rendered
as a CloudFormation template and as a Terraform plan (the JSON of ``terraform show -json``),
the way those tools really write them, and scanned with the real ``kms-iac scan template``.

CloudFormation: every own-account ARN goes through ``AWS::AccountId`` (``!Sub`` for the
root, ``Fn::Join`` with ``AWS::Partition``, ``!GetAtt KeyAdminRole.Arn`` for the
administrator, a ``!Sub`` list with a parameter default for the application role, ``!Ref
AWS::AccountId`` for a bare account id), so the verdicts hold for whatever account the
template is deployed in; ``style="literal"`` hard-codes the account instead (the scanner
then infers it from the policies).

Terraform: policies are JSON strings rendered from ``data.aws_caller_identity`` (so the
plan holds the literal account, and the data source's value in ``prior_state``); some keys
get their policy from an ``aws_kms_key_policy``, some live in a child module, one is
created with ``count``, one has a grant; aliases point at keys whose ids are unknown until
apply, so only the configuration's references link them, as in a real plan.

``verdicts_via_cloudformation`` / ``verdicts_via_terraform`` are what the four-door
agreement test calls.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from tests.helpers import ScanRun
from tests.rule_cases import ACCOUNT, ADMIN, ROOT, USER, Case, IdentityCase

ROOT_DIR = Path(__file__).resolve().parents[1]
SCAN_TIMEOUT = 300  # a hang guard for the subprocess, not a speed expectation
REGION = "us-east-1"
PROVIDER = "registry.terraform.io/hashicorp/aws"

# The key arguments these renderers know; any other argument in a case is a bug here.
CFN_KEY_PROPS = {"description": "Description", "enable_key_rotation": "EnableKeyRotation",
                 "rotation_period_in_days": "RotationPeriodInDays", "deletion_window_in_days": "PendingWindowInDays",
                 "key_spec": "KeySpec", "key_usage": "KeyUsage", "origin": "Origin", "multi_region": "MultiRegion",
                 "is_enabled": "Enabled", "bypass_policy_lockout_safety_check": "BypassPolicyLockoutSafetyCheck"}
KNOWN_ARGS = set(CFN_KEY_PROPS) | {"policy", "tags", "valid_to"}


# --- scanning ----------------------------------------------------------------------------



def scan_template(*args: str, cwd: Path | None = None) -> ScanRun:
    """``kms-iac scan template ARGS`` as a real subprocess."""
    proc = subprocess.run([sys.executable, "-m", "kms_iac", "scan", "template", *map(str, args)],
                          capture_output=True, text=True, timeout=SCAN_TIMEOUT, cwd=cwd or ROOT_DIR,
                          env={**os.environ, "PYTHONPATH": str(ROOT_DIR)})
    return ScanRun(proc.returncode, proc.stdout, proc.stderr)


def verdicts_from(findings: Iterable[dict], names: dict[str, str]) -> dict[str, dict[str, str]]:
    """{case name: {rule: status}} for the resources named in ``names`` (resource -> case name)."""
    out: dict[str, dict[str, str]] = {}
    for f in findings:
        name = names.get(f["resource"])
        if name is not None:
            assert f["rule"] not in out.get(name, {}), f"{f['resource']}: {f['rule']} reported twice"
            out.setdefault(name, {})[f["rule"]] = f["status"]
    missing = set(names.values()) - set(out)
    assert not missing, f"the scan reported nothing for {sorted(missing)}"
    return out


def _scan_cases(path: Path, names: dict[str, str]) -> dict[str, dict[str, str]]:
    # An empty config next to the file: no kms-iac.yaml or pyproject above tmp_path can leak in.
    (path.parent / "kms-iac.yaml").write_text("{}\n")
    run = scan_template(path, "--format", "json")
    assert run.returncode in (0, 1), f"scan exited {run.returncode}: {run.stderr}"
    return verdicts_from(run.findings, names)


def _door(items: Iterable, door: str) -> list:
    return [c for c in items if door in c.doors]


def verdicts_via_cloudformation(cases: Iterable[Case], identity_cases: Iterable[IdentityCase], tmp_path: Path,
                                style: str = "intrinsic", fmt: str = "yaml") -> dict[str, dict[str, str]]:
    """{case name: {rule: status}} from ``kms-iac scan template`` over the cases as one template
    (YAML with short-form intrinsics, or JSON with ``fmt="json"``)."""
    cases, identity_cases = _door(cases, "cloudformation"), _door(identity_cases, "cloudformation")
    template = render_cfn(cases, identity_cases, style=style)
    work = Path(tmp_path) / f"cfn-{style}-{fmt}"
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"kms.{fmt}"
    path.write_text(to_cfn_yaml(template) if fmt == "yaml" else json.dumps(template, indent=2))
    return _scan_cases(path, cfn_resource_names(cases, identity_cases))


def verdicts_via_terraform(cases: Iterable[Case], identity_cases: Iterable[IdentityCase],
                           tmp_path: Path) -> dict[str, dict[str, str]]:
    """{case name: {rule: status}} from ``kms-iac scan template`` over the cases as one plan."""
    cases, identity_cases = _door(cases, "terraform"), _door(identity_cases, "terraform")
    work = Path(tmp_path) / "tf-plan"
    work.mkdir(parents=True, exist_ok=True)
    path = work / "kms.tfplan.json"
    path.write_text(json.dumps(render_tf_plan(cases, identity_cases), indent=2))
    return _scan_cases(path, tf_resource_names(cases, identity_cases))


# --- CloudFormation ------------------------------------------------------------------------

def cfn_logical_id(name: str) -> str:
    """A case name as a CloudFormation logical id (alphanumeric): KMS001-PASS-root-in-list -> KMS001PASSRootInList."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def cfn_resource_names(cases: Iterable[Case], identity_cases: Iterable[IdentityCase]) -> dict[str, str]:
    """{logical id: case name} of the resources :func:`render_cfn` writes for the cases."""
    return {cfn_logical_id(c.name): c.name for c in [*cases, *identity_cases]}


_ROOT_FORMS = [
    {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"},
    {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]},
    {"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:root"},
]


def _intrinsic(value: Any, variant: int) -> Any:
    """A literal policy value as a template writes it: own-account values through AWS::AccountId."""
    if isinstance(value, dict):
        return {k: _intrinsic(v, variant) for k, v in value.items()}
    if isinstance(value, list):
        return [_intrinsic(v, variant) for v in value]
    if not isinstance(value, str):
        return value
    if value == ROOT:
        return _ROOT_FORMS[variant % len(_ROOT_FORMS)]
    if value == ACCOUNT:
        return {"Ref": "AWS::AccountId"}
    if value == ADMIN:
        return {"Fn::GetAtt": ["KeyAdminRole", "Arn"]} if variant % 2 else {"Fn::GetAtt": "KeyAdminRole.Arn"}
    if value == USER:
        return {"Fn::Sub": ["arn:aws:iam::${Acct}:role/${Name}",
                            {"Acct": {"Ref": "AWS::AccountId"}, "Name": {"Ref": "AppRoleName"}}]}
    if ACCOUNT in value or REGION in value:
        text = value.replace("${", "${!").replace(ACCOUNT, "${AWS::AccountId}").replace(REGION, "${AWS::Region}")
        return {"Fn::Sub": text}
    return value


def _check_args(case: Case) -> dict:
    a = case.key_args()
    unknown = set(a) - KNOWN_ARGS
    if unknown:
        raise ValueError(f"{case.name}: no template property for {sorted(unknown)}")
    return a


def render_cfn(cases: Iterable[Case], identity_cases: Iterable[IdentityCase], style: str = "intrinsic") -> dict:
    """One CloudFormation template with every case's key (and alias) and identity policy.

    ``style="intrinsic"`` writes own-account values through ``AWS::AccountId`` (several
    forms); ``"literal"`` keeps the hard-coded account of the cases.
    """
    if style not in ("intrinsic", "literal"):
        raise ValueError(f"unknown style {style}")
    intrinsic = style == "intrinsic"
    resources: dict[str, Any] = {}
    if intrinsic:
        resources["KeyAdminRole"] = {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": "KeyAdmin",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": {"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:root"}},
                "Action": "sts:AssumeRole"}]}}}
    for i, case in enumerate(cases):
        a = _check_args(case)
        lid = cfn_logical_id(case.name)
        props: dict[str, Any] = {}
        for arg, prop in CFN_KEY_PROPS.items():
            value = a.get(arg)
            if value is None:
                continue
            # Leave CloudFormation's defaults out of every other key: the adapter must know them.
            if i % 2 == 0 and (arg, value) in (("enable_key_rotation", False), ("deletion_window_in_days", 30),
                                               ("is_enabled", True), ("multi_region", False)):
                continue
            props[prop] = value
        if a.get("policy") is not None:
            props["KeyPolicy"] = _intrinsic(a["policy"], i) if intrinsic else a["policy"]
        if a.get("tags"):
            props["Tags"] = [{"Key": k, "Value": v} for k, v in a["tags"].items()]
        if a.get("valid_to") is not None:
            raise ValueError(f"{case.name}: CloudFormation cannot import key material (valid_to)")
        resources[lid] = {"Type": "AWS::KMS::Key", "Properties": props}
        if case.alias:
            target = {"Ref": lid} if i % 2 == 0 else {"Fn::GetAtt": [lid, "Arn"]}
            resources[f"{lid}Alias"] = {"Type": "AWS::KMS::Alias", "Properties": {
                "AliasName": case.alias.format(case=case.name), "TargetKeyId": target}}
    for i, ic in enumerate(identity_cases):
        lid = cfn_logical_id(ic.name)
        doc = _intrinsic(ic.document, i) if intrinsic else ic.document
        kind = i % 3
        if kind == 0:
            resources[lid] = {"Type": "AWS::IAM::ManagedPolicy", "Properties": {"PolicyDocument": doc}}
        elif kind == 1:
            resources[lid] = {"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
                "Policies": [{"PolicyName": "kms", "PolicyDocument": doc}]}}
        else:
            resources[lid] = {"Type": "AWS::IAM::Policy", "Properties": {
                "PolicyName": ic.name, "PolicyDocument": doc,
                "Roles": [{"Ref": "KeyAdminRole"}] if intrinsic else ["KeyAdmin"]}}
    template: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09",
                                "Description": "kms-iac rule cases (tests/rule_cases.py)"}
    if intrinsic:
        template["Parameters"] = {"AppRoleName": {"Type": "String", "Default": "App"}}
    template["Resources"] = resources
    # A fresh tree: tests damage rendered templates in place, and the intrinsic forms above
    # (and the cases' own values) must not change under the next test.
    return copy.deepcopy(template)


class _ShortFormDumper(yaml.SafeDumper):
    """Writes intrinsics in YAML's short forms (``!Ref``, ``!Sub``, ``!GetAtt A.B``...)."""

    def ignore_aliases(self, data) -> bool:
        return True  # no &anchors / *aliases: CloudFormation does not take them

    def choose_scalar_style(self):
        # PyYAML quotes every explicitly tagged scalar; people write `!Ref AWS::AccountId` plain.
        if self.analysis is None:
            self.analysis = self.analyze_scalar(self.event.value)
        if ((self.event.tag or "").startswith("!") and not self.event.style and not self.flow_level
                and not self.analysis.empty and not self.analysis.multiline and self.analysis.allow_block_plain):
            return ""
        return super().choose_scalar_style()


def _represent_dict(dumper: yaml.SafeDumper, data: dict):
    if len(data) == 1:
        (name, arg), = data.items()
        if name == "Ref":
            return dumper.represent_scalar("!Ref", arg)
        if name == "Fn::GetAtt":
            return dumper.represent_scalar("!GetAtt", arg if isinstance(arg, str) else ".".join(arg))
        if isinstance(name, str) and name.startswith("Fn::"):
            tag = "!" + name[4:]
            if isinstance(arg, list):
                return dumper.represent_sequence(tag, arg, flow_style=False)
            if isinstance(arg, dict):
                return dumper.represent_mapping(tag, arg)
            return dumper.represent_scalar(tag, str(arg))
    return dumper.represent_dict(data)


_ShortFormDumper.add_representer(dict, _represent_dict)


def to_cfn_yaml(template: dict) -> str:
    """The template as YAML with short-form intrinsics, as people write CloudFormation."""
    return yaml.dump(template, Dumper=_ShortFormDumper, sort_keys=False, width=120)


# --- Terraform plan ---------------------------------------------------------------------

TF_KEY_ATTRS = {"description": "description", "enable_key_rotation": "enable_key_rotation",
                "rotation_period_in_days": "rotation_period_in_days",
                "deletion_window_in_days": "deletion_window_in_days", "key_spec": "customer_master_key_spec",
                "key_usage": "key_usage", "is_enabled": "is_enabled", "multi_region": "multi_region",
                "bypass_policy_lockout_safety_check": "bypass_policy_lockout_safety_check"}
TF_EXTERNAL_ATTRS = {"description": "description", "deletion_window_in_days": "deletion_window_in_days",
                     "is_enabled": "enabled", "multi_region": "multi_region", "valid_to": "valid_to",
                     "bypass_policy_lockout_safety_check": "bypass_policy_lockout_safety_check"}
# Every attribute of the schema, with its value when the configuration does not set it
# (UNKNOWN: optional+computed, known only after apply).
UNKNOWN = object()
TF_KEY_SCHEMA = {"arn": UNKNOWN, "bypass_policy_lockout_safety_check": False, "custom_key_store_id": None,
                 "customer_master_key_spec": "SYMMETRIC_DEFAULT", "deletion_window_in_days": None,
                 "description": UNKNOWN, "enable_key_rotation": False, "id": UNKNOWN, "is_enabled": True,
                 "key_id": UNKNOWN, "key_usage": "ENCRYPT_DECRYPT", "multi_region": UNKNOWN, "policy": UNKNOWN,
                 "rotation_period_in_days": UNKNOWN, "tags": None, "tags_all": UNKNOWN, "timeouts": None,
                 "xks_key_id": None}
TF_EXTERNAL_SCHEMA = {"arn": UNKNOWN, "bypass_policy_lockout_safety_check": False, "deletion_window_in_days": None,
                      "description": None, "enabled": UNKNOWN, "expiration_model": UNKNOWN, "id": UNKNOWN,
                      "key_material_base64": None, "key_spec": "SYMMETRIC_DEFAULT", "key_state": UNKNOWN,
                      "key_usage": UNKNOWN, "multi_region": UNKNOWN, "policy": UNKNOWN, "tags": None,
                      "tags_all": UNKNOWN, "valid_to": None}


@dataclass
class _Res:
    """One planned resource instance and its configuration block."""

    type: str
    name: str
    values: dict
    exprs: dict
    module: str = ""            # "" or a module call name
    index: int | None = None

    @property
    def address(self) -> str:
        idx = f"[{self.index}]" if self.index is not None else ""
        return (f"module.{self.module}." if self.module else "") + f"{self.type}.{self.name}{idx}"


def _tf_layout(i: int) -> tuple[str, bool, bool]:
    """(module, counted?, policy via aws_kms_key_policy?) for the i-th key case."""
    return ("tenants" if i % 4 == 3 else "", i % 7 == 5, i % 5 == 2)


def tf_key_type(case: Case) -> str:
    return "aws_kms_external_key" if case.key_args().get("origin") == "EXTERNAL" else "aws_kms_key"


_IDENTITY_TYPES = ["aws_iam_policy", "aws_iam_role_policy", "aws_iam_role", "aws_iam_user_policy", "aws_iam_group_policy"]


def tf_resource_names(cases: Iterable[Case], identity_cases: Iterable[IdentityCase]) -> dict[str, str]:
    """{resource address: case name} of the resources :func:`render_tf_plan` writes."""
    names = {}
    for i, case in enumerate(cases):
        module, counted, _ = _tf_layout(i)
        names[_Res(tf_key_type(case), case.name, {}, {}, module, 0 if counted else None).address] = case.name
    for i, ic in enumerate(identity_cases):
        names[f"{_IDENTITY_TYPES[i % len(_IDENTITY_TYPES)]}.{ic.name}"] = ic.name
    return names


def _policy_json(doc: dict) -> str:
    """A policy as Terraform's jsonencode() writes it: compact, keys sorted."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def _caller_refs() -> dict:
    return {"references": ["data.aws_caller_identity.current.account_id", "data.aws_caller_identity.current"]}


def _key_res(case: Case, i: int) -> list[_Res]:
    a = _check_args(case)
    module, counted, separate_policy = _tf_layout(i)
    rtype = tf_key_type(case)
    attrs, schema = (TF_EXTERNAL_ATTRS, TF_EXTERNAL_SCHEMA) if rtype == "aws_kms_external_key" else (TF_KEY_ATTRS, TF_KEY_SCHEMA)
    # An imported-material key has no rotation arguments; "rotation off" is what it has anyway.
    unknown_args = ({k for k in a if a.get(k) not in (None, False)} - set(attrs) - {"policy", "tags", "origin"})
    if unknown_args:
        raise ValueError(f"{case.name}: no {rtype} argument for {sorted(unknown_args)}")
    values = dict(schema)
    exprs: dict[str, Any] = {}
    for arg, attr in attrs.items():
        if a.get(arg) is not None:
            values[attr] = a[arg]
            exprs[attr] = {"constant_value": a[arg]}
    if a.get("tags"):
        values["tags"] = dict(a["tags"])
        exprs["tags"] = {"constant_value": dict(a["tags"])}
    values["tags_all"] = dict(a.get("tags") or {})
    if rtype == "aws_kms_external_key" and values["enabled"] is UNKNOWN:
        values["enabled"] = True
    if values.get("multi_region") is UNKNOWN and i % 2:
        values["multi_region"] = False  # set explicitly to its default on every other key
        exprs["multi_region"] = {"constant_value": False}
    key = _Res(rtype, case.name, values, exprs, module, 0 if counted else None)
    out = [key]
    if counted:
        exprs["count"] = {"constant_value": 1}
    ref_name = f"{rtype}.{case.name}"
    policy = a.get("policy")
    if policy is not None and not separate_policy:
        values["policy"] = _policy_json(policy)
        exprs["policy"] = _caller_refs()
    elif policy is not None:
        out.append(_Res("aws_kms_key_policy", case.name, {
            "bypass_policy_lockout_safety_check": False, "id": UNKNOWN, "key_id": UNKNOWN,
            "policy": _policy_json(policy)}, {
            "key_id": {"references": [f"{ref_name}.id", ref_name]}, "policy": _caller_refs()}, module))
    if case.alias:
        alias_ref = [ref_name, "count.index"] if counted else [f"{ref_name}.key_id", ref_name]
        out.append(_Res("aws_kms_alias", case.name, {
            "arn": UNKNOWN, "id": UNKNOWN, "name": case.alias.format(case=case.name), "name_prefix": UNKNOWN,
            "target_key_arn": UNKNOWN, "target_key_id": UNKNOWN}, {
            "name": {"constant_value": case.alias.format(case=case.name)},
            "target_key_id": {"references": alias_ref}}, module, 0 if counted else None))
    if i == 0:  # a grant on the first key: linked, and no verdict depends on it
        out.append(_Res("aws_kms_grant", case.name, {
            "constraints": [], "grant_creation_tokens": None, "grant_id": UNKNOWN, "grant_token": UNKNOWN,
            "grantee_principal": USER, "id": UNKNOWN, "key_id": UNKNOWN, "name": f"{case.name}-app",
            "operations": ["Decrypt", "Encrypt"], "retire_on_delete": False, "retiring_principal": None}, {
            "grantee_principal": {"constant_value": USER}, "key_id": {"references": [f"{ref_name}.key_id", ref_name]},
            "operations": {"constant_value": ["Decrypt", "Encrypt"]}}, module))
    return out


def _identity_res(ic: IdentityCase, i: int) -> list[_Res]:
    rtype = _IDENTITY_TYPES[i % len(_IDENTITY_TYPES)]
    doc = _policy_json(ic.document)
    if rtype == "aws_iam_policy":
        return [_Res(rtype, ic.name, {"description": None, "name": ic.name, "name_prefix": UNKNOWN, "path": "/",
                                      "policy": doc, "tags": None, "arn": UNKNOWN, "id": UNKNOWN,
                                      "policy_id": UNKNOWN, "tags_all": UNKNOWN},
                     {"name": {"constant_value": ic.name}, "policy": {"constant_value": doc}})]
    if rtype == "aws_iam_role":
        trust = _policy_json({"Version": "2012-10-17", "Statement": [{
            "Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}]})
        return [_Res(rtype, ic.name, {"assume_role_policy": trust, "description": None, "force_detach_policies": False,
                                      "inline_policy": [{"name": "kms", "policy": doc}], "max_session_duration": 3600,
                                      "name": ic.name, "path": "/", "permissions_boundary": None, "tags": None,
                                      "arn": UNKNOWN, "id": UNKNOWN, "managed_policy_arns": UNKNOWN,
                                      "unique_id": UNKNOWN, "create_date": UNKNOWN, "tags_all": UNKNOWN},
                     {"assume_role_policy": {"constant_value": trust}, "name": {"constant_value": ic.name}})]
    holder = {"aws_iam_role_policy": "role", "aws_iam_user_policy": "user", "aws_iam_group_policy": "group"}[rtype]
    return [_Res(rtype, ic.name, {"name": "kms", "policy": doc, holder: "app", "id": UNKNOWN, "name_prefix": UNKNOWN},
                 {"name": {"constant_value": "kms"}, "policy": {"constant_value": doc},
                  holder: {"constant_value": "app"}})]


def _known(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not UNKNOWN}


def _unknown(values: dict) -> dict:
    out: dict[str, Any] = {k: True for k, v in values.items() if v is UNKNOWN}
    for k, v in values.items():  # terraform lists every known collection in after_unknown too
        if isinstance(v, dict) and v is not UNKNOWN:
            out[k] = {}
        elif isinstance(v, list):
            out[k] = [{} if isinstance(x, dict) else False for x in v]
    return out


def _prior(res: _Res, account: str | None, region: str) -> dict:
    """The resource's values in the prior state: what apply once made of its unknowns."""
    key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kms-iac-test/{res.module}/{res.name}"))
    key_arn = f"arn:aws:kms:{region}:{account or ACCOUNT}:key/{key_id}"
    made = {"key_id": key_id, "id": key_id, "target_key_id": key_id, "target_key_arn": key_arn,
            "arn": key_arn if res.type in ("aws_kms_key", "aws_kms_external_key") else None}
    return {k: (made.get(k) if v is UNKNOWN else v) for k, v in res.values.items()}


def _sensitive(values: dict) -> dict:
    return {k: ({} if isinstance(v, dict) else [{} if isinstance(x, dict) else False for x in v])
            for k, v in values.items() if isinstance(v, (dict, list))}


def plan_document(resources: list[_Res], *, deleted: Iterable[_Res] = (), replaced: Iterable[_Res] = (),
                  account: str | None = ACCOUNT, region: str = REGION) -> dict:
    """The JSON ``terraform show -json`` prints for a plan that creates ``resources``
    (and deletes ``deleted``, replaces ``replaced``: their values are the prior state)."""
    planned: dict[str, Any] = {"resources": [], "child_modules": []}
    children: dict[str, dict] = {}
    config_root: dict[str, Any] = {"resources": [], "module_calls": {}, "variables": {
        "region": {"default": region}}}
    changes = []
    replaced = list(replaced)

    def module_node(module: str) -> dict:
        if not module:
            return planned
        if module not in children:
            children[module] = {"resources": [], "address": f"module.{module}"}
            planned["child_modules"].append(children[module])
        return children[module]

    def config_node(module: str) -> dict:
        if not module:
            return config_root
        call = config_root["module_calls"].setdefault(module, {"source": f"./modules/{module}", "module": {"resources": []}})
        return call["module"]

    seen_config: set[tuple[str, str]] = set()
    for res in [*resources, *replaced]:
        entry = {"address": res.address, "mode": "managed", "type": res.type, "name": res.name,
                 **({"index": res.index} if res.index is not None else {}),
                 "provider_name": PROVIDER, "schema_version": 0, "values": _known(res.values),
                 "sensitive_values": _sensitive(_known(res.values))}
        module_node(res.module)["resources"].append(entry)
        is_replace = res in replaced
        changes.append({
            "address": res.address, **({"module_address": f"module.{res.module}"} if res.module else {}),
            "mode": "managed", "type": res.type, "name": res.name,
            **({"index": res.index} if res.index is not None else {}), "provider_name": PROVIDER,
            **({"action_reason": "replace_because_cannot_update"} if is_replace else {}),
            "change": {"actions": ["delete", "create"] if is_replace else ["create"],
                       "before": _prior(res, account, region) if is_replace else None, "after": _known(res.values),
                       "after_unknown": _unknown(res.values), "before_sensitive": False,
                       "after_sensitive": _sensitive(_known(res.values)),
                       **({"replace_paths": [["customer_master_key_spec"]]} if is_replace else {})}})
        if (res.module, f"{res.type}.{res.name}") not in seen_config:
            seen_config.add((res.module, f"{res.type}.{res.name}"))
            config_node(res.module)["resources"].append({
                "address": f"{res.type}.{res.name}", "mode": "managed", "type": res.type, "name": res.name,
                "provider_config_key": f"{res.module}:aws" if res.module else "aws",
                "expressions": {k: v for k, v in res.exprs.items() if k != "count"},
                **({"count_expression": res.exprs["count"]} if "count" in res.exprs else {}),
                "schema_version": 0})
    for res in deleted:
        changes.append({
            "address": res.address, **({"module_address": f"module.{res.module}"} if res.module else {}),
            "mode": "managed", "type": res.type, "name": res.name, "provider_name": PROVIDER,
            "action_reason": "delete_because_no_resource_config",
            "change": {"actions": ["delete"], "before": _prior(res, account, region), "after": None,
                       "after_unknown": {}, "before_sensitive": _sensitive(_known(res.values)),
                       "after_sensitive": False}})
    if not planned["child_modules"]:
        del planned["child_modules"]
    data = []
    if account:
        data.append({"address": "data.aws_caller_identity.current", "mode": "data", "type": "aws_caller_identity",
                     "name": "current", "provider_name": PROVIDER, "schema_version": 0,
                     "values": {"account_id": account, "arn": f"arn:aws:iam::{account}:user/ci",
                                "id": account, "user_id": "AIDAEXAMPLECIUSER0001"}, "sensitive_values": {}})
        config_root["resources"].append({"address": "data.aws_caller_identity.current", "mode": "data",
                                         "type": "aws_caller_identity", "name": "current",
                                         "provider_config_key": "aws", "schema_version": 0})
    return copy.deepcopy({  # a fresh tree, as render_cfn's
        "format_version": "1.2", "terraform_version": "1.9.8",
        "variables": {"region": {"value": region}},
        "planned_values": {"root_module": planned},
        "resource_changes": changes,
        "prior_state": {"format_version": "1.0", "terraform_version": "1.9.8",
                        "values": {"root_module": {"resources": data}}},
        "configuration": {"provider_config": {"aws": {"name": "aws", "full_name": PROVIDER,
                                                      "expressions": {"region": {"references": ["var.region"]}}}},
                          "root_module": config_root},
        "relevant_attributes": [{"resource": "data.aws_caller_identity.current", "attribute": ["account_id"]}],
        "timestamp": "2026-12-01T15:00:00Z", "applyable": True, "complete": True, "errored": False,
    })


def tf_key_resources(cases: Iterable[Case], identity_cases: Iterable[IdentityCase] = ()) -> list[_Res]:
    """The planned resource instances of the cases (keys, policies, aliases, grants, IAM)."""
    out: list[_Res] = []
    for i, case in enumerate(cases):
        out += _key_res(case, i)
    for i, ic in enumerate(identity_cases):
        out += _identity_res(ic, i)
    return out


def render_tf_plan(cases: Iterable[Case], identity_cases: Iterable[IdentityCase]) -> dict:
    """One Terraform plan (``terraform show -json``) creating every case's key, alias and identity policy."""
    return plan_document(tf_key_resources(list(cases), list(identity_cases)))
