"""The Pulumi policy pack front door: the adapter on kms-iac and pulumi-aws properties, the
pack's settings and deletion gate as units, and the real ``pulumi preview --policy-pack``
(every shared case's verdict, mandatory versus advisory, the KMS003 deletion gate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kms_iac.rules.adapters.pulumi import UNKNOWN, PulumiResource, key_view, views
from kms_iac.rules.config import ConfigError, RulesConfig
from kms_iac.rules.engine import evaluate
from kms_iac.rules.pulumi_deletion_gate import key_changes, keys_in_checkpoint
from kms_iac.rules.pulumi_pack import PackState, plain, stack_rules_config
from tests.rule_cases import ACCOUNT, ADMIN_STMT, CASES, IDENTITY_CASES, USER_STMT, Case, policy
from tests.rules_doors_pulumi import (
    PACK_DIR,
    new_project,
    preview_with_pack,
    rules_config,
    verdicts_via_pulumi,
)

STACK = "urn:pulumi:test::kms-iac-test::"
ENGINE_UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
ENGINE_UNKNOWN_BOOL = "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7"


def res(type_: str, name: str, /, **props) -> PulumiResource:
    return PulumiResource(f"{STACK}{type_}::{name}", type_, props)


def verdicts(resources: list[PulumiResource], config: RulesConfig | None = None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for f in evaluate(views(resources, ACCOUNT), config):
        out.setdefault(f.resource, {})[f.rule] = f.status
    return out


# --- the adapter on pulumi-aws properties -----------------------------------------------------

def aws_key_props(case: Case) -> tuple[str, dict]:
    """A shared case as pulumi-aws's ``aws:kms/key:Key`` (or ``externalKey``) would hold it."""
    a = {k: v for k, v in case.key_args().items() if v is not None}
    if a.pop("origin", None) == "EXTERNAL":
        props = {"description": a["description"], "policy": json.dumps(a["policy"]), "tags": a["tags"],
                 "deletionWindowInDays": a["deletion_window_in_days"], "enabled": a.get("is_enabled", True),
                 "keyMaterialBase64": "AAAA"}
        return "aws:kms/externalKey:ExternalKey", props
    props = {"description": a["description"], "policy": json.dumps(a["policy"]), "tags": a["tags"],
             "customerMasterKeySpec": a.get("key_spec", "SYMMETRIC_DEFAULT"),
             "keyUsage": a.get("key_usage", "ENCRYPT_DECRYPT"), "enableKeyRotation": a["enable_key_rotation"],
             "deletionWindowInDays": a["deletion_window_in_days"], "isEnabled": a.get("is_enabled", True),
             "multiRegion": a.get("multi_region", False),
             "bypassPolicyLockoutSafetyCheck": a.get("bypass_policy_lockout_safety_check", False)}
    if "rotation_period_in_days" in a:
        props["rotationPeriodInDays"] = a["rotation_period_in_days"]
    return "aws:kms/key:Key", props


@pytest.mark.parametrize("case", [c for c in CASES if "pulumi" in c.doors], ids=lambda c: c.name)
def test_pulumi_aws_key_props_give_the_case_verdicts(case: Case) -> None:
    type_, props = aws_key_props(case)
    key = res(type_, case.name, **props)
    resources = [key]
    if case.alias:  # the key id is unknown during a preview: the alias is linked through the graph
        alias = res("aws:kms/alias:Alias", case.name, name=case.alias.format(case=case.name),
                    targetKeyId=ENGINE_UNKNOWN_STRING)
        alias.property_dependencies = {"targetKeyId": [key.urn]}
        resources.append(alias)
    got = verdicts(resources)[case.name]
    assert {r: got[r] for r in case.expect} == case.expect


@pytest.mark.parametrize("type_", ["aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy"])
@pytest.mark.parametrize("case", IDENTITY_CASES, ids=lambda c: c.name)
def test_identity_policies_of_pulumi_aws(case, type_) -> None:
    got = verdicts([res(type_, case.name, policy=json.dumps(case.document), role="app")])
    assert got == {case.name: {"KMS016": case.expect}}


def test_pulumi_aws_spellings() -> None:
    ext = key_view(res("aws:kms/externalKey:ExternalKey", "ext", enabled=False, validTo="2099-01-01T00:00:00Z"))
    assert ext.origin == "EXTERNAL" and ext.enabled is False and ext.valid_to.year == 2099
    rep = key_view(res("aws:kms/replicaKey:ReplicaKey", "rep", primaryKeyArn="arn:aws:kms:us-east-1:1:key/mrk-1",
                       keyRotationEnabled=True, keySpec="SYMMETRIC_DEFAULT",
                       arn=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/mrk-1"))
    assert rep.multi_region and rep.rotation_enabled and rep.account == ACCOUNT and rep.region == "eu-west-1"
    xks = key_view(res("aws:kms/key:Key", "xks", customKeyStoreId="cks-1", xksKeyId="ext-1"))
    assert xks.origin == "EXTERNAL_KEY_STORE"
    hsm = key_view(res("aws:kms/key:Key", "hsm", customKeyStoreId="cks-1"))
    assert hsm.origin == "AWS_CLOUDHSM"
    got = verdicts([res("aws:kms/externalKey:ExternalKey", "ext", validTo="2020-01-01T00:00:00Z", tags={})])["ext"]
    assert got["KMS009"] == "FAIL" and got["KMS002"] == "NOT_APPLICABLE"


def test_aliases_and_grants_link_by_known_key_id() -> None:
    arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    key = res("aws:kms/key:Key", "orders", arn=arn, keyId="1234abcd-12ab-34cd-56ef-1234567890ab",
              tags={"tenant": "orders"})
    by_arn = res("aws:kms/alias:Alias", "a1", name="alias/orders", targetKeyId=arn)
    by_id = res("kms-iac:index:Alias", "a2", name="alias/orders-2", targetKeyId="1234abcd-12ab-34cd-56ef-1234567890ab")
    other = res("aws:kms/alias:Alias", "a3", name="alias/elsewhere", targetKeyId="ffffffff-0000-0000-0000-000000000000")
    grant = res("kms-iac:index:Grant", "g", keyId=arn, granteePrincipal=f"arn:aws:iam::{ACCOUNT}:role/App",
                operations=["Decrypt"], encryptionContextSubset={"tenant": "orders"})
    (v,) = views([key, by_arn, by_id, other, grant], ACCOUNT)
    assert v.aliases == ["alias/orders", "alias/orders-2"] and v.account == ACCOUNT
    assert v.grants == [{"Name": "g", "GranteePrincipal": f"arn:aws:iam::{ACCOUNT}:role/App",
                         "Operations": ["Decrypt"], "Constraints": {"EncryptionContextSubset": {"tenant": "orders"}}}]


def test_alias_without_property_dependencies_links_to_its_only_key_dependency() -> None:
    key = res("kms-iac:index:Key", "k", tags={"tenant": "t"})
    alias = res("kms-iac:index:Alias", "k", name="alias/k", targetKeyId=ENGINE_UNKNOWN_STRING)
    alias.dependencies = [key.urn]
    assert views([key, alias])[0].aliases == ["alias/k"]
    alias.dependencies = []
    assert verdicts([key, alias])["k"]["KMS012"] == "FAIL"


@pytest.mark.parametrize("prop", ["policy", "enableKeyRotation", "rotationPeriodInDays", "deletionWindowInDays",
                                  "isEnabled", "multiRegion", "bypassPolicyLockoutSafetyCheck", "tags", "keySpec",
                                  "keyUsage"])
def test_an_unknown_value_never_fails_a_rule(prop) -> None:
    """Every case, with one property unknown (a preview): no FAIL that the known value would not give."""
    for case in CASES:
        if "pulumi" not in case.doors or case.key_args().get("origin") == "EXTERNAL":
            continue
        type_, props = aws_key_props(case)
        props = {**props, "keySpec": props.pop("customerMasterKeySpec")}
        known = verdicts([res(type_, case.name, **props)])[case.name]
        props[prop] = UNKNOWN if prop != "tags" else ENGINE_UNKNOWN_STRING
        unknown = verdicts([res(type_, case.name, **props)])[case.name]
        new_fails = {r for r, s in unknown.items() if s == "FAIL" and known[r] != "FAIL"}
        assert not new_fails, (case.name, prop, new_fails)


def test_declared_enablement_wins_over_the_old_key_state() -> None:
    """A preview of an update that disables a key still carries the old keyState."""
    got = verdicts([res("kms-iac:index:Key", "k", isEnabled=False, keyState="Enabled", keyId="k-1")])["k"]
    assert got["KMS008"] == "FAIL"
    got = verdicts([res("kms-iac:index:ExternalKey", "x", isEnabled=True, keyState="PendingImport")])["x"]
    assert got["KMS008"] == "NOT_APPLICABLE"


def test_engine_unknown_policy_is_unresolved_not_a_failure() -> None:
    got = verdicts([res("kms-iac:index:Key", "k", policy=ENGINE_UNKNOWN_STRING, isEnabled=ENGINE_UNKNOWN_BOOL)])["k"]
    for r in ("KMS001", "KMS004", "KMS005", "KMS006", "KMS013", "KMS008"):
        assert got[r] == "NOT_APPLICABLE", r


def test_plain_unwraps_pulumi_policy_proxies_without_raising() -> None:
    from pulumi_policy.proxy import unknown_checking_proxy

    props = unknown_checking_proxy({"policy": ENGINE_UNKNOWN_STRING, "tags": {"tenant": "a", "x": ENGINE_UNKNOWN_STRING},
                                    "ops": ["Decrypt", ENGINE_UNKNOWN_STRING]})
    assert plain(props) == {"policy": UNKNOWN, "tags": {"tenant": "a", "x": UNKNOWN}, "ops": ["Decrypt", UNKNOWN]}


# --- the pack's settings and the deletion gate as units ----------------------------------------

def test_stack_config_overrides_the_rules_config() -> None:
    base = RulesConfig(advisory=frozenset({"KMS015"}), min_deletion_window_days=30)
    cfg = stack_rules_config(base, {"kms-iac:advisory": '["KMS001", "KMS012"]', "kms-iac:minDeletionWindowDays": "14",
                                    "kms-iac:target": "local", "kms-iac:allowKeyDeletion": "true", "aws:region": "x"})
    assert cfg.advisory == {"KMS001", "KMS012"} and cfg.min_deletion_window_days == 14
    assert stack_rules_config(base, {}) is base
    with pytest.raises(ConfigError, match="stack config"):
        stack_rules_config(base, {"kms-iac:disabled": '["nope"]'})


def test_pack_state_enforcement_and_allow_key_deletion(tmp_path) -> None:
    (tmp_path / "kms-iac.yaml").write_text("advisory: [KMS012]\ndisabled: [KMS015]\n")
    state = PackState(cwd=tmp_path)
    state.configure("dev", {"kms-iac:allowKeyDeletion": "true"}, lambda stack: [])
    assert [state.enforcement(r) for r in ("KMS001", "KMS012", "KMS015")] == ["mandatory", "advisory", "disabled"]
    assert state.allow_key_deletion
    state.configure("dev", {"aws:allowedAccountIds": '["444455556666"]'}, lambda stack: [])
    assert state.config.account == "444455556666" and not state.allow_key_deletion


def _checkpoint(*keys: tuple[str, str | None]) -> dict:
    return {"deployment": {"resources": [
        {"urn": f"{STACK}kms-iac:index:Key::{name}", "type": "kms-iac:index:Key", "custom": True,
         "inputs": {"description": name}, "outputs": {"keyId": kid, "tags": {"tenant": name}}}
        for name, kid in keys] + [
        {"urn": f"{STACK}kms-iac:index:Key::gone-already", "type": "kms-iac:index:Key", "delete": True,
         "outputs": {"keyId": "k-0"}},
        {"urn": f"{STACK}pulumi:pulumi:Stack::s", "type": "pulumi:pulumi:Stack", "custom": False}]}}


def test_key_changes_from_the_checkpoint() -> None:
    old = keys_in_checkpoint(_checkpoint(("kept", "k-1"), ("updated", "k-2"), ("replaced", "k-3"), ("deleted", "k-4"),
                                         ("renamed", "k-5")))
    assert [k.name for k in old] == ["kept", "updated", "replaced", "deleted", "renamed"]
    new = [res("kms-iac:index:Key", "kept", keyId="k-1"), res("kms-iac:index:Key", "updated", keyId="k-2", description="x"),
           res("kms-iac:index:Key", "replaced", keySpec="RSA_3072"),  # a replacement's key id is unknown in a preview
           res("kms-iac:index:Key", "new-name", keyId="k-5")]
    new[-1].aliases = [f"{STACK}kms-iac:index:Key::renamed"]
    assert [(c.key.name, c.change) for c in key_changes(old, new)] == [("replaced", "replaced"), ("deleted", "deleted")]


def test_gate_findings_and_allow_key_deletion(tmp_path) -> None:
    old = keys_in_checkpoint(_checkpoint(("orders", "k-1"), ("billing", "k-2")))
    state = PackState(cwd=tmp_path)
    state.configure("dev", {}, lambda stack: old)
    found = [f for f in state.findings([res("kms-iac:index:Key", "orders", keyId="k-1", tags={"tenant": "o"})])
             if f.rule == "KMS003"]
    assert {(f.resource, f.status) for f in found} == {("orders", "PASS"), ("billing", "FAIL")}
    fail = next(f for f in found if f.status == "FAIL")
    assert fail.blocking and "would be deleted by this change: it is removed from the program (urn:" in fail.message
    assert state.gate_urns["billing"].endswith("::billing")
    state.configure("dev", {"kms-iac:allowKeyDeletion": "true"}, lambda stack: old)
    fail = next(f for f in state.findings([]) if f.rule == "KMS003" and f.resource == "billing")
    assert not fail.blocking and fail.suppressed == "kms-iac:allowKeyDeletion is true"


def test_gate_fails_closed_when_the_state_cannot_be_read(tmp_path) -> None:
    from kms_iac.rules.pulumi_deletion_gate import StateUnavailable

    def unreadable(stack):
        raise StateUnavailable("pulumi stack export --stack dev failed: no such stack")

    state = PackState(cwd=tmp_path)
    state.configure("dev", {}, unreadable)
    (f,) = [f for f in state.findings([]) if f.rule == "KMS003"]
    assert f.blocking and "cannot tell whether this update deletes keys" in f.message


# --- kms-iac policy-pack path --------------------------------------------------------------------

def test_policy_pack_path_command() -> None:
    out = subprocess.run([sys.executable, "-m", "kms_iac", "policy-pack", "path"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip())
    assert path.is_absolute() and path == PACK_DIR and (path / "PulumiPolicy.yaml").is_file()


def test_policy_pack_path_refuses_a_pack_without_its_virtualenv(tmp_path) -> None:
    from kms_iac.cli.policy_pack import PolicyPackError, checked_pack_dir

    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "__main__.py").write_text("")
    (pack / "PulumiPolicy.yaml").write_text("name: p\nruntime:\n  name: python\n  options:\n    virtualenv: ../venv\n")
    with pytest.raises(PolicyPackError, match="has no bin/python: run scripts/setup.sh"):
        checked_pack_dir(pack)
    with pytest.raises(PolicyPackError, match="no policy pack at"):
        checked_pack_dir(tmp_path)


# --- the real engine -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pulumi_bin():
    from kms_iac.engine import pulumi_bin_dir
    return pulumi_bin_dir()


@pytest.mark.slow
def test_every_case_through_pulumi_preview(tmp_path, pulumi_bin) -> None:
    got = verdicts_via_pulumi(CASES, IDENTITY_CASES, tmp_path, pulumi_bin)
    wrong = {c.name: {r: got[c.name].get(r) for r in c.expect} for c in CASES
             if "pulumi" in c.doors and {r: got[c.name].get(r) for r in c.expect} != c.expect}
    assert not wrong, wrong
    for c in IDENTITY_CASES:
        assert got[c.name] == {"KMS016": c.expect}


NO_ROOT_PROGRAM = f"""
from kms_iac import resources as kms

# administrators and users, but not the account root (KMS001-FAIL-no-root); compliant otherwise
key = kms.Key("locked-out", policy={json.dumps(json.dumps(policy(ADMIN_STMT, USER_STMT)))},
              enable_key_rotation=True, tags={{"tenant": "orders"}})
kms.Alias("locked-out", name="alias/locked-out", target_key_id=key.key_id)
"""


@pytest.mark.slow
def test_mandatory_violation_blocks_and_advisory_does_not(tmp_path, pulumi_bin) -> None:
    project = new_project(tmp_path, pulumi_bin)
    project.write_program(NO_ROOT_PROGRAM)
    (project.dir / "kms-iac.yaml").write_text(rules_config(advisory=[]))

    run = preview_with_pack(project, tmp_path)
    assert run.returncode != 0
    text = run.stdout + run.stderr
    assert "kms001-root-access" in text and "mandatory" in text
    (v,) = [v for v in run.violations() if v["policyName"] == "kms001-root-access"]
    assert v["enforcementLevel"] == "mandatory" and v["resourceUrn"].endswith("kms-iac:index:Key::locked-out")
    assert "KMS001 [CRITICAL] locked-out:" in v["message"]
    assert "Remediation: Add a statement allowing kms:* to" in v["message"]
    assert [x["policyName"] for x in run.violations()] == ["kms001-root-access"]  # the rest of the key complies

    # the same violation, advisory through the rules config: reported, not blocking
    (project.dir / "kms-iac.yaml").write_text(rules_config(advisory=["KMS001"]))
    run = preview_with_pack(project, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert [(x["policyName"], x["enforcementLevel"]) for x in run.violations()] == [("kms001-root-access", "advisory")]

    # ... or through stack config, which overrides the file
    (project.dir / "kms-iac.yaml").write_text(rules_config(advisory=[]))
    project.run("config", "set", "kms-iac:advisory", '["KMS001"]')
    run = preview_with_pack(project, tmp_path)
    assert run.returncode == 0 and [x["enforcementLevel"] for x in run.violations()] == ["advisory"]

    # disabled: not run at all
    project.run("config", "set", "kms-iac:disabled", '["KMS001"]')
    run = preview_with_pack(project, tmp_path)
    assert run.returncode == 0 and run.violations() == []


@pytest.mark.slow
def test_invalid_rules_config_is_one_clear_error(tmp_path, pulumi_bin) -> None:
    project = new_project(tmp_path, pulumi_bin)
    project.write_program(NO_ROOT_PROGRAM)
    (project.dir / "kms-iac.yaml").write_text("advisory: [KMS1]\n")
    run = preview_with_pack(project, tmp_path)
    assert run.returncode != 0
    assert "kms-iac policy pack:" in run.stdout + run.stderr and "'KMS1' is not a rule id" in run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr


GATE_PROGRAM = """
import json
from pathlib import Path
from kms_iac import resources as kms

for name, spec in json.loads(Path(__file__).with_name("keys.json").read_text()).items():
    key = kms.Key(name, enable_key_rotation=True, tags={"tenant": name}, **spec)
    kms.Alias(name, name=f"alias/{name}", target_key_id=key.key_id)
"""


@pytest.mark.slow
def test_deleting_or_replacing_a_key_is_gated(tmp_path, pulumi_bin) -> None:
    project = new_project(tmp_path, pulumi_bin)
    project.write_program(GATE_PROGRAM)
    (project.dir / "kms-iac.yaml").write_text(json.dumps({"account": ACCOUNT}))
    keys = project.dir / "keys.json"
    keys.write_text(json.dumps({"orders": {}, "billing": {}}))
    project.up()

    # removing a key from the program: blocked, naming the key and the way through
    keys.write_text(json.dumps({"orders": {}}))
    run = preview_with_pack(project, tmp_path)
    assert run.returncode != 0
    (v,) = run.violations()
    assert v["policyName"] == "kms003-not-scheduled-for-deletion" and v["enforcementLevel"] == "mandatory"
    # the key is gone from the new state, so the engine files the violation under the stack
    assert v["resourceUrn"].endswith("pulumi:pulumi:Stack::kms-iac-test-test")
    assert ("KMS003 [HIGH] billing: key would be deleted by this change: it is removed from the program "
            "(urn:pulumi:test::kms-iac-test::kms-iac:index:Key::billing)") in v["message"]
    assert "kms-iac:allowKeyDeletion" in v["message"]

    # a change that replaces a key (key spec) is a deletion of the old key too
    keys.write_text(json.dumps({"orders": {"key_spec": "SYMMETRIC_DEFAULT", "multi_region": True}, "billing": {}}))
    run = preview_with_pack(project, tmp_path)
    assert run.returncode != 0
    gate = [v for v in run.violations() if v["policyName"] == "kms003-not-scheduled-for-deletion"]
    assert len(gate) == 1 and gate[0]["resourceUrn"].endswith("::orders")
    assert "it is replaced (a new key is created)" in gate[0]["message"]

    # an in-place update is no deletion
    keys.write_text(json.dumps({"orders": {"description": "orders v2"}, "billing": {"description": "billing v2"}}))
    run = preview_with_pack(project, tmp_path)
    assert run.returncode == 0 and run.violations() == [], run.stdout

    # pulumi up previews first: the same violation stops it before any step
    keys.write_text(json.dumps({"orders": {}}))
    up = project.run("up", "--yes", "--policy-pack", str(PACK_DIR), check=False)
    assert up.returncode != 0 and "kms003-not-scheduled-for-deletion" in up.stdout
    assert {r["urn"].rsplit("::", 1)[-1] for r in project.resources() if r["type"] == "kms-iac:index:Key"} == {
        "orders", "billing"}

    # kms-iac:allowKeyDeletion lets it through, up included
    project.run("config", "set", "kms-iac:allowKeyDeletion", "true")
    run = preview_with_pack(project, tmp_path)
    assert run.returncode == 0 and run.violations() == [], run.stdout
    up = project.run("up", "--yes", "--policy-pack", str(PACK_DIR), check=False)
    assert up.returncode == 0, up.stdout + up.stderr
    assert [r["urn"].rsplit("::", 1)[-1] for r in project.resources() if r["type"] == "kms-iac:index:Key"] == ["orders"]


def test_a_new_key_in_a_preview_takes_its_account_from_its_policy() -> None:
    """A preview of a key not created yet: no ARN, and the stack names no account. Its own
    account's root in its policy must be recognised as its own (KMS001 passes), not judged
    against a placeholder account."""
    root = {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*", "Resource": "*"}
    compliant = json.dumps(policy(root, ADMIN_STMT, USER_STMT))
    key = res("kms-iac:index:Key", "fresh", policy=compliant, enableKeyRotation=True, arn=UNKNOWN)
    (view,) = views([key])  # no account given, as for a stack without kms-iac:account config
    assert view.account == ACCOUNT
    found = {f.rule: f.status for f in evaluate([view])}
    assert found["KMS001"] == "PASS" and found["KMS005"] == "PASS"
