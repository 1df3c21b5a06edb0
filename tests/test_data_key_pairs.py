"""GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext through both front doors: every
KeyPairSpec AWS offers outside China, the pair checked offline (PKCS#8 private key whose public
half is the returned SubjectPublicKeyInfo, and usable), the encrypted private key decrypted by
Decrypt under the same encryption context, and AWS's refusals."""

from __future__ import annotations

import base64
import json

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mlkem, padding, rsa

from kms_iac.backend.audit import read_events

SPECS = ["RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1",
         "ECC_NIST_EDWARDS25519", "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"]
CONTEXT = {"purpose": "data-key-pair", "tenant": "a"}


def err(excinfo) -> tuple[str, str]:
    e = excinfo.value.response["Error"]
    return e["Code"], e.get("Message", "")


@pytest.fixture
def key(kms) -> dict:
    return kms.create_key(Description="wraps data key pairs")["KeyMetadata"]


def spki(public) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_pair(spec: str, private_der: bytes, public_der: bytes) -> None:
    """The private key is PKCS#8 for ``spec``, its public half is ``public_der``, and they work together."""
    if spec == "ML_KEM_512":  # cryptography has no ML-KEM-512
        from Crypto.PublicKey import MLKEM

        private = MLKEM.import_key(private_der)
        assert private.param_set == MLKEM.ML_KEM_512 and len(private.seed) == 64
        assert private.public_key().export_key(format="DER") == public_der
        secret, ciphertext = MLKEM.import_key(public_der)._encaps()
        assert private._decaps(ciphertext) == secret
        return
    private = serialization.load_der_private_key(private_der, password=None)
    public = serialization.load_der_public_key(public_der)
    assert spki(private.public_key()) == public_der
    message = b"signed with a data key pair"
    if spec.startswith("RSA"):
        assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == int(spec[4:])
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        public.verify(private.sign(message, pss, hashes.SHA256()), message, pss, hashes.SHA256())
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        assert private.decrypt(public.encrypt(b"secret", oaep), oaep) == b"secret"
    elif spec == "ECC_NIST_EDWARDS25519":
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        public.verify(private.sign(message), message)
    elif spec.startswith("ECC"):
        curve = {"ECC_NIST_P256": "secp256r1", "ECC_NIST_P384": "secp384r1", "ECC_NIST_P521": "secp521r1",
                 "ECC_SECG_P256K1": "secp256k1"}[spec]
        assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == curve
        public.verify(private.sign(message, ec.ECDSA(hashes.SHA256())), message, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(private, (mlkem.MLKEM768PrivateKey, mlkem.MLKEM1024PrivateKey))
        secret, ciphertext = public.encapsulate()
        assert private.decapsulate(ciphertext) == secret


@pytest.mark.parametrize("spec", SPECS)
def test_generate_data_key_pair(kms, key, spec):
    out = kms.generate_data_key_pair(KeyId=key["KeyId"], KeyPairSpec=spec, EncryptionContext=CONTEXT)
    assert out["KeyId"] == key["Arn"] and out["KeyPairSpec"] == spec
    assert out["KeyMaterialId"] == kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    check_pair(spec, out["PrivateKeyPlaintext"], out["PublicKey"])
    opened = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"], EncryptionContext=CONTEXT)
    assert opened["Plaintext"] == out["PrivateKeyPlaintext"] and opened["KeyId"] == key["Arn"]
    with pytest.raises(ClientError) as e:  # the encryption context is bound to the encrypted private key
        kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"], EncryptionContext={**CONTEXT, "tenant": "b"})
    assert err(e)[0] == "InvalidCiphertextException"
    again = kms.generate_data_key_pair(KeyId=key["KeyId"], KeyPairSpec=spec, EncryptionContext=CONTEXT)
    assert again["PublicKey"] != out["PublicKey"]  # a new pair every time


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_EDWARDS25519", "ML_KEM_512", "ML_KEM_1024"])
def test_generate_data_key_pair_without_plaintext(kms, key, spec):
    out = kms.generate_data_key_pair_without_plaintext(KeyId=key["KeyId"], KeyPairSpec=spec)
    assert "PrivateKeyPlaintext" not in out and out["KeyPairSpec"] == spec and out["KeyId"] == key["Arn"]
    private_der = kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"])["Plaintext"]
    check_pair(spec, private_der, out["PublicKey"])


def test_ml_kem_private_keys_are_seeds_of_one_length(kms, key):
    """The API reference: ML-KEM private keys are PKCS#8 in seed form, the same length for every spec."""
    sizes = {len(kms.generate_data_key_pair(KeyId=key["KeyId"], KeyPairSpec=s)["PrivateKeyPlaintext"])
             for s in ("ML_KEM_512", "ML_KEM_768", "ML_KEM_1024")}
    assert sizes == {86}  # PrivateKeyInfo with the [0] 64-byte seed (RFC 9935)


def test_refusals(kms, key):
    rsa_key = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    signer = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    mac = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    for fn, name in ((kms.generate_data_key_pair, "GenerateDataKeyPair"),
                     (kms.generate_data_key_pair_without_plaintext, "GenerateDataKeyPairWithoutPlaintext")):
        with pytest.raises(ClientError) as e:
            fn(KeyId=rsa_key["KeyId"], KeyPairSpec="ECC_NIST_P256")
        assert err(e) == ("InvalidKeyUsageException", "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.")
        for other in (signer, mac):
            with pytest.raises(ClientError) as e:
                fn(KeyId=other["KeyId"], KeyPairSpec="ECC_NIST_P256")
            assert err(e) == ("InvalidKeyUsageException",
                              f"{other['Arn']} key usage is {other['KeyUsage']} which is not valid for {name}.")
        with pytest.raises(ClientError) as e:
            fn(KeyId=key["KeyId"], KeyPairSpec="SM2")
        assert err(e) == ("UnsupportedOperationException", "KeyPairSpec SM2 is not supported in this Region")
        with pytest.raises(ClientError) as e:
            fn(KeyId=key["KeyId"], KeyPairSpec="RSA_1024")
        assert err(e)[0] == "ValidationException" and "keyPairSpec" in err(e)[1]
        with pytest.raises(ClientError) as e:
            fn(KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P256", DryRun=True)
        assert err(e) == ("DryRunOperationException", "The request would have succeeded, but the DryRun option is set.")
    kms.disable_key(KeyId=key["KeyId"])
    with pytest.raises(ClientError) as e:
        kms.generate_data_key_pair(KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P256")
    assert err(e) == ("DisabledException", f"{key['Arn']} is disabled.")


def test_audit_records_the_spec_and_no_key_material(embedded, backend):
    kid = embedded.create_key()["KeyMetadata"]["KeyId"]
    out = embedded.generate_data_key_pair(KeyId=kid, KeyPairSpec="ECC_NIST_P384", EncryptionContext=CONTEXT)
    events = [e for e in read_events(backend.data_dir) if e["eventName"] == "GenerateDataKeyPair"]
    assert len(events) == 1
    event = events[0]
    assert event["requestParameters"] == {"keyId": kid, "keyPairSpec": "ECC_NIST_P384", "encryptionContext": CONTEXT}
    assert event["responseElements"] is None and event["readOnly"] is True
    text = json.dumps(event)
    for secret in (out["PrivateKeyPlaintext"], out["PrivateKeyCiphertextBlob"], out["PublicKey"]):
        assert base64.b64encode(secret).decode() not in text and secret.hex() not in text
