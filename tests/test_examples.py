"""Every example program: a plain `pulumi up` (its preview included), its outputs checked
against the backend, then `pulumi destroy`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from kms_iac.backend.embedded import embedded_client
from kms_iac.engine import VENV_BIN, PulumiProject, pulumi_bin_dir
from tests.helpers import ROOT, ServerProcess

pytestmark = pytest.mark.slow
EXAMPLES = ROOT / "examples"


def project_for(example: str, tmp_path: Path, config: dict[str, str]) -> PulumiProject:
    src = EXAMPLES / example
    work = tmp_path / example
    shutil.copytree(src, work / "project")
    (work / "project" / "Pulumi.yaml").write_text(
        f"name: kms-iac-example-{example.replace('_', '-')}\nruntime:\n  name: python\n  options:\n"
        f"    virtualenv: {VENV_BIN.parent}\n")
    return PulumiProject(work, pulumi_bin_dir(), project_dir=work / "project", config=config)


def local(tmp_path: Path) -> tuple[dict[str, str], Path]:
    data = tmp_path / "kms-data"
    return {"kms-iac:target": "local", "kms-iac:dataDir": str(data)}, data


def test_every_example_has_a_readme_and_a_test() -> None:
    examples = sorted(p.name for p in EXAMPLES.iterdir() if (p / "__main__.py").exists())
    assert examples == ["byok", "cloudhsm", "cross_account", "envelope_app", "multi_region", "multi_tenant",
                        "tenant_keys"]
    for name in examples:
        assert name == "multi_tenant" or (EXAMPLES / name / "README.md").exists(), name


def test_tenant_keys(tmp_path) -> None:
    config, data = local(tmp_path)
    p = project_for("tenant_keys", tmp_path, config)
    p.run("up", "--yes")
    out = p.outputs()
    kms = embedded_client(data)
    assert kms.describe_key(KeyId="alias/tenants/acme")["KeyMetadata"]["Arn"] == out["acme_key_arn"]
    assert kms.get_key_rotation_status(KeyId=out["acme_key_arn"])["RotationPeriodInDays"] == 180
    assert out["fleet_aliases"] == {"globex": "alias/customers/globex", "initech": "alias/customers/initech"}
    p.run("destroy", "--yes")
    assert kms.describe_key(KeyId=out["fleet_keys"]["initech"])["KeyMetadata"]["PendingDeletionWindowInDays"] == 14


def test_cross_account(tmp_path) -> None:
    config, data = local(tmp_path)
    p = project_for("cross_account", tmp_path, config)
    p.run("up", "--yes")
    out = p.outputs()
    kms = embedded_client(data)
    policy = json.loads(kms.get_key_policy(KeyId=out["key_arn"], PolicyName="default")["Policy"])
    cross = next(s for s in policy["Statement"] if s["Sid"].startswith("CrossAccount"))
    assert cross["Condition"]["StringEquals"] == {"kms:CallerAccount": "444455556666",
                                                  "kms:ViaService": "s3.us-east-1.amazonaws.com"}
    (grant,) = kms.list_grants(KeyId=out["key_arn"])["Grants"]
    assert grant["GrantId"] == next(iter(out["grant_ids"].values()))
    assert grant["Constraints"] == {"EncryptionContextSubset": {"tenant": "hooli"}}
    p.run("destroy", "--yes")
    assert kms.list_grants(KeyId=out["key_arn"])["Grants"] == []


def test_cloudhsm(tmp_path) -> None:
    """On a server with a movable clock: the key store goes once its key's waiting period is over."""
    with ServerProcess(tmp_path / "server-data", "--clock-control") as srv:
        p = project_for("cloudhsm", tmp_path, {"kms-iac:target": srv.url, "kms-iac:dataDir": str(srv.data_dir)})
        p.run("up", "--yes")
        out = p.outputs()
        assert out["connection_state"] == "CONNECTED"
        kms = srv.client()
        md = kms.describe_key(KeyId=out["key_arn"])["KeyMetadata"]
        assert md["Origin"] == "AWS_CLOUDHSM" and md["CustomKeyStoreId"] == out["key_store_id"]
        first = p.run("destroy", "--yes", check=False)
        assert first.returncode != 0 and kms.describe_key(KeyId=out["key_arn"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
        req = urllib.request.Request(srv.url, data=json.dumps({"Seconds": 31 * 86400}).encode(), method="POST",
                                     headers={"X-Amz-Target": "KmsIacAdmin.AdvanceClock",
                                              "Content-Type": "application/x-amz-json-1.1"})
        urllib.request.urlopen(req, timeout=60).read()
        p.run("destroy", "--yes")
        assert kms.describe_custom_key_stores()["CustomKeyStores"] == []


def test_byok(tmp_path) -> None:
    config, data = local(tmp_path)
    p = project_for("byok", tmp_path, config)
    p.run("config", "set", "--secret", "keyMaterial", base64.b64encode(os.urandom(32)).decode())
    p.run("up", "--yes")
    kms = embedded_client(data)
    md = kms.describe_key(KeyId=p.outputs()["key_arn"])["KeyMetadata"]
    assert md["Origin"] == "EXTERNAL" and md["KeyState"] == "Enabled"
    p.run("destroy", "--yes")


def test_multi_region(tmp_path) -> None:
    config, data = local(tmp_path)
    p = project_for("multi_region", tmp_path, config)
    p.run("up", "--yes")
    out = p.outputs()
    assert set(out["replica_arns"]) == {"eu-west-1", "ap-southeast-2"}
    blob = embedded_client(data).encrypt(KeyId=out["key_arn"], Plaintext=b"everywhere")["CiphertextBlob"]
    eu = embedded_client(data, region="eu-west-1")
    assert eu.decrypt(CiphertextBlob=blob)["Plaintext"] == b"everywhere"
    assert eu.describe_key(KeyId="alias/tenants/global")["KeyMetadata"]["Arn"] == out["replica_arns"]["eu-west-1"]
    p.run("destroy", "--yes")


def test_envelope_app(tmp_path) -> None:
    config, data = local(tmp_path)
    p = project_for("envelope_app", tmp_path, config)
    p.run("up", "--yes")
    key_arn = p.outputs()["key_arn"]
    plain = tmp_path / "report.bin"
    plain.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    app = [sys.executable, str(p.dir / "encrypt_file.py")]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*app, *args, "--data-dir", str(data)], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    enc, dec = tmp_path / "report.enc", tmp_path / "report.out"
    assert run("encrypt", key_arn, str(plain), str(enc), "--tenant", "files").returncode == 0
    assert plain.read_bytes()[:4096] not in enc.read_bytes()
    assert run("decrypt", key_arn, str(enc), str(dec), "--tenant", "files").returncode == 0
    assert dec.read_bytes() == plain.read_bytes()
    wrong = run("decrypt", key_arn, str(enc), str(tmp_path / "x"), "--tenant", "acme")
    assert wrong.returncode == 1 and "encrypted for tenant 'files'" in wrong.stderr
    p.run("destroy", "--yes")
