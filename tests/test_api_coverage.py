"""The whole KMS API: every operation in botocore's KMS model has an implementation, and each
one answers a valid minimal request through the HTTP server (a real ``kms-iac local serve``
and boto3), so none is merely registered.

A new botocore that adds an operation fails :func:`test_every_operation_is_implemented` and,
until a case is written here, :func:`test_every_operation_has_a_smoke_case`."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
import uuid
from typing import Any, Callable

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from kms_iac.backend import hsm
from kms_iac.backend.model import service_model
from kms_iac.backend.ops import load_all

PIN = "kmsuser-smoke1"
GRANTEE = "arn:aws:iam::111122223333:role/SmokeGrantee"


def model_operations() -> list[str]:
    return sorted(service_model().operation_names)


def test_every_operation_is_implemented():
    missing = sorted(set(model_operations()) - set(load_all()))
    assert not missing, f"KMS operations with no implementation in OPERATIONS: {missing}"


class Smoke:
    """Makes, through the server, what each operation's minimal request names."""

    def __init__(self, server) -> None:
        self.server = server
        self.kms = server.client()

    def key(self, spec: str = "SYMMETRIC_DEFAULT", usage: str | None = None, **kw: Any) -> str:
        params = {"KeySpec": spec, **({"KeyUsage": usage} if usage else {}), **kw}
        return self.kms.create_key(**params)["KeyMetadata"]["KeyId"]

    def alias(self, key_id: str) -> str:
        name = f"alias/smoke-{uuid.uuid4().hex[:12]}"
        self.kms.create_alias(AliasName=name, TargetKeyId=key_id)
        return name

    def grant(self, key_id: str) -> str:
        return self.kms.create_grant(KeyId=key_id, GranteePrincipal=GRANTEE, Operations=["Decrypt"],
                                     RetiringPrincipal=GRANTEE)["GrantId"]

    def ciphertext(self, key_id: str) -> bytes:
        return self.kms.encrypt(KeyId=key_id, Plaintext=b"smoke")["CiphertextBlob"]

    def external_key(self, imported: bool) -> tuple[str, dict]:
        key_id = self.key(Origin="EXTERNAL")
        params = self.kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                                    WrappingKeySpec="RSA_2048")
        wrapping = serialization.load_der_public_key(params["PublicKey"])
        pad = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        request = {"KeyId": key_id, "ImportToken": params["ImportToken"],
                   "EncryptedKeyMaterial": wrapping.encrypt(os.urandom(32), pad),
                   "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}
        if imported:
            self.kms.import_key_material(**request)
        return key_id, request

    def key_store(self, connected: bool) -> str | None:
        """A CloudHSM key store on a new SoftHSM2 cluster (None where SoftHSM2 is missing)."""
        if not hsm.available():
            return None
        cluster = self.cluster()
        store_id = self.kms.create_custom_key_store(**cluster)["CustomKeyStoreId"]
        if connected:
            self.kms.connect_custom_key_store(CustomKeyStoreId=store_id)
        return store_id

    def cluster(self) -> dict:
        from kms_iac.backend.ops.custom_key_stores import create_cluster

        name = f"smoke-{uuid.uuid4().hex[:8]}"
        cl = create_cluster(self.server.data_dir, name, user_pin=PIN)
        return {"CustomKeyStoreName": name, "CloudHsmClusterId": cl["ClusterId"],
                "TrustAnchorCertificate": cl["TrustAnchorCertificate"], "KeyStorePassword": PIN}


def _multi_region_replica(s: Smoke) -> dict:
    """A primary key whose us-west-2 replica has finished Creating (2 s of the server's clock,
    moved on through --clock-control's admin call)."""
    key_id = s.key(MultiRegion=True)
    s.kms.replicate_key(KeyId=key_id, ReplicaRegion="us-west-2")
    request = urllib.request.Request(s.server.url, data=json.dumps({"Seconds": 5}).encode(), method="POST", headers={
        "X-Amz-Target": "KmsIacAdmin.AdvanceClock", "Content-Type": "application/x-amz-json-1.1"})
    urllib.request.urlopen(request, timeout=30).read()
    replica = s.server.client(region="us-west-2").describe_key(KeyId=key_id)["KeyMetadata"]
    assert replica["KeyState"] == "Enabled", replica
    return {"KeyId": key_id, "PrimaryRegion": "us-west-2"}


def _retire(s: Smoke) -> dict:
    key_id = s.key()
    return {"KeyId": key_id, "GrantId": s.grant(key_id)}


def _store(s: Smoke, connected: bool, **extra: Any) -> dict:
    store_id = s.key_store(connected)
    return {"CustomKeyStoreId": store_id or "cks-0123456789abcdef0", **extra}


MISSING_STORE = "CustomKeyStoreNotFoundException"  # the answer without SoftHSM2 (and a made-up store id)

# operation -> (minimal valid request made against the server, error expected instead of success or None)
CASES: dict[str, tuple[Callable[[Smoke], dict], Callable[[], str | None]]] = {
    "CancelKeyDeletion": (lambda s: (lambda k: (s.kms.schedule_key_deletion(KeyId=k), {"KeyId": k})[1])(s.key()), lambda: None),
    "ConnectCustomKeyStore": (lambda s: _store(s, False), lambda: None if hsm.available() else MISSING_STORE),
    "CreateAlias": (lambda s: {"AliasName": f"alias/smoke-{uuid.uuid4().hex[:12]}", "TargetKeyId": s.key()}, lambda: None),
    "CreateCustomKeyStore": (lambda s: s.cluster() if hsm.available() else {
        "CustomKeyStoreName": "smoke", "CloudHsmClusterId": "cluster-1234567abcd", "TrustAnchorCertificate": "x",
        "KeyStorePassword": PIN}, lambda: None if hsm.available() else "CloudHsmClusterNotFoundException"),
    "CreateGrant": (lambda s: {"KeyId": s.key(), "GranteePrincipal": GRANTEE, "Operations": ["Encrypt"]}, lambda: None),
    "CreateKey": (lambda s: {}, lambda: None),
    "Decapsulate": (lambda s: (lambda k: {"KeyId": k, "EncapsulationAlgorithm": "ML_KEM", "SharedSecretCiphertextBlob":
                    s.kms.encapsulate(KeyId=k, EncapsulationAlgorithm="ML_KEM")["SharedSecretCiphertextBlob"]})(
                    s.key("ML_KEM_768", "ENCAPSULATE_DECAPSULATE")), lambda: None),
    "Decrypt": (lambda s: {"CiphertextBlob": s.ciphertext(s.key())}, lambda: None),
    "DeleteAlias": (lambda s: {"AliasName": s.alias(s.key())}, lambda: None),
    "DeleteCustomKeyStore": (lambda s: _store(s, False), lambda: None if hsm.available() else MISSING_STORE),
    "DeleteImportedKeyMaterial": (lambda s: {"KeyId": s.external_key(imported=True)[0]}, lambda: None),
    "DeriveSharedSecret": (lambda s: (lambda k: {"KeyId": k, "KeyAgreementAlgorithm": "ECDH",
                           "PublicKey": s.kms.get_public_key(KeyId=k)["PublicKey"]})(s.key("ECC_NIST_P256", "KEY_AGREEMENT")),
                           lambda: None),
    "DescribeCustomKeyStores": (lambda s: {}, lambda: None),
    "DescribeKey": (lambda s: {"KeyId": s.key()}, lambda: None),
    "DisableKey": (lambda s: {"KeyId": s.key()}, lambda: None),
    "DisableKeyRotation": (lambda s: {"KeyId": s.key()}, lambda: None),
    "DisconnectCustomKeyStore": (lambda s: _store(s, True), lambda: None if hsm.available() else MISSING_STORE),
    "EnableKey": (lambda s: {"KeyId": s.key()}, lambda: None),
    "EnableKeyRotation": (lambda s: {"KeyId": s.key()}, lambda: None),
    "Encapsulate": (lambda s: {"KeyId": s.key("ML_KEM_512", "ENCAPSULATE_DECAPSULATE"), "EncapsulationAlgorithm": "ML_KEM"},
                    lambda: None),
    "Encrypt": (lambda s: {"KeyId": s.key(), "Plaintext": b"smoke"}, lambda: None),
    "GenerateDataKey": (lambda s: {"KeyId": s.key(), "KeySpec": "AES_256"}, lambda: None),
    "GenerateDataKeyPair": (lambda s: {"KeyId": s.key(), "KeyPairSpec": "ECC_NIST_P256"}, lambda: None),
    "GenerateDataKeyPairWithoutPlaintext": (lambda s: {"KeyId": s.key(), "KeyPairSpec": "ECC_NIST_EDWARDS25519"},
                                            lambda: None),
    "GenerateDataKeyWithoutPlaintext": (lambda s: {"KeyId": s.key(), "NumberOfBytes": 16}, lambda: None),
    "GenerateMac": (lambda s: {"KeyId": s.key("HMAC_256", "GENERATE_VERIFY_MAC"), "Message": b"m",
                               "MacAlgorithm": "HMAC_SHA_256"}, lambda: None),
    "GenerateRandom": (lambda s: {"NumberOfBytes": 32}, lambda: None),
    "GetKeyLastUsage": (lambda s: {"KeyId": s.key()}, lambda: None),
    "GetKeyPolicy": (lambda s: {"KeyId": s.key()}, lambda: None),
    "GetKeyRotationStatus": (lambda s: {"KeyId": s.key()}, lambda: None),
    "GetParametersForImport": (lambda s: {"KeyId": s.key(Origin="EXTERNAL"), "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                                          "WrappingKeySpec": "RSA_2048"}, lambda: None),
    "GetPublicKey": (lambda s: {"KeyId": s.key("ML_DSA_44", "SIGN_VERIFY")}, lambda: None),
    "ImportKeyMaterial": (lambda s: s.external_key(imported=False)[1], lambda: None),
    "ListAliases": (lambda s: {}, lambda: None),
    "ListGrants": (lambda s: {"KeyId": s.key()}, lambda: None),
    "ListKeyPolicies": (lambda s: {"KeyId": s.key()}, lambda: None),
    "ListKeyRotations": (lambda s: {"KeyId": s.key()}, lambda: None),
    "ListKeys": (lambda s: {}, lambda: None),
    "ListResourceTags": (lambda s: {"KeyId": s.key()}, lambda: None),
    "ListRetirableGrants": (lambda s: {"RetiringPrincipal": GRANTEE}, lambda: None),
    "PutKeyPolicy": (lambda s: (lambda k: {"KeyId": k, "PolicyName": "default",
                                           "Policy": s.kms.get_key_policy(KeyId=k)["Policy"]})(s.key()), lambda: None),
    "ReEncrypt": (lambda s: {"CiphertextBlob": s.ciphertext(s.key()), "DestinationKeyId": s.key()}, lambda: None),
    "ReplicateKey": (lambda s: {"KeyId": s.key(MultiRegion=True), "ReplicaRegion": "eu-west-1"}, lambda: None),
    "RetireGrant": (_retire, lambda: None),
    "RevokeGrant": (_retire, lambda: None),
    "RotateKeyOnDemand": (lambda s: {"KeyId": s.key()}, lambda: None),
    "ScheduleKeyDeletion": (lambda s: {"KeyId": s.key(), "PendingWindowInDays": 7}, lambda: None),
    "Sign": (lambda s: {"KeyId": s.key("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"), "Message": b"m",
                        "SigningAlgorithm": "ED25519_SHA_512"}, lambda: None),
    "TagResource": (lambda s: {"KeyId": s.key(), "Tags": [{"TagKey": "smoke", "TagValue": "yes"}]}, lambda: None),
    "UntagResource": (lambda s: {"KeyId": s.key(Tags=[{"TagKey": "smoke", "TagValue": "yes"}]), "TagKeys": ["smoke"]},
                      lambda: None),
    "UpdateAlias": (lambda s: {"AliasName": s.alias(s.key()), "TargetKeyId": s.key()}, lambda: None),
    "UpdateCustomKeyStore": (lambda s: _store(s, False, NewCustomKeyStoreName=f"renamed-{uuid.uuid4().hex[:8]}"),
                             lambda: None if hsm.available() else MISSING_STORE),
    "UpdateKeyDescription": (lambda s: {"KeyId": s.key(), "Description": "smoke"}, lambda: None),
    "UpdatePrimaryRegion": (_multi_region_replica, lambda: None),
    "Verify": (lambda s: (lambda k: {"KeyId": k, "Message": hashlib.sha256(b"m").digest(), "MessageType": "DIGEST",
                                     "SigningAlgorithm": "ECDSA_SHA_256", "Signature": s.kms.sign(
                                         KeyId=k, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]})(
        s.key("ECC_NIST_P256", "SIGN_VERIFY")), lambda: None),
    "VerifyMac": (lambda s: (lambda k: {"KeyId": k, "Message": b"m", "MacAlgorithm": "HMAC_SHA_384", "Mac": s.kms.generate_mac(
        KeyId=k, Message=b"m", MacAlgorithm="HMAC_SHA_384")["Mac"]})(s.key("HMAC_384", "GENERATE_VERIFY_MAC")), lambda: None),
}


def test_every_operation_has_a_smoke_case():
    assert sorted(CASES) == model_operations()


@pytest.fixture(scope="module")
def smoke(server) -> Smoke:
    return Smoke(server)


@pytest.mark.parametrize("operation", model_operations())
def test_operation_answers_through_the_server(smoke, operation):
    if operation not in CASES:
        pytest.fail(f"no smoke case for {operation}")
    make_request, expected_error = CASES[operation]
    request = make_request(smoke)
    method = getattr(smoke.kms, xform_name(operation))
    expected = expected_error()
    if expected is None:
        response = method(**request)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
        return
    with pytest.raises(ClientError) as e:
        method(**request)
    assert e.value.response["Error"]["Code"] == expected
