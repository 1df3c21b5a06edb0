"""The components as a Pulumi component package: a Pulumi YAML program (runtime: yaml,
through pulumi-language-yaml) uses ``kms-iac:index:TenantKey`` from components/ via its
Pulumi.yaml ``packages:``, and ``pulumi up`` creates the key and its alias in the local
embedded backend."""

from __future__ import annotations

import json
import textwrap

import pytest

from kms_iac.backend.embedded import embedded_client
from kms_iac.engine import ROOT, PulumiProject, pulumi_bin_dir

pytestmark = pytest.mark.slow

A = "111122223333"

PROGRAM = textwrap.dedent(f"""\
    name: kms-iac-yaml-components
    runtime: yaml
    packages:
      kms-iac: {ROOT / "components"}
    resources:
      orders:
        type: kms-iac:index:TenantKey
        properties:
          tenant: orders
          keyAdministrators: ["arn:aws:iam::{A}:role/KeyAdmin"]
          keyUsers: ["arn:aws:iam::{A}:role/orders-app"]
          rotationPeriodInDays: 180
          tags:
            team: payments
    outputs:
      keyId: ${{orders.keyId}}
      keyArn: ${{orders.keyArn}}
      aliasName: ${{orders.aliasName}}
    """)


def test_tenant_key_from_a_yaml_program(tmp_path):
    data = tmp_path / "data"
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    (project_dir / "Pulumi.yaml").write_text(PROGRAM)
    project = PulumiProject(tmp_path, pulumi_bin_dir(), project_dir=project_dir,
                            config={"kms-iac:target": "local", "kms-iac:dataDir": str(data)})

    project.up()
    out = project.outputs()
    assert out["aliasName"] == "alias/tenants/orders"

    kms = embedded_client(data)
    meta = kms.describe_key(KeyId=out["keyId"])["KeyMetadata"]
    assert meta["Arn"] == out["keyArn"] and meta["KeyState"] == "Enabled"
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases(KeyId=out["keyId"])["Aliases"]}
    assert aliases == {"alias/tenants/orders": out["keyId"]}
    assert kms.get_key_rotation_status(KeyId=out["keyId"])["KeyRotationEnabled"] is True
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=out["keyId"])["Tags"]}
    key_urn = next(r["urn"] for r in project.resources() if r["type"] == "kms-iac:index:Key")
    from kms_iac.provider.orphans import URN_TAG, urn_tag_value  # the provider's own tag: the key's URN
    assert tags == {"team": "payments", "tenant": "orders", URN_TAG: urn_tag_value(key_urn)}
    policy = json.loads(kms.get_key_policy(KeyId=out["keyId"], PolicyName="default")["Policy"])
    assert any(f"arn:aws:iam::{A}:role/orders-app" in json.dumps(s.get("Principal")) for s in policy["Statement"])

    # the component and its children are in the stack, under the component's type token
    types = {r["type"] for r in project.resources()}
    assert {"kms-iac:index:TenantKey", "kms-iac:index:Key", "kms-iac:index:Alias"} <= types

    # a second up changes nothing; destroy removes the key (scheduled deletion) and the alias
    assert "unchanged" in project.up().stdout
    project.run("destroy", "--yes", "--skip-preview")
    assert kms.list_aliases(KeyId=out["keyId"])["Aliases"] == []
    assert kms.describe_key(KeyId=out["keyId"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
