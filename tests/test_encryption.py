"""Cryptographic operations: limits, encryption context binding, tamper detection,
envelope encryption, ReEncrypt, AWS managed keys."""

from __future__ import annotations

import base64
import os

import pytest
from botocore.exceptions import ClientError

ACCOUNT = "111122223333"


def err(excinfo) -> tuple[str, str]:
    e = excinfo.value.response["Error"]
    return e["Code"], e.get("Message", "")


@pytest.fixture
def key(kms):
    return kms.create_key()["KeyMetadata"]


def test_round_trip_and_response_fields(kms, key):
    out = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"secret")
    assert out["KeyId"] == key["Arn"] and out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert b"secret" not in out["CiphertextBlob"]
    dec = kms.decrypt(CiphertextBlob=out["CiphertextBlob"])  # KeyId optional for symmetric
    assert dec["Plaintext"] == b"secret" and dec["KeyId"] == key["Arn"]
    assert dec["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert dec["KeyMaterialId"] == key["CurrentKeyMaterialId"]
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], KeyId=key["Arn"])["Plaintext"] == b"secret"


def test_plaintext_limit_is_4096(kms, key):
    assert kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key["KeyId"], Plaintext=b"a" * 4096)["CiphertextBlob"])["Plaintext"] == b"a" * 4096
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"a" * 4097)
    assert err(e) == (
        "ValidationException",
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096",
    )


def test_encryption_context_is_bound(kms, key):
    ctx = {"tenant": "a", "purpose": "orders"}
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionContext=ctx)["CiphertextBlob"]
    # order of pairs never matters
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"purpose": "orders", "tenant": "a"})["Plaintext"] == b"p"
    for wrong in ({}, {"tenant": "b", "purpose": "orders"}, {"tenant": "a"}, {**ctx, "extra": "x"}):
        with pytest.raises(ClientError) as e:
            kms.decrypt(CiphertextBlob=blob, EncryptionContext=wrong)
        assert err(e) == ("InvalidCiphertextException", "")


def test_tampered_and_foreign_ciphertexts(kms, key):
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"payload")["CiphertextBlob"]
    for i in (len(blob) - 1, len(blob) // 2, 8):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(ClientError) as e:
            kms.decrypt(CiphertextBlob=bytes(bad))
        assert err(e)[0] == "InvalidCiphertextException"
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=blob[:-5])
    assert err(e) == ("InvalidCiphertextException", "")
    # an AWS-format blob (starts 0x01 0x02 0x02 0x00 0x78 ...) is not ours: refused as AWS refuses
    # any foreign blob, with no message
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=bytes([1, 2, 2, 0, 0x78]) + os.urandom(180))
    assert err(e) == ("InvalidCiphertextException", "") and "message" not in e.value.response


def test_incorrect_key(kms, key):
    other = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=blob, KeyId=other["KeyId"])
    assert err(e) == ("IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation.")


def test_disabled_key_refuses_all_crypto(kms, key):
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=key["KeyId"])
    msg = f"{key['Arn']} is disabled."
    calls = [
        lambda: kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x"),
        lambda: kms.decrypt(CiphertextBlob=blob),
        lambda: kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256"),
        lambda: kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], NumberOfBytes=16),
        lambda: kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=key["KeyId"]),
    ]
    for call in calls:
        with pytest.raises(ClientError) as e:
            call()
        assert err(e) == ("DisabledException", msg)
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_envelope_encryption(kms, key):
    ctx = {"object": "invoice-42"}
    dk = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext=ctx)
    assert len(dk["Plaintext"]) == 32 and dk["KeyId"] == key["Arn"]
    assert dk["Plaintext"] not in dk["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
    assert len(kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_128")["Plaintext"]) == 16
    assert len(kms.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=1024)["Plaintext"]) == 1024
    wo = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], KeySpec="AES_256")
    assert "Plaintext" not in wo
    assert len(kms.decrypt(CiphertextBlob=wo["CiphertextBlob"])["Plaintext"]) == 32


@pytest.mark.parametrize("kwargs", [{}, {"KeySpec": "AES_256", "NumberOfBytes": 32}])
def test_data_key_needs_exactly_one_size(kms, key, kwargs):
    with pytest.raises(ClientError) as e:
        kms.generate_data_key(KeyId=key["KeyId"], **kwargs)
    assert err(e) == ("ValidationException", "Please specify either number of bytes or key spec.")


@pytest.mark.parametrize("n,bound", [(0, "greater than or equal to 1"), (1025, "less than or equal to 1024")])
def test_number_of_bytes_bounds(kms, key, n, bound):
    with pytest.raises(ClientError) as e:
        kms.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=n)
    assert err(e) == (
        "ValidationException",
        f"1 validation error detected: Value '{n}' at 'numberOfBytes' failed to satisfy constraint: Member must have value {bound}",
    )


def test_re_encrypt_moves_between_keys_and_contexts(kms, key):
    dest = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"move me", EncryptionContext={"a": "1"})["CiphertextBlob"]
    out = kms.re_encrypt(
        CiphertextBlob=blob, SourceEncryptionContext={"a": "1"},
        DestinationKeyId=dest["KeyId"], DestinationEncryptionContext={"b": "2"},
    )
    assert out["SourceKeyId"] == key["Arn"] and out["KeyId"] == dest["Arn"]
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"b": "2"})["Plaintext"] == b"move me"
    with pytest.raises(ClientError) as e:
        kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=dest["KeyId"])  # source context missing
    assert err(e)[0] == "InvalidCiphertextException"


def test_generate_random(kms):
    a = kms.generate_random(NumberOfBytes=64)["Plaintext"]
    b = kms.generate_random(NumberOfBytes=64)["Plaintext"]
    assert len(a) == 64 and a != b
    with pytest.raises(ClientError) as e:
        kms.generate_random(NumberOfBytes=1025)
    assert err(e)[0] == "ValidationException"


def test_aws_managed_key_created_on_first_use(kms):
    blob = kms.encrypt(KeyId="alias/aws/ebs", Plaintext=b"volume key")["CiphertextBlob"]
    md = kms.describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]
    assert md["KeyManager"] == "AWS"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"volume key"
    assert kms.get_key_rotation_status(KeyId=md["KeyId"])["KeyRotationEnabled"] is True
    policy = kms.get_key_policy(KeyId=md["KeyId"], PolicyName="default")["Policy"]
    assert "kms:ViaService" in policy and "auto-ebs" in policy
    for call in (
        lambda: kms.disable_key(KeyId=md["KeyId"]),
        lambda: kms.schedule_key_deletion(KeyId=md["KeyId"], PendingWindowInDays=7),
        lambda: kms.put_key_policy(KeyId=md["KeyId"], PolicyName="default", Policy=policy),
        lambda: kms.disable_key_rotation(KeyId=md["KeyId"]),
    ):
        with pytest.raises(ClientError) as e:
            call()
        code, msg = err(e)
        assert code == "AccessDeniedException"
        assert msg.startswith(f"User: arn:aws:iam::{ACCOUNT}:root is not authorized to perform: kms:")
        assert msg.endswith("action") and md["Arn"] in msg
    # same key the second time
    assert kms.describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["KeyId"] == md["KeyId"]
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId="alias/aws/not-a-service")
    assert err(e)[0] == "NotFoundException"


def test_base64_wire_format_is_standard(server):
    """Raw protocol check: blobs travel as standard base64 strings."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    import json
    import urllib.request

    kms = server.client()
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    body = json.dumps({"KeyId": kid, "Plaintext": base64.b64encode(b"hi").decode()})
    req = botocore.awsrequest.AWSRequest("POST", server.url + "/", data=body, headers={
        "X-Amz-Target": "TrentService.Encrypt", "Content-Type": "application/x-amz-json-1.1"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials("AKIDTEST", "s"), "kms", "us-east-1").add_auth(req)
    with urllib.request.urlopen(urllib.request.Request(server.url + "/", data=body.encode(), headers=dict(req.headers))) as r:
        doc = json.loads(r.read())
        assert r.headers["Content-Type"] == "application/x-amz-json-1.1"
    base64.b64decode(doc["CiphertextBlob"], validate=True)
