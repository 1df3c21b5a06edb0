"""The real Pulumi engine (CLI, Python language host, file state backend) driving the
kms-iac provider against the embedded local backend, the local server, and moto's
server standing in for AWS. Assertions are on the backend's real state."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

from kms_iac.backend.embedded import embedded_client
from kms_iac.policy.normalize import policies_equal
from tests.helpers import MotoServer, ServerProcess
from kms_iac.engine import PulumiProject, pulumi_bin_dir

pytestmark = pytest.mark.slow
ACCOUNT = "111122223333"


def policy(extra_principal: str, reorder: bool = False) -> str:
    statements = [
        {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "App", "Effect": "Allow", "Principal": {"AWS": [extra_principal]},
         "Action": ["kms:Decrypt", "kms:Encrypt"], "Resource": "*"},
    ]
    if reorder:  # same meaning: other order, single values, other layout
        statements = [
            {"Resource": "*", "Action": ["kms:Encrypt", "kms:Decrypt"], "Principal": {"AWS": extra_principal},
             "Effect": "Allow", "Sid": "App"},
            {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": ["kms:*"], "Resource": ["*"]},
        ]
        return json.dumps({"Statement": statements, "Version": "2012-10-17"}, indent=4)
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


PROGRAM = """
import json
import pulumi
from kms_iac import resources as kms

cfg = pulumi.Config()
spec = json.loads(cfg.require("spec"))
key = kms.Key("orders", **spec["key"])
kms.Alias("orders", name=spec["alias"], target_key_id=key.key_id)
pulumi.export("key_id", key.key_id)
pulumi.export("arn", key.arn)
pulumi.export("key_state", key.key_state)
"""


@pytest.fixture(scope="module")
def pulumi_bin():
    return pulumi_bin_dir()


@pytest.fixture(params=["embedded", "server", "moto"])
def target(request, tmp_path):
    """(provider config, boto3 client onto the same KMS)."""
    if request.param == "embedded":
        data = tmp_path / "kms-data"
        yield {"kms-iac:target": "local", "kms-iac:dataDir": str(data)}, lambda: embedded_client(data), request.param
    elif request.param == "server":
        with ServerProcess(tmp_path / "server-data") as srv:
            yield {"kms-iac:target": srv.url}, srv.client, request.param
    else:
        with MotoServer() as moto:
            yield {"kms-iac:target": moto.url}, moto.client, request.param


def set_spec(project: PulumiProject, **spec) -> None:
    project.run("config", "set", "spec", json.dumps(spec))


def test_lifecycle(target, tmp_path, pulumi_bin):
    config, client_factory, kind = target
    kms = client_factory()
    project = PulumiProject(tmp_path, pulumi_bin, config=config)
    project.write_program(PROGRAM)
    alias = f"alias/orders-{uuid.uuid4().hex[:6]}"
    app = f"arn:aws:iam::{ACCOUNT}:role/app"
    key_v1 = {"description": "v1", "enable_key_rotation": True, "rotation_period_in_days": 180,
              "policy": policy(app), "tags": {"tenant": "orders"}, "deletion_window_in_days": 7}

    # create
    set_spec(project, key=key_v1, alias=alias)
    project.up()
    key_id = project.outputs()["key_id"]
    md = kms.describe_key(KeyId=alias)["KeyMetadata"]
    assert md["KeyId"] == key_id and md["Description"] == "v1" and md["KeyState"] == "Enabled"
    rot = kms.get_key_rotation_status(KeyId=key_id)
    assert rot["KeyRotationEnabled"] is True
    if kind != "moto":
        assert rot["RotationPeriodInDays"] == 180
    assert policies_equal(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"], policy(app))
    key_urn = project.resource("kms-iac:index:Key", "orders")["urn"]
    assert {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]} == \
        {"tenant": "orders", "kms-iac:pulumi-urn": key_urn}  # the provider's own tag (kms_iac/provider/orphans.py)

    # a semantically equal policy and nothing else changed: no diff at all
    set_spec(project, key={**key_v1, "policy": policy(app, reorder=True)}, alias=alias)
    project.run("preview", "--diff", "--expect-no-changes")

    # in-place update: description, tags, rotation off, disabled
    set_spec(project, key={**key_v1, "description": "v2", "tags": {"tenant": "orders", "env": "prod"},
                           "enable_key_rotation": False, "is_enabled": False}, alias=alias)
    preview = project.run("preview", "--diff").stdout
    assert "replace" not in preview.lower().replace("replaceonchanges", "")
    project.up()
    assert project.outputs()["key_id"] == key_id  # not replaced
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert md["Description"] == "v2" and md["KeyState"] == "Disabled"
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    project.run("preview", "--expect-no-changes")

    # enabled again out of band: refresh notices, up restores the declared state
    kms.enable_key(KeyId=key_id)
    project.run("refresh", "--yes")
    state = project.resource("kms-iac:index:Key", "orders")
    assert state["outputs"]["keyState"] == "Enabled" and state["outputs"]["isEnabled"] is True
    project.up()
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"

    # a change that forces replacement: a new key; the old one scheduled for deletion with its window
    replace_change = {"multi_region": True} if kind != "moto" else {"key_spec": "RSA_2048", "enable_key_rotation": False}
    set_spec(project, key={**key_v1, **replace_change, "enable_key_rotation": False}, alias=alias)
    preview = project.run("preview", "--diff")
    assert "replace" in preview.stdout.lower()
    assert "schedules deletion" in (preview.stdout + preview.stderr)
    project.up()
    new_id = project.outputs()["key_id"]
    assert new_id != key_id
    old = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert old["KeyState"] == "PendingDeletion"
    if kind != "moto":
        assert old["PendingDeletionWindowInDays"] == 7
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == new_id  # alias followed the new key

    # destroy: keys scheduled for deletion with the declared window, alias gone
    project.run("destroy", "--yes")
    md = kms.describe_key(KeyId=new_id)["KeyMetadata"]
    assert md["KeyState"] == "PendingDeletion"
    if kind != "moto":
        assert md["PendingDeletionWindowInDays"] == 7
    assert alias not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]


def test_import_and_check_failures(tmp_path, pulumi_bin):
    data = tmp_path / "kms-data"
    kms = embedded_client(data)
    key_id = kms.create_key(Description="made by hand", Tags=[{"TagKey": "owner", "TagValue": "ops"}])["KeyMetadata"]["KeyId"]
    project = PulumiProject(tmp_path, pulumi_bin, config={"kms-iac:target": "local", "kms-iac:dataDir": str(data)})
    project.run("import", "kms-iac:index:Key", "handmade", key_id, "--yes", "--generate-code=false")
    state = project.resource("kms-iac:index:Key", "handmade")
    assert state["id"] == key_id and state["outputs"]["description"] == "made by hand"
    assert state["outputs"]["tags"] == {"owner": "ops"}

    # Check validates as KMS would: preview fails fast with every problem named, nothing is called
    project.write_program("""
from kms_iac import resources as kms
kms.Key("bad", rotation_period_in_days=30, deletion_window_in_days=3, key_spec="HMAC_256", key_usage="ENCRYPT_DECRYPT")
""")
    proc = project.run("preview", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for needle in ("rotationPeriodInDays must be between 90 and 2560", "deletionWindowInDays must be between 7 and 30",
                   "keyUsage ENCRYPT_DECRYPT is not valid for keySpec HMAC_256"):
        assert needle in out, out
    project.write_program("""
from kms_iac import resources as kms
kms.Alias("bad", name="alias/aws/mine", target_key_id="x")
""")
    proc = project.run("preview", check=False)
    assert proc.returncode != 0 and "reserved for AWS managed keys" in proc.stdout + proc.stderr


def test_explicit_providers_for_several_regions_and_targets(tmp_path, pulumi_bin):
    """One program, three providers: the default (embedded), the server in eu-west-1, and moto."""
    data = tmp_path / "kms-data"
    with ServerProcess(tmp_path / "server-data") as srv, MotoServer() as moto:
        project = PulumiProject(tmp_path, pulumi_bin, config={"kms-iac:target": "local", "kms-iac:dataDir": str(data)})
        project.write_program(f"""
import pulumi
from kms_iac import resources as kms

eu = kms.Provider("eu", target="{srv.url}", region="eu-west-1")
aws_like = kms.Provider("moto", target="{moto.url}", region="ap-southeast-2")
home = kms.Key("home", description="default provider")
away = kms.Key("away", description="server in eu-west-1", opts=pulumi.ResourceOptions(provider=eu))
far = kms.Key("far", description="moto in ap-southeast-2", opts=pulumi.ResourceOptions(provider=aws_like))
pulumi.export("home", home.arn)
pulumi.export("away", away.arn)
pulumi.export("far", far.arn)
""")
        project.up()
        out = project.outputs()
        assert out["home"].startswith("arn:aws:kms:us-east-1:")
        assert out["away"].startswith("arn:aws:kms:eu-west-1:")
        assert out["far"].startswith("arn:aws:kms:ap-southeast-2:")
        assert embedded_client(data).describe_key(KeyId=out["home"])["KeyMetadata"]["Description"] == "default provider"
        assert srv.client(region="eu-west-1").describe_key(KeyId=out["away"])["KeyMetadata"]["Description"] == "server in eu-west-1"
        assert moto.client(region="ap-southeast-2").describe_key(KeyId=out["far"])["KeyMetadata"]["Description"] == "moto in ap-southeast-2"
        project.run("destroy", "--yes")
        assert srv.client(region="eu-west-1").describe_key(KeyId=out["away"])["KeyMetadata"]["KeyState"] == "PendingDeletion"


@pytest.mark.parametrize("where", ["embedded", "server"])
def test_replica_key(where, tmp_path, pulumi_bin):
    """A multi-Region primary in us-east-1 and its replica in eu-west-1, through an explicit provider."""
    data = tmp_path / "kms-data"
    with ServerProcess(tmp_path / "server-data") as srv:
        target = "local" if where == "embedded" else srv.url
        config = {"kms-iac:target": target, "kms-iac:dataDir": str(data)}
        us = embedded_client(data) if where == "embedded" else srv.client()
        eu = embedded_client(data, region="eu-west-1") if where == "embedded" else srv.client(region="eu-west-1")
        project = PulumiProject(tmp_path, pulumi_bin, config=config)
        project.write_program(f"""
import pulumi
from kms_iac import resources as kms

primary = kms.Key("primary", description="orders primary", multi_region=True)
eu = kms.Provider("eu", target="{target}", data_dir="{data}", region="eu-west-1")
replica = kms.ReplicaKey("replica", primary_key_arn=primary.arn, description="orders in eu",
                         tags={{"region": "eu"}}, deletion_window_in_days=7,
                         opts=pulumi.ResourceOptions(provider=eu))
pulumi.export("primary", primary.arn)
pulumi.export("replica", replica.arn)
""")
        project.up()
        out = project.outputs()
        assert out["replica"] == out["primary"].replace("us-east-1", "eu-west-1")
        blob = us.encrypt(KeyId=out["primary"], Plaintext=b"shared material")["CiphertextBlob"]
        assert eu.decrypt(CiphertextBlob=blob)["Plaintext"] == b"shared material"
        md = eu.describe_key(KeyId=out["replica"])["KeyMetadata"]
        assert md["Description"] == "orders in eu" and md["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
        project.run("preview", "--expect-no-changes")
        project.write_program(project.dir.joinpath("__main__.py").read_text().replace('"orders in eu"', '"orders, Frankfurt next"'))
        project.up()
        assert eu.describe_key(KeyId=out["replica"])["KeyMetadata"]["Description"] == "orders, Frankfurt next"
        project.run("destroy", "--yes")
        md = eu.describe_key(KeyId=out["replica"])["KeyMetadata"]
        assert md["KeyState"] == "PendingDeletion" and md["PendingDeletionWindowInDays"] == 7


def test_external_key_byok(tmp_path, pulumi_bin):
    import base64
    import os

    data = tmp_path / "kms-data"
    material = base64.b64encode(os.urandom(32)).decode()
    project = PulumiProject(tmp_path, pulumi_bin, config={"kms-iac:target": "local", "kms-iac:dataDir": str(data)})
    project.run("config", "set", "--secret", "material", material)
    program = """
import pulumi
from kms_iac import resources as kms
key = kms.ExternalKey("byok", key_material=pulumi.Config().require_secret("material"), description="imported",
                      valid_to=VALID_TO, deletion_window_in_days=7)
pulumi.export("key_id", key.key_id)
"""
    project.write_program(program.replace("VALID_TO", "None"))
    project.up()
    kms = embedded_client(data)
    key_id = project.outputs()["key_id"]
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert md["Origin"] == "EXTERNAL" and md["KeyState"] == "Enabled" and md["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"mine")["CiphertextBlob"]
    # the material itself never reaches the state file in the clear
    assert material not in (project.state / ".pulumi").joinpath("stacks").rglob("*.json").__next__().read_text()
    project.run("preview", "--expect-no-changes")
    project.write_program(program.replace("VALID_TO", '"2099-01-01T00:00:00Z"'))
    project.up()
    assert project.outputs()["key_id"] == key_id  # same material, new expiry: in place
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert md["ExpirationModel"] == "KEY_MATERIAL_EXPIRES" and md["ValidTo"].year == 2099
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"mine"
    project.run("destroy", "--yes")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"


GRANT_PROGRAM = """
import pulumi
from kms_iac import resources as kms
key = kms.Key("k", description="granted")
grant = kms.Grant("app", key_id=key.key_id, grantee_principal="arn:aws:iam::111122223333:role/app",
                  operations=OPERATIONS, encryption_context_subset={"tenant": "a"}, name="app-use")
pulumi.export("key_id", key.key_id)
pulumi.export("grant_id", grant.grant_id)
"""


@pytest.mark.parametrize("where", ["moto", "server"])
def test_grant(where, tmp_path, pulumi_bin):
    with (MotoServer() if where == "moto" else ServerProcess(tmp_path / "server-data")) as peer:
        kms = peer.client()
        project = PulumiProject(tmp_path, pulumi_bin, config={"kms-iac:target": peer.url})
        project.write_program(GRANT_PROGRAM.replace("OPERATIONS", '["Encrypt", "Decrypt"]'))
        project.up()
        out = project.outputs()
        (grant,) = kms.list_grants(KeyId=out["key_id"])["Grants"]
        assert grant["GrantId"] == out["grant_id"] and sorted(grant["Operations"]) == ["Decrypt", "Encrypt"]
        assert grant["Constraints"] == {"EncryptionContextSubset": {"tenant": "a"}}
        project.run("preview", "--expect-no-changes")
        project.write_program(GRANT_PROGRAM.replace("OPERATIONS", '["Decrypt"]'))
        assert "replace" in project.run("preview", "--diff").stdout.lower()
        project.up()
        grants = kms.list_grants(KeyId=out["key_id"])["Grants"]
        assert [g["Operations"] for g in grants] == [["Decrypt"]] and grants[0]["GrantId"] != out["grant_id"]
        project.run("destroy", "--yes")
        assert kms.list_grants(KeyId=out["key_id"])["Grants"] == []


def test_cloudhsm_key_store_on_the_local_target(tmp_path, pulumi_bin):
    """HsmCluster (a SoftHSM2 token) -> CustomKeyStore (connected) -> a Key whose material stays in the token."""
    data = tmp_path / "kms-data"
    project = PulumiProject(tmp_path, pulumi_bin, config={"kms-iac:target": "local", "kms-iac:dataDir": str(data)})
    project.write_program("""
import pulumi
from kms_iac import resources as kms
cluster = kms.HsmCluster("hsm", name="tenants-hsm")
store = kms.CustomKeyStore("store", custom_key_store_name="tenants", cloud_hsm_cluster_id=cluster.cluster_id,
                           trust_anchor_certificate=cluster.trust_anchor_certificate,
                           key_store_password=cluster.key_store_password)
key = kms.Key("in-hsm", description="material in the HSM", custom_key_store_id=store.custom_key_store_id)
pulumi.export("store_id", store.custom_key_store_id)
pulumi.export("key_id", key.key_id)
pulumi.export("state", store.connection_state)
""")
    project.up()
    out = project.outputs()
    assert out["state"] == "CONNECTED" and out["store_id"].startswith("cks-")
    kms = embedded_client(data)
    md = kms.describe_key(KeyId=out["key_id"])["KeyMetadata"]
    assert md["Origin"] == "AWS_CLOUDHSM" and md["CustomKeyStoreId"] == out["store_id"]
    blob = kms.encrypt(KeyId=out["key_id"], Plaintext=b"in the token")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"in the token"
    project.run("preview", "--expect-no-changes")
    assert "keyStorePassword" not in project.run("stack", "output", "--json").stdout or \
        "[secret]" in project.run("stack", "export").stdout


def test_engine_accepts_the_provider_schema(tmp_path, pulumi_bin):
    """`pulumi package get-schema` binds the schema (what other languages' SDK generation starts from)."""
    import shutil
    import subprocess

    from kms_iac.engine import engine_env

    plugin = shutil.which("pulumi-resource-kms-iac", path=str(Path(sys.executable).parent))
    proc = subprocess.run(["pulumi", "package", "get-schema", plugin], capture_output=True, text=True, timeout=120,
                          env=engine_env(pulumi_bin, tmp_path / "state", tmp_path / "home"))
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    assert set(schema["resources"]) == {f"kms-iac:index:{n}" for n in
                                        ("Key", "Alias", "Grant", "ExternalKey", "ReplicaKey", "CustomKeyStore", "HsmCluster")}
    assert schema["resources"]["kms-iac:index:ExternalKey"]["inputProperties"]["keyMaterial"]["secret"] is True
    assert schema["resources"]["kms-iac:index:Key"]["inputProperties"]["keySpec"]["replaceOnChanges"] is True


def test_throttling_is_retried_with_backoff(tmp_path, pulumi_bin):
    """Against a server with a tight quota, `pulumi up` still succeeds: the provider retries ThrottlingException."""
    with ServerProcess(tmp_path / "server-data", "--requests-per-second", "4") as srv:
        project = PulumiProject(tmp_path, pulumi_bin, config={"kms-iac:target": srv.url})
        project.write_program("""
from kms_iac import resources as kms
for i in range(6):
    kms.Key(f"k{i}", description=f"key {i}", tags={"n": str(i)})
""")
        project.up()
        events = [json.loads(l) for l in (srv.data_dir / "audit.log").read_text().splitlines()]
        assert any(e.get("errorCode") == "ThrottlingException" for e in events)
        created = [e for e in events if e["eventName"] == "CreateKey" and not e.get("errorCode")]
        assert len(created) == 6
