"""The components under Pulumi's mocks: what they register, with which parents, names,
policies and tags, and the errors a person gets for bad input."""

from __future__ import annotations

import json

import pulumi
import pytest
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

A = "111122223333"


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        outputs = dict(args.inputs)
        if args.typ in ("kms-iac:index:Key", "kms-iac:index:ExternalKey", "kms-iac:index:ReplicaKey"):
            kid = ("mrk-" if args.inputs.get("multiRegion") or args.typ.endswith("ReplicaKey") else "") + args.name
            outputs.update(keyId=kid, arn=f"arn:aws:kms:us-east-1:{A}:key/{kid}")
        if args.typ == "kms-iac:index:Alias":
            outputs["arn"] = f"arn:aws:kms:us-east-1:{A}:{args.inputs['name']}"
        if args.typ == "kms-iac:index:CustomKeyStore":
            outputs["customKeyStoreId"] = "cks-1234567890abcdef0"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        assert args.token == "kms-iac:index:getCallerIdentity"
        return {"accountId": A, "region": "us-east-1", "partition": "aws"}


@pytest.fixture
def mocks():
    from kms_iac.components import _policy

    _policy._ACCOUNTS.clear()  # one program run per test: its account comes from its own mocks
    m = Mocks()
    pulumi.runtime.set_mocks(m, preview=False)
    yield m


def run(program):
    """Run ``program`` as a Pulumi program under the mocks, until every registration is done."""
    box = {}

    def body():
        box["result"] = program()
    _sync_await(run_pulumi_func(body))
    return box["result"]


def resolve(output: pulumi.Output):
    return _sync_await(output.future())


def by(mocks: Mocks, typ: str) -> dict[str, pulumi.runtime.MockResourceArgs]:
    return {r.name: r for r in mocks.resources if r.typ == typ}


def test_tenant_key_children_policy_tags_and_outputs(mocks) -> None:
    from kms_iac.components import TenantKey

    t = run(lambda: TenantKey("acme", tenant="acme", key_administrators=[f"arn:aws:iam::{A}:role/KeyAdmin"],
                  key_users=[f"arn:aws:iam::{A}:role/App"],
                  cross_account_principals=["arn:aws:iam::444455556666:role/Consumer"],
                  tags={"env": "prod"}, grants=[{"name": "etl", "grantee_principal": f"arn:aws:iam::{A}:role/Etl",
                                                 "operations": ["Decrypt"]}]))
    assert resolve(t.alias_name) == "alias/tenants/acme"
    assert resolve(t.key_arn) == f"arn:aws:kms:us-east-1:{A}:key/acme"
    key = by(mocks, "kms-iac:index:Key")["acme"]
    assert key.inputs["enableKeyRotation"] is True and key.inputs["rotationPeriodInDays"] == 365
    assert key.inputs["deletionWindowInDays"] == 30 and key.inputs["tags"] == {"env": "prod", "tenant": "acme"}
    policy = json.loads(key.inputs["policy"])
    sids = [s["Sid"] for s in policy["Statement"]]
    assert sids == ["AccountRoot", "KeyAdministrators", "KeyUsers", "CrossAccount444455556666"]
    assert policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{A}:root"}  # from getCallerIdentity
    alias = by(mocks, "kms-iac:index:Alias")["acme-alias"]
    assert alias.inputs["name"] == "alias/tenants/acme"
    grant = by(mocks, "kms-iac:index:Grant")["acme-grant-etl"]
    assert grant.inputs["operations"] == ["Decrypt"] and grant.inputs["keyId"] == "acme"
    component = next(r for r in mocks.resources if r.typ == "kms-iac:index:TenantKey")
    assert component.name == "acme"


def test_replicas_custom_key_store_and_imported_material(mocks) -> None:
    from kms_iac.components import ImportedKey, TenantKey

    run(lambda: TenantKey("multi", tenant="multi", replica_regions=["eu-west-1", "ap-south-1"]))
    keys = by(mocks, "kms-iac:index:Key")
    assert keys["multi"].inputs["multiRegion"] is True
    replicas = by(mocks, "kms-iac:index:ReplicaKey")
    assert set(replicas) == {"multi-eu-west-1", "multi-ap-south-1"}
    assert replicas["multi-eu-west-1"].provider.startswith("urn:pulumi:") and "multi-eu-west-1" in replicas["multi-eu-west-1"].provider
    assert {"multi-eu-west-1-alias", "multi-ap-south-1-alias"} <= set(by(mocks, "kms-iac:index:Alias"))

    run(lambda: TenantKey("regulated", tenant="regulated", custom_key_store="cks-1234567890abcdef0"))
    k = by(mocks, "kms-iac:index:Key")["regulated"]
    assert k.inputs["customKeyStoreId"] == "cks-1234567890abcdef0" and k.inputs["enableKeyRotation"] is False

    run(lambda: ImportedKey("byok", tenant="byok", key_material="AAAA"))
    assert "byok" in by(mocks, "kms-iac:index:ExternalKey")


def test_fleet_names_resources_after_tenants(mocks, tmp_path) -> None:
    from kms_iac.components import TenantKeyFleet

    f = tmp_path / "tenants.yaml"
    f.write_text("defaults:\n  rotation_period_in_days: 180\ntenants:\n  - acme\n  - tenant: globex\n    deletion_window_in_days: 7\n")
    fleet = run(lambda: TenantKeyFleet("fleet", tenants_file=str(f)))
    keys = by(mocks, "kms-iac:index:Key")
    assert set(keys) == {"fleet-acme", "fleet-globex"}
    assert keys["fleet-acme"].inputs["rotationPeriodInDays"] == 180
    assert keys["fleet-globex"].inputs["deletionWindowInDays"] == 7
    assert resolve(fleet.aliases) == {"acme": "alias/tenants/acme", "globex": "alias/tenants/globex"}
    assert set(resolve(fleet.keys)) == {"acme", "globex"}


def test_signing_and_hmac_keys(mocks) -> None:
    from kms_iac.components import HmacKey, SigningKey

    run(lambda: (SigningKey("sig", tenant="pay", signers=[f"arn:aws:iam::{A}:role/Signer"]),
                 HmacKey("mac", tenant="tok", key_spec="HMAC_512", mac_users=[f"arn:aws:iam::{A}:role/Tok"])))
    keys = by(mocks, "kms-iac:index:Key")
    assert (keys["sig"].inputs["keySpec"], keys["sig"].inputs["keyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    assert keys["sig"].inputs["enableKeyRotation"] is False
    assert (keys["mac"].inputs["keySpec"], keys["mac"].inputs["keyUsage"]) == ("HMAC_512", "GENERATE_VERIFY_MAC")
    sids = [s["Sid"] for s in json.loads(keys["sig"].inputs["policy"])["Statement"]]
    assert "KeySigners" in sids
    assert "KeyMacUsers" in [s["Sid"] for s in json.loads(keys["mac"].inputs["policy"])["Statement"]]
    assert set(by(mocks, "kms-iac:index:Alias")) == {"sig-alias", "mac-alias"}


def test_cross_account_access_and_key_store(mocks) -> None:
    from kms_iac.components import CloudHsmKeyStore, CrossAccountKeyAccess

    run(lambda: CrossAccountKeyAccess("share", key_id="k-1", grantee_principals=["arn:aws:iam::444455556666:role/Etl"],
                                      encryption_context_subset={"tenant": "acme"}))
    (grant,) = by(mocks, "kms-iac:index:Grant").values()
    assert grant.inputs["encryptionContextSubset"] == {"tenant": "acme"}
    assert grant.inputs["granteePrincipal"] == "arn:aws:iam::444455556666:role/Etl"
    run(lambda: CloudHsmKeyStore("hsm"))
    assert "hsm-cluster" in by(mocks, "kms-iac:index:HsmCluster") and "hsm" in by(mocks, "kms-iac:index:CustomKeyStore")


@pytest.mark.parametrize("make,message", [
    (lambda c: c.TenantKey("x", tenant="bad tenant"), "TenantKey.tenant: 'bad tenant' is not a tenant id"),
    (lambda c: c.TenantKey("x", tenant="acme", rotation_period_in_days=30),
     r"TenantKey\(tenant='acme'\).rotation_period_in_days: must be a whole number of days from 90 to 2560"),
    (lambda c: c.TenantKey("x", tenant="acme", deletion_window_in_days=3), "deletion_window_in_days"),
    (lambda c: c.TenantKey("x", tenant="acme", key_users="arn:aws:iam::111122223333:role/App"),
     r"TenantKey\(tenant='acme'\).key_users: expected a list"),
    (lambda c: c.TenantKey("x", tenant="acme", key_users=["bob"]),
     r"TenantKey\(tenant='acme'\).policy: key_users\[0\]: 'bob' is not an IAM principal ARN"),
    (lambda c: c.TenantKey("x", tenant="acme", replica_regions=["mars-1"]), "'mars-1' is not an AWS Region"),
    (lambda c: c.TenantKey("x", tenant="acme", alias_prefix="aws/x"), "not an alias prefix"),
    (lambda c: c.TenantKey("x", tenant="acme", grants=[{"operations": ["Decrypt"]}]), "needs grantee_principal"),
    (lambda c: c.TenantKeyFleet("f", tenants=["a", "a"]), "tenant 'a' is listed twice"),
    (lambda c: c.TenantKeyFleet("f", tenants=[{"tenant": "a", "rotation": 90}]),
     r"TenantKeyFleet\(tenant='a'\): unknown setting\(s\) rotation"),
    (lambda c: c.SigningKey("s", tenant="a", key_spec="HMAC_256"), "cannot sign"),
    (lambda c: c.CrossAccountKeyAccess("s", key_id="k", grantee_principals=[]), "at least one principal"),
])
def test_bad_input_names_the_tenant_and_field(mocks, make, message) -> None:
    import kms_iac.components as c

    with pytest.raises(c.ComponentInputError, match=message):
        make(c)
    assert mocks.resources == []  # nothing registered


def test_tenants_file_errors(mocks, tmp_path) -> None:
    from kms_iac.components import ComponentInputError, TenantKeyFleet

    with pytest.raises(ComponentInputError, match="cannot read"):
        TenantKeyFleet("f", tenants_file=str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("tenants: [a\n")
    with pytest.raises(ComponentInputError, match="not valid YAML"):
        TenantKeyFleet("f", tenants_file=str(tmp_path / "bad.yaml"))
