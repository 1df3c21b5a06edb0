"""AWS's exact answers, through the real server and boto3: which KeyId forms each operation
takes, alias names, on-demand rotation, errors AWS sends without a message, validation
messages, ReplicateKey's first answer and the predefined AWS managed aliases."""

from __future__ import annotations

import base64
import html
import json
import re

import botocore.session
import pytest
from botocore.exceptions import ClientError

from kms_iac.backend import transitions
from kms_iac.backend.ops import KEY_ID_OR_ARN_ONLY, load_all
from kms_iac.backend.ops.keys import AWS_MANAGED_SERVICES
from kms_iac.backend.ops.rotation import MAX_ON_DEMAND_ROTATIONS, ON_DEMAND_ROTATION_SECONDS
from tests.test_protocol_errors import raw

KEY_ALIASES_REFUSED = ("InvalidArnException", "Key Aliases are not supported for this operation.")


def err(excinfo) -> tuple[str, str]:
    e = excinfo.value.response["Error"]
    return e["Code"], e.get("Message", "")


def _model():
    return botocore.session.get_session().get_service_model("kms")


def _key_doc(operation: str, member: str) -> str:
    doc = _model().operation_model(operation).input_shape.members[member].documentation
    return html.unescape(re.sub(r"<[^>]+>", " ", doc))


# -- which KeyId forms an operation takes -----------------------------------------------------


def test_the_key_id_only_table_follows_the_api_reference():
    """Every operation whose key member botocore documents as "the key ID or key ARN" (and never
    mentions alias names) is in the table, and every operation in the table is documented so."""
    documented_key_only = set()
    for op in _model().operation_names:
        shape = _model().operation_model(op).input_shape
        for member in ("KeyId", "TargetKeyId"):
            if shape is None or member not in shape.members:
                continue
            text = _key_doc(op, member)
            says_key_only = "key ID or key ARN" in text or "The key ARN" in text or "Alias names are not supported" in text
            if says_key_only and "alias name, or alias ARN" not in text:
                documented_key_only.add(op)
    assert documented_key_only == set(KEY_ID_OR_ARN_ONLY)
    implemented = load_all()
    assert all(op in implemented for op in KEY_ID_OR_ARN_ONLY)


def _request_for(op: str, key_ref: str, key_arn: str) -> dict:
    """A request to ``op`` naming the key ``key_ref``, otherwise valid."""
    extra = {
        "CreateGrant": {"GranteePrincipal": "arn:aws:iam::111122223333:root", "Operations": ["Decrypt"]},
        "RevokeGrant": {"GrantId": "0" * 64},
        "RetireGrant": {"GrantId": "0" * 64},
        "GetKeyPolicy": {"PolicyName": "default"},
        "PutKeyPolicy": {"PolicyName": "default", "Policy": json.dumps({"Version": "2012-10-17", "Statement": []})},
        "TagResource": {"Tags": [{"TagKey": "k", "TagValue": "v"}]},
        "UntagResource": {"TagKeys": ["k"]},
        "UpdateKeyDescription": {"Description": "d"},
        "GetParametersForImport": {"WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"},
        "ImportKeyMaterial": {"ImportToken": "dG9rZW4=", "EncryptedKeyMaterial": "bWF0ZXJpYWw="},
        "ReplicateKey": {"ReplicaRegion": "eu-west-1"},
        "UpdatePrimaryRegion": {"PrimaryRegion": "eu-west-1"},
        "CreateAlias": {"AliasName": "alias/never-created"},
        "UpdateAlias": {"AliasName": "alias/never-created"},
    }.get(op, {})
    member = "TargetKeyId" if op in ("CreateAlias", "UpdateAlias") else "KeyId"
    return {member: key_ref, **extra}


@pytest.mark.parametrize("op", sorted(KEY_ID_OR_ARN_ONLY - {"CreateAlias", "UpdateAlias"}))
def test_key_only_operations_refuse_an_alias_before_looking_it_up(server, op):
    kms = server.client()
    key = kms.create_key(Description=f"{op} target")["KeyMetadata"]
    name = f"alias/answers-{op.lower()}"
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    alias_arn = key["Arn"].split(":key/")[0] + ":" + name
    missing = "alias/answers-never-created"
    for ref in (name, alias_arn, missing):
        status, doc = raw(server, f"TrentService.{op}", json.dumps(_request_for(op, ref, key["Arn"])).encode())
        assert (status, doc["__type"], doc.get("message")) == (400, *KEY_ALIASES_REFUSED), (op, ref, doc)
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Description"] == f"{op} target"  # nothing changed


def test_alias_targets_are_keys_not_aliases(server):
    kms = server.client()
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/answers-target", TargetKeyId=key["KeyId"])
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/answers-second", TargetKeyId="alias/answers-target")
    assert err(e) == ("ValidationException", "Aliases must refer to keys. Not aliases")


def test_operations_documented_with_aliases_take_them(server):
    kms = server.client()
    key = kms.create_key()["KeyMetadata"]
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    kms.create_alias(AliasName="alias/answers-crypto", TargetKeyId=key["KeyId"])
    kms.create_alias(AliasName="alias/answers-signing", TargetKeyId=signing["KeyId"])
    alias_arn = key["Arn"].split(":key/")[0] + ":alias/answers-crypto"
    assert kms.describe_key(KeyId=alias_arn)["KeyMetadata"]["KeyId"] == key["KeyId"]
    blob = kms.encrypt(KeyId="alias/answers-crypto", Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, KeyId=alias_arn)["Plaintext"] == b"x"
    assert kms.generate_data_key(KeyId="alias/answers-crypto", KeySpec="AES_256")["KeyId"] == key["Arn"]
    assert kms.get_public_key(KeyId="alias/answers-signing")["KeyId"] == signing["Arn"]


# -- alias names ------------------------------------------------------------------------------


def test_alias_names_keep_to_letters_digits_slash_underscore_dash(server):
    kms = server.client()
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    for call in (kms.create_alias, kms.update_alias):
        with pytest.raises(ClientError) as e:
            call(AliasName="alias/my:alias", TargetKeyId=key)
        assert err(e) == ("ValidationException", "alias/my:alias contains invalid characters for an alias")
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/my alias", TargetKeyId=key)
    pattern = _model().operation_model("CreateAlias").input_shape.members["AliasName"].metadata["pattern"]
    assert err(e) == ("ValidationException", "1 validation error detected: Value 'alias/my alias' at 'aliasName' failed "
                                             f"to satisfy constraint: Member must satisfy regular expression pattern: {pattern}")
    kms.create_alias(AliasName="alias/answers/ok_name-1", TargetKeyId=key)
    names = [a["AliasName"] for a in kms.list_aliases(KeyId=key)["Aliases"]]
    assert names == ["alias/answers/ok_name-1"]


# -- on-demand rotation -------------------------------------------------------------------------


def test_rotate_on_demand_answers_the_arn_and_finishes_within_seconds(server):
    kms = server.client()
    md = kms.create_key()["KeyMetadata"]
    kms.enable_key_rotation(KeyId=md["KeyId"])
    before = kms.get_key_rotation_status(KeyId=md["KeyId"])
    assert kms.rotate_key_on_demand(KeyId=md["KeyId"])["KeyId"] == md["Arn"]
    during = kms.get_key_rotation_status(KeyId=md["KeyId"])
    assert "OnDemandRotationStartDate" in during and during["NextRotationDate"] == before["NextRotationDate"]
    server.advance_clock(ON_DEMAND_ROTATION_SECONDS)
    after = kms.get_key_rotation_status(KeyId=md["KeyId"])
    assert "OnDemandRotationStartDate" not in after and after["KeyRotationEnabled"] is True
    (rotation,) = kms.list_key_rotations(KeyId=md["KeyId"])["Rotations"]
    assert rotation["RotationType"] == "ON_DEMAND"
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"] == rotation["KeyMaterialId"]


def test_on_demand_rotation_quota_is_25(server):
    kms = server.client()
    md = kms.create_key()["KeyMetadata"]
    assert MAX_ON_DEMAND_ROTATIONS == 25
    for _ in range(25):
        kms.rotate_key_on_demand(KeyId=md["KeyId"])
    with pytest.raises(ClientError) as e:
        kms.rotate_key_on_demand(KeyId=md["KeyId"])
    assert err(e)[0] == "LimitExceededException"
    assert len(kms.list_key_rotations(KeyId=md["KeyId"])["Rotations"]) == 25


@pytest.mark.parametrize("spec,usage", [("RSA_2048", "ENCRYPT_DECRYPT"), ("HMAC_256", "GENERATE_VERIFY_MAC")])
def test_rotate_on_demand_of_a_non_symmetric_key_has_no_message(server, spec, usage):
    kms = server.client()
    md = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
    status, doc = raw(server, "TrentService.RotateKeyOnDemand", json.dumps({"KeyId": md["KeyId"]}).encode())
    assert (status, doc) == (400, {"__type": "UnsupportedOperationException"})


# -- errors AWS sends without a message -----------------------------------------------------------


def test_signature_mac_and_ciphertext_refusals_carry_no_message(server):
    kms = server.client()
    signing = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    bad_sig = {"KeyId": signing, "Message": "bWVzc2FnZQ==", "Signature": "MEQCIA" + "A" * 90,
               "SigningAlgorithm": "ECDSA_SHA_256"}
    bad_mac = {"KeyId": mac_key, "Message": "bWVzc2FnZQ==", "Mac": "A" * 44, "MacAlgorithm": "HMAC_SHA_256"}
    foreign = {"CiphertextBlob": base64.b64encode(bytes([1, 2, 2, 0, 0x78]) + bytes(180)).decode()}  # AWS's format
    for op, body, code in (("Verify", bad_sig, "KMSInvalidSignatureException"),
                           ("VerifyMac", bad_mac, "KMSInvalidMacException"),
                           ("Decrypt", foreign, "InvalidCiphertextException")):
        status, doc = raw(server, f"TrentService.{op}", json.dumps(body).encode())
        assert (status, doc) == (400, {"__type": code}), op
    with pytest.raises(ClientError) as e:  # what boto3 users see
        kms.verify(**{**bad_sig, "Message": b"message", "Signature": b"\x30\x06\x02\x01\x01\x02\x01\x01"})
    assert err(e) == ("KMSInvalidSignatureException", "") and "message" not in e.value.response


# -- validation messages list enums in the service model's order ---------------------------------


@pytest.mark.parametrize("op,member,body", [
    ("CreateKey", "KeySpec", {"KeySpec": "BAD"}),
    ("CreateKey", "KeyUsage", {"KeyUsage": "BAD"}),
    ("Encrypt", "EncryptionAlgorithm", {"KeyId": "alias/x", "Plaintext": "eA==", "EncryptionAlgorithm": "BAD"}),
    ("GetParametersForImport", "WrappingAlgorithm",
     {"KeyId": "alias/x", "WrappingAlgorithm": "BAD", "WrappingKeySpec": "RSA_2048"}),
])
def test_enum_lists_keep_the_model_order(server, op, member, body):
    enum = _model().operation_model(op).input_shape.members[member].enum
    assert list(enum) != sorted(enum)  # the order is the model's, which is not sorted
    status, doc = raw(server, f"TrentService.{op}", json.dumps(body).encode())
    path = member[0].lower() + member[1:]
    assert (status, doc["__type"]) == (400, "ValidationException")
    assert doc["message"] == (f"1 validation error detected: Value 'BAD' at '{path}' failed to satisfy constraint: "
                              f"Member must satisfy enum value set: [{', '.join(enum)}]")


# -- ReplicateKey's first answer, and the replica a few seconds later ------------------------------


def test_replicate_key_answers_creating_and_the_replica_is_enabled_seconds_later(server):
    us, eu = server.client(), server.client(region="eu-west-2")
    primary = us.create_key(MultiRegion=True, Description="primary's own description")["KeyMetadata"]
    out = us.replicate_key(KeyId=primary["KeyId"], ReplicaRegion="eu-west-2")
    rep = out["ReplicaKeyMetadata"]
    assert (rep["KeyState"], rep["Enabled"], rep["Description"]) == ("Creating", False, "")
    assert "CurrentKeyMaterialId" not in rep and "ReplicaTags" not in out and out["ReplicaPolicy"]
    assert rep["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert eu.describe_key(KeyId=rep["Arn"])["KeyMetadata"]["KeyState"] == "Creating"
    with pytest.raises(ClientError) as e:
        eu.encrypt(KeyId=rep["Arn"], Plaintext=b"too early")
    assert err(e) == ("KMSInvalidStateException", f"{rep['Arn']} is creating.")
    server.advance_clock(transitions.REPLICA_CREATION_SECONDS)
    md = eu.describe_key(KeyId=rep["Arn"])["KeyMetadata"]
    assert (md["KeyState"], md["Enabled"], md["Description"]) == ("Enabled", True, "")
    assert md["CurrentKeyMaterialId"] == us.describe_key(KeyId=primary["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    blob = us.encrypt(KeyId=primary["KeyId"], Plaintext=b"shared")["CiphertextBlob"]
    assert eu.decrypt(CiphertextBlob=blob)["Plaintext"] == b"shared"
    with pytest.raises(ClientError) as e:  # only a primary key can be replicated
        eu.replicate_key(KeyId=rep["Arn"], ReplicaRegion="ap-southeast-2")
    assert err(e) == ("UnsupportedOperationException", f"{rep['Arn']} is not a multi-Region primary key.")


def test_replicate_key_with_tags_and_description(server):
    us = server.client()
    primary = us.create_key(MultiRegion=True)["KeyMetadata"]
    out = us.replicate_key(KeyId=primary["KeyId"], ReplicaRegion="ca-central-1", Description="in Canada",
                           Tags=[{"TagKey": "team", "TagValue": "orders"}])
    assert out["ReplicaKeyMetadata"]["Description"] == "in Canada"
    assert out["ReplicaTags"] == [{"TagKey": "team", "TagValue": "orders"}]


# -- ListAliases: the AWS managed aliases a fresh account lists ----------------------------------


def test_list_aliases_lists_predefined_aws_aliases_without_a_key(tmp_path):
    from tests.helpers import ServerProcess

    with ServerProcess(tmp_path / "fresh-account") as srv:  # a fresh account: no key yet
        kms = srv.client()
        aliases = [a for page in kms.get_paginator("list_aliases").paginate() for a in page["Aliases"]]
        predefined = {f"alias/aws/{service}" for service in AWS_MANAGED_SERVICES}
        assert {a["AliasName"] for a in aliases} == predefined
        s3 = next(a for a in aliases if a["AliasName"] == "alias/aws/s3")
        assert s3 == {"AliasName": "alias/aws/s3", "AliasArn": "arn:aws:kms:us-east-1:111122223333:alias/aws/s3"}
        assert kms.list_keys()["Keys"] == []
        key = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]  # first use creates the AWS managed key
        s3 = next(a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/aws/s3")
        assert s3["TargetKeyId"] == key["KeyId"] and "CreationDate" in s3
        assert [a["AliasName"] for a in kms.list_aliases(KeyId=key["KeyId"])["Aliases"]] == ["alias/aws/s3"]
        mine = kms.create_key()["KeyMetadata"]["KeyId"]
        assert kms.list_aliases(KeyId=mine)["Aliases"] == []
