"""The CloudTrail-format audit log, and seed fixtures."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
import yaml
from botocore.exceptions import ClientError

from kms_iac.backend.audit import read_events
from kms_iac.backend.core import Backend
from kms_iac.backend.embedded import embedded_client
from tests.helpers import NO_CLIENT_VALIDATION, ROOT


def test_every_call_is_audited_without_secrets(embedded, backend):
    kid = embedded.create_key(Description="audited")["KeyMetadata"]["KeyId"]
    dk = embedded.generate_data_key(KeyId=kid, KeySpec="AES_256", EncryptionContext={"t": "a"})
    blob = embedded.encrypt(KeyId=kid, Plaintext=b"TOP-SECRET-PLAINTEXT")["CiphertextBlob"]
    embedded.decrypt(CiphertextBlob=blob)
    with pytest.raises(ClientError):
        embedded.decrypt(CiphertextBlob=blob, EncryptionContext={"wrong": "x"})
    events = list(read_events(backend.data_dir))
    names = [e["eventName"] for e in events]
    assert names == ["CreateKey", "GenerateDataKey", "Encrypt", "Decrypt", "Decrypt"]
    for e in events:
        assert e["eventSource"] == "kms.amazonaws.com" and e["awsRegion"] == "us-east-1"
        assert e["userIdentity"]["arn"] == "arn:aws:iam::111122223333:root"
        assert e["eventType"] == "AwsApiCall" and e["recipientAccountId"] == "111122223333"
        assert {"eventTime", "requestID", "eventID", "readOnly", "resources"} <= set(e)
    gdk = events[1]
    assert gdk["requestParameters"] == {"keyId": kid, "keySpec": "AES_256", "encryptionContext": {"t": "a"}}
    assert gdk["responseElements"] is None and gdk["readOnly"] is True
    assert events[0]["responseElements"]["keyMetadata"]["keyId"] == kid
    assert events[-1]["errorCode"] == "InvalidCiphertextException"
    assert all(r["ARN"].endswith(kid) for r in events[2]["resources"])
    text = (backend.data_dir / "audit.log").read_bytes()
    for secret in (dk["Plaintext"], base64.b64encode(dk["Plaintext"]), b"TOP-SECRET-PLAINTEXT",
                   base64.b64encode(b"TOP-SECRET-PLAINTEXT"), base64.b64encode(blob)):
        assert secret not in text


def test_encryption_context_is_logged_verbatim(embedded, backend):
    """CloudTrail shows the caller's encryption context as sent: its keys keep their case, and a
    key that happens to share a secret member's name (Plaintext) is the caller's data, not a secret."""
    kid = embedded.create_key()["KeyMetadata"]["KeyId"]
    context = {"Plaintext": "tenant-a", "CiphertextBlob": "b", "Department": "10"}
    embedded.encrypt(KeyId=kid, Plaintext=b"x", EncryptionContext=context)
    (event,) = [e for e in read_events(backend.data_dir) if e["eventName"] == "Encrypt"]
    assert event["requestParameters"] == {"keyId": kid, "encryptionContext": context}


def test_no_plaintext_material_at_rest(tmp_path):
    seed_material = os.urandom(32)
    b = Backend(tmp_path / "kms")
    from kms_iac.backend.seed import seed

    seed(b, {"keys": [{"id": "11111111-2222-4333-8444-555555555555", "material": base64.b64encode(seed_material).decode()}]})
    kms = embedded_client(backend=b)
    kms.rotate_key_on_demand(KeyId="11111111-2222-4333-8444-555555555555")
    b.close()
    assert oct((tmp_path / "kms" / "root.key").stat().st_mode & 0o777) == "0o600"
    for f in (tmp_path / "kms").iterdir():
        if f.name == "root.key":
            continue
        assert seed_material not in f.read_bytes()


def test_audit_cli(tmp_path):
    data = tmp_path / "kms"
    b = Backend(data)
    kms = embedded_client(backend=b, config=NO_CLIENT_VALIDATION)
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=kid, Plaintext=b"x")
    with pytest.raises(ClientError):
        kms.describe_key(KeyId="nope")
    b.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    run = lambda *a: subprocess.run([sys.executable, "-m", "kms_iac", "local", "audit", "--data-dir", str(data), *a],
                                    capture_output=True, text=True, env=env, check=True).stdout
    table = run()
    assert "CreateKey" in table and "Encrypt" in table and "NotFoundException" in table
    errors = [json.loads(l) for l in run("--errors", "--json").splitlines()]
    assert [e["eventName"] for e in errors] == ["DescribeKey"]
    only = [json.loads(l) for l in run("--event", "Encrypt", "--json").splitlines()]
    assert len(only) == 1 and only[0]["resources"][0]["ARN"].endswith(kid)


SEED = {
    "keys": [
        {"id": "0b7f3c1e-1111-4222-8333-944445555666", "description": "orders",
         "material": base64.b64encode(b"\x01" * 32).decode(),
         "previous_materials": [base64.b64encode(b"\x02" * 32).decode()],
         "tags": {"tenant": "orders"}, "aliases": ["alias/orders"], "rotation": {"enabled": True, "period_days": 180}},
        {"id": "mrk-0123456789abcdef0123456789abcdef", "state": "Disabled",
         "policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}]}},
    ]
}


def test_seed_gives_deterministic_keys(tmp_path):
    f = tmp_path / "seed.yaml"
    f.write_text(yaml.safe_dump(SEED))
    blobs = []
    for run in ("a", "b"):
        data = tmp_path / run
        out = subprocess.run([sys.executable, "-m", "kms_iac", "local", "seed", str(f), "--data-dir", str(data)],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert out.returncode == 0, out.stderr
        assert "seeded 2 key(s) and 1 alias(es)" in out.stdout
        b = Backend(data)
        kms = embedded_client(backend=b)
        md = kms.describe_key(KeyId="alias/orders")["KeyMetadata"]
        assert md["KeyId"] == "0b7f3c1e-1111-4222-8333-944445555666" and md["Description"] == "orders"
        assert kms.get_key_rotation_status(KeyId=md["KeyId"])["RotationPeriodInDays"] == 180
        assert kms.list_resource_tags(KeyId=md["KeyId"])["Tags"] == [{"TagKey": "tenant", "TagValue": "orders"}]
        mrk = kms.describe_key(KeyId="mrk-0123456789abcdef0123456789abcdef")["KeyMetadata"]
        assert mrk["KeyState"] == "Disabled" and mrk["MultiRegion"] is True
        blobs.append(kms.encrypt(KeyId="alias/orders", Plaintext=b"same material")["CiphertextBlob"])
        b.close()
    # a ciphertext made on one seeded data dir decrypts on the other: same id, same material
    b = Backend(tmp_path / "a")
    assert embedded_client(backend=b).decrypt(CiphertextBlob=blobs[1])["Plaintext"] == b"same material"
    b.close()


@pytest.mark.parametrize("bad,needle", [
    ({"keys": [{"id": "not-an-id"}]}, "is not a KMS key id"),
    ({"keys": [{"id": "0b7f3c1e-1111-4222-8333-944445555666", "material": "AAAA"}]}, "must be 32 bytes"),
    ({"keys": [{"id": "0b7f3c1e-1111-4222-8333-944445555666", "aliases": ["alias/aws/x"]}]}, "invalid alias"),
    ({"keys": [{"id": "0b7f3c1e-1111-4222-8333-944445555666", "policy": "{"}]}, "invalid policy"),
])
def test_bad_seed_changes_nothing(tmp_path, bad, needle):
    from kms_iac.backend.seed import SeedError, seed

    b = Backend(tmp_path / "kms")
    good = {"id": "aaaaaaaa-1111-4222-8333-944445555666"}
    with pytest.raises(SeedError, match=needle):
        seed(b, {"keys": [good, *bad["keys"]]})
    assert embedded_client(backend=b).list_keys()["Keys"] == []
    b.close()
