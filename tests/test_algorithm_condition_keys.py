"""The algorithm condition keys of AWS KMS decide requests through both front doors:
kms:DataKeyPairSpec, kms:SigningAlgorithm, kms:MessageType, kms:KeyAgreementAlgorithm,
kms:EncryptionAlgorithm (including ReEncrypt's source and destination algorithms) and
kms:MacAlgorithm, each read from the request or, when omitted, from AWS's default."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from botocore.exceptions import ClientError

from kms_iac.backend.core import Backend
from kms_iac.backend.embedded import embedded_client
from tests.helpers import NO_CLIENT_VALIDATION, ServerProcess

A = "111122223333"
ROOT = ("AKIACONDKEYSROOT0001", "s-root")
APP = ("AKIACONDKEYSAPP00001", "s-app")
PRINCIPALS = {"accounts": {A: {"principals": [
    {"arn": f"arn:aws:iam::{A}:root", "access_key_id": ROOT[0], "secret_access_key": ROOT[1]},
    {"arn": f"arn:aws:iam::{A}:role/App", "access_key_id": APP[0], "secret_access_key": APP[1]},
]}}}


def policy(*conditions: tuple[list[str], dict]) -> str:
    """The default key policy plus one Allow for role/App per (actions, condition)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:root"}, "Action": "kms:*", "Resource": "*"},
        *[{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:role/App"}, "Action": actions, "Resource": "*",
           "Condition": condition} for actions, condition in conditions]]})


@pytest.fixture(scope="module", params=["embedded", "server"])
def door(request, tmp_path_factory):
    """(root client, App client) through one front door, signatures checked against PRINCIPALS."""
    work = tmp_path_factory.mktemp(f"condkeys-{request.param}")
    if request.param == "embedded":
        backend = Backend(work / "data")
        clients = [embedded_client(backend=backend, principals=PRINCIPALS, aws_access_key_id=akid,
                                   aws_secret_access_key=secret, config=NO_CLIENT_VALIDATION) for akid, secret in (ROOT, APP)]
        yield clients
        backend.close()
    else:
        path = work / "principals.yaml"
        path.write_text(yaml.safe_dump(PRINCIPALS))
        with ServerProcess(work / "data", "--principals", str(path)) as srv:
            yield [srv.client(aws_access_key_id=akid, aws_secret_access_key=secret) for akid, secret in (ROOT, APP)]


def denied(fn, **kw) -> None:
    with pytest.raises(ClientError) as e:
        fn(**kw)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException", e.value.response


def test_data_key_pair_spec(door):
    root, app = door
    kid = root.create_key(Policy=policy((["kms:GenerateDataKeyPair*"], {
        "StringLike": {"kms:DataKeyPairSpec": "ECC_NIST_*"},
        "StringEquals": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}})))["KeyMetadata"]["KeyId"]
    assert app.generate_data_key_pair(KeyId=kid, KeyPairSpec="ECC_NIST_P256")["KeyPairSpec"] == "ECC_NIST_P256"
    assert app.generate_data_key_pair_without_plaintext(KeyId=kid, KeyPairSpec="ECC_NIST_EDWARDS25519")["PublicKey"]
    denied(app.generate_data_key_pair, KeyId=kid, KeyPairSpec="RSA_2048")
    denied(app.generate_data_key_pair_without_plaintext, KeyId=kid, KeyPairSpec="ML_KEM_768")


def test_signing_algorithm_and_message_type(door):
    root, app = door
    kid = root.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY", Policy=policy(
        (["kms:Sign", "kms:Verify"], {"StringEquals": {"kms:SigningAlgorithm": "ED25519_SHA_512",
                                                        "kms:MessageType": "RAW"}})))["KeyMetadata"]["KeyId"]
    signature = app.sign(KeyId=kid, Message=b"m", SigningAlgorithm="ED25519_SHA_512")["Signature"]  # RAW by default
    assert app.verify(KeyId=kid, Message=b"m", Signature=signature, SigningAlgorithm="ED25519_SHA_512")["SignatureValid"]
    denied(app.sign, KeyId=kid, Message=hashlib.sha512(b"m").digest(), MessageType="DIGEST",
           SigningAlgorithm="ED25519_PH_SHA_512")
    assert root.sign(KeyId=kid, Message=hashlib.sha512(b"m").digest(), MessageType="DIGEST",
                     SigningAlgorithm="ED25519_PH_SHA_512")["Signature"]


def test_key_agreement_algorithm(door):
    root, app = door
    allowed = root.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT", Policy=policy(
        (["kms:DeriveSharedSecret", "kms:GetPublicKey"], {"StringEquals": {"kms:KeyAgreementAlgorithm": "ECDH"}})))
    # GetPublicKey has no kms:KeyAgreementAlgorithm, so that statement cannot allow it
    denied(app.get_public_key, KeyId=allowed["KeyMetadata"]["KeyId"])
    refused = root.create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT", Policy=policy(
        (["kms:DeriveSharedSecret"], {"StringNotEquals": {"kms:KeyAgreementAlgorithm": "ECDH"}})))
    peer = root.get_public_key(KeyId=allowed["KeyMetadata"]["KeyId"])["PublicKey"]
    assert app.derive_shared_secret(KeyId=allowed["KeyMetadata"]["KeyId"], KeyAgreementAlgorithm="ECDH",
                                    PublicKey=peer)["SharedSecret"]
    denied(app.derive_shared_secret, KeyId=refused["KeyMetadata"]["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=peer)


def test_encryption_algorithm_of_re_encrypt_sides(door):
    root, app = door
    only_oaep_256 = (["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*"],
                     {"StringEquals": {"kms:EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}})
    only_symmetric = (["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*"],
                      {"StringEquals": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}})
    rsa = root.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT", Policy=policy(only_oaep_256))["KeyMetadata"]["KeyId"]
    sym = root.create_key(Policy=policy(only_symmetric))["KeyMetadata"]["KeyId"]
    ct = app.encrypt(KeyId=rsa, Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    denied(app.encrypt, KeyId=rsa, Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_1")
    # ReEncryptFrom reads SourceEncryptionAlgorithm, ReEncryptTo DestinationEncryptionAlgorithm (default SYMMETRIC_DEFAULT)
    moved = app.re_encrypt(CiphertextBlob=ct, SourceKeyId=rsa, SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
                           DestinationKeyId=sym)["CiphertextBlob"]
    back = app.re_encrypt(CiphertextBlob=moved, DestinationKeyId=rsa, DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert app.decrypt(KeyId=rsa, CiphertextBlob=back["CiphertextBlob"], EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"p"
    denied(app.re_encrypt, CiphertextBlob=moved, DestinationKeyId=rsa, DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1")


def test_encryption_algorithm_of_data_keys_and_mac_algorithm(door):
    root, app = door
    no_symmetric = root.create_key(Policy=policy((["kms:GenerateDataKey*"], {
        "StringNotEquals": {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}})))["KeyMetadata"]["KeyId"]
    denied(app.generate_data_key, KeyId=no_symmetric, KeySpec="AES_256")  # data keys always use SYMMETRIC_DEFAULT
    denied(app.generate_data_key_pair, KeyId=no_symmetric, KeyPairSpec="ECC_NIST_P256")
    mac = root.create_key(KeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC", Policy=policy(
        (["kms:GenerateMac"], {"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_384"}})))["KeyMetadata"]["KeyId"]
    assert app.generate_mac(KeyId=mac, Message=b"m", MacAlgorithm="HMAC_SHA_384")["Mac"]
    wrong = root.create_key(KeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC", Policy=policy(
        (["kms:GenerateMac"], {"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_512"}})))["KeyMetadata"]["KeyId"]
    denied(app.generate_mac, KeyId=wrong, Message=b"m", MacAlgorithm="HMAC_SHA_384")
