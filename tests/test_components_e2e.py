"""The components with the real Pulumi engine: a tenant fleet whose tenants come and go
touching only their own resources, and whose cross-account sharing is enforced by the
backend's authorization (a partner reaches its tenant's key and nothing else)."""

from __future__ import annotations

import json
import shutil

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from kms_iac.backend.embedded import embedded_client
from kms_iac.engine import VENV_BIN, PulumiProject, pulumi_bin_dir
from kms_iac.rules.adapters.live_data_dir import scan_data_dir
from kms_iac.rules.engine import evaluate
from tests.helpers import NO_CLIENT_VALIDATION, ROOT, ServerProcess

pytestmark = pytest.mark.slow

A, PARTNER, OUTSIDER = "111122223333", "444455556666", "777788889999"
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
CREDS = {
    "root": (f"arn:aws:iam::{A}:root", "AKIAFLEETROOT0000001", "s-root"),
    "partner": (f"arn:aws:iam::{PARTNER}:role/hooli-analytics", "AKIAFLEETPARTNER0001", "s-partner"),
    "outsider": (f"arn:aws:iam::{OUTSIDER}:role/snoop", "AKIAFLEETOUTSIDER001", "s-outsider"),
}
PRINCIPALS = {"accounts": {
    A: {"principals": [{"arn": CREDS["root"][0], "access_key_id": CREDS["root"][1], "secret_access_key": CREDS["root"][2]}]},
    PARTNER: {"principals": [{"arn": CREDS["partner"][0], "access_key_id": CREDS["partner"][1],
                              "secret_access_key": CREDS["partner"][2], "policies": [ALLOW_ALL]}]},
    OUTSIDER: {"principals": [{"arn": CREDS["outsider"][0], "access_key_id": CREDS["outsider"][1],
                               "secret_access_key": CREDS["outsider"][2], "policies": [ALLOW_ALL]}]},
}}

PROGRAM = """
import pulumi
from kms_iac.components import TenantKeyFleet
fleet = TenantKeyFleet("tenants", tenants_file="tenants.yaml")
pulumi.export("keys", fleet.keys)
pulumi.export("aliases", fleet.aliases)
"""


def tenants_yaml(*tenants: str) -> str:
    entries = []
    for t in tenants:
        e = {"tenant": t, "key_users": [f"arn:aws:iam::{A}:role/{t}-app"]}
        if t == "hooli":
            e["cross_account_principals"] = [CREDS["partner"][0]]
        entries.append(e)
    return yaml.safe_dump({"defaults": {"key_administrators": [f"arn:aws:iam::{A}:role/KeyAdmin"]}, "tenants": entries})


def client(srv, who: str):
    _, akid, secret = CREDS[who]
    return boto3.client("kms", endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id=akid,
                        aws_secret_access_key=secret, config=NO_CLIENT_VALIDATION)


def denied(fn, **kw) -> None:
    with pytest.raises(ClientError) as e:
        fn(**kw)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException", e.value.response


def test_fleet_add_remove_and_partner_access(tmp_path):
    principals = tmp_path / "principals.yaml"
    principals.write_text(yaml.safe_dump(PRINCIPALS))
    with ServerProcess(tmp_path / "data", "--principals", str(principals)) as srv:
        _, akid, secret = CREDS["root"]
        project = PulumiProject(tmp_path, pulumi_bin_dir(), config={"kms-iac:target": srv.url},
                                env={"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret})
        project.write_program(PROGRAM)
        (project.dir / "tenants.yaml").write_text(tenants_yaml("acme", "globex", "hooli"))
        project.run("up", "--yes")  # with its preview: unknown values must preview
        first = project.outputs()
        assert set(first["keys"]) == {"acme", "globex", "hooli"}
        assert first["aliases"]["hooli"] == "alias/tenants/hooli"

        # the partner decrypts with its tenant's key; not with another tenant's; an outsider with neither
        root, partner, outsider = client(srv, "root"), client(srv, "partner"), client(srv, "outsider")
        hooli_blob = root.encrypt(KeyId=first["keys"]["hooli"], Plaintext=b"shared")["CiphertextBlob"]
        acme_blob = root.encrypt(KeyId=first["keys"]["acme"], Plaintext=b"private")["CiphertextBlob"]
        assert partner.decrypt(CiphertextBlob=hooli_blob)["Plaintext"] == b"shared"
        assert partner.generate_data_key(KeyId=first["keys"]["hooli"], KeySpec="AES_256")["KeyId"] == first["keys"]["hooli"]
        denied(partner.decrypt, CiphertextBlob=acme_blob)
        denied(outsider.decrypt, CiphertextBlob=hooli_blob)
        denied(outsider.decrypt, CiphertextBlob=acme_blob)
        denied(partner.schedule_key_deletion, KeyId=first["keys"]["hooli"], PendingWindowInDays=7)

        # add a tenant and remove another: only theirs change
        (project.dir / "tenants.yaml").write_text(tenants_yaml("acme", "hooli", "newco"))
        steps = json.loads(project.run("preview", "--json").stdout)["steps"]
        changed = {s["urn"].rsplit("::", 1)[-1]: s["op"] for s in steps if s["op"] != "same"}
        changed.pop("kms-iac-test-test", None)  # the stack's outputs
        assert changed and all(name.startswith(("tenants-globex", "tenants-newco")) for name in changed), changed
        assert {op for n, op in changed.items() if "globex" in n} == {"delete"}
        assert {op for n, op in changed.items() if "newco" in n} == {"create"}
        project.run("up", "--yes")
        second = project.outputs()
        assert set(second["keys"]) == {"acme", "hooli", "newco"}
        assert second["keys"]["acme"] == first["keys"]["acme"] and second["keys"]["hooli"] == first["keys"]["hooli"]
        gone = root.describe_key(KeyId=first["keys"]["globex"])["KeyMetadata"]
        assert gone["KeyState"] == "PendingDeletion" and gone["PendingDeletionWindowInDays"] == 30
        project.run("preview", "--expect-no-changes")
        project.run("destroy", "--yes")


def test_root_program_deploys_and_passes_the_rules(tmp_path):
    """The main job's program (root Pulumi.yaml) on a fresh embedded backend: every key it
    deploys passes KMS001-KMS016, and a second run changes nothing."""
    project_dir = tmp_path / "root"
    shutil.copytree(ROOT / "examples" / "multi_tenant", project_dir / "examples" / "multi_tenant")
    # The root project's relative paths (its virtualenv and the provider's directory), made absolute.
    (project_dir / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text()
                                             .replace("virtualenv: .venv", f"virtualenv: {VENV_BIN.parent}")
                                             .replace("path: .venv/bin", f"path: {VENV_BIN}"))
    data = tmp_path / "kms-data"
    project = PulumiProject(tmp_path / "work", pulumi_bin_dir(), project_dir=project_dir,
                            config={"kms-iac:target": "local", "kms-iac:dataDir": str(data)})
    project.run("up", "--yes")
    out = project.outputs()
    assert set(out["keys"]) == {"acme", "globex", "initech", "umbrella", "hooli"}
    kms = embedded_client(data)
    assert kms.describe_key(KeyId=out["keys"]["umbrella"])["KeyMetadata"]["Origin"] == "AWS_CLOUDHSM"
    assert kms.describe_key(KeyId=out["signing_key_arn"])["KeyMetadata"]["KeyUsage"] == "SIGN_VERIFY"
    views = [v for v in scan_data_dir(data).keys if v.arn in {*out["keys"].values(), out["signing_key_arn"]}]
    assert len(views) == 6
    failures = [(f.resource, f.rule, f.message) for f in evaluate(views) if f.status == "FAIL"]
    assert failures == []
    project.run("preview", "--expect-no-changes")
