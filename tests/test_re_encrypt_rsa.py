"""ReEncrypt with RSA ENCRYPT_DECRYPT keys on either side (SourceEncryptionAlgorithm,
DestinationEncryptionAlgorithm), DryRun with IGNORE_CIPHERTEXT, through both front doors;
ciphertexts made and checked with the public key outside the backend."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

DRY_RUN = ("DryRunOperationException", "The request would have succeeded, but the DryRun option is set.")


def err(excinfo) -> tuple[str, str]:
    e = excinfo.value.response["Error"]
    return e["Code"], e.get("Message", "")


def oaep(h) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None)


@pytest.fixture
def keys(kms) -> dict:
    def rsa() -> dict:
        return kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]

    return {"sym": kms.create_key()["KeyMetadata"], "rsa": rsa(), "rsa2": rsa()}


def test_from_rsa_to_symmetric_and_back(kms, keys):
    sym, rsa = keys["sym"], keys["rsa"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=rsa["KeyId"])["PublicKey"])
    outside = public.encrypt(b"encrypted outside KMS", oaep(hashes.SHA256))
    out = kms.re_encrypt(CiphertextBlob=outside, SourceKeyId=rsa["KeyId"], SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
                         DestinationKeyId=sym["KeyId"], DestinationEncryptionContext={"stage": "moved"})
    assert out["SourceKeyId"] == rsa["Arn"] and out["KeyId"] == sym["Arn"]
    assert out["SourceEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256" and out["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert "SourceKeyMaterialId" not in out  # only for a symmetric source key
    assert out["DestinationKeyMaterialId"] == kms.describe_key(KeyId=sym["KeyId"])["KeyMetadata"]["CurrentKeyMaterialId"]
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"stage": "moved"})["Plaintext"] == \
        b"encrypted outside KMS"

    back = kms.re_encrypt(CiphertextBlob=out["CiphertextBlob"], SourceEncryptionContext={"stage": "moved"},
                          DestinationKeyId=rsa["KeyId"], DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1")
    assert back["SourceEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT" and back["DestinationEncryptionAlgorithm"] == "RSAES_OAEP_SHA_1"
    assert back["SourceKeyMaterialId"] == out["DestinationKeyMaterialId"] and "DestinationKeyMaterialId" not in back
    assert len(back["CiphertextBlob"]) == 256  # raw RSAES-OAEP, as AWS returns it
    assert kms.decrypt(KeyId=rsa["KeyId"], CiphertextBlob=back["CiphertextBlob"],
                       EncryptionAlgorithm="RSAES_OAEP_SHA_1")["Plaintext"] == b"encrypted outside KMS"


def test_from_rsa_to_rsa(kms, keys):
    rsa, rsa2 = keys["rsa"], keys["rsa2"]
    ct = kms.encrypt(KeyId=rsa["KeyId"], Plaintext=b"between two RSA keys", EncryptionAlgorithm="RSAES_OAEP_SHA_1")
    out = kms.re_encrypt(CiphertextBlob=ct["CiphertextBlob"], SourceKeyId=rsa["Arn"], SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1",
                         DestinationKeyId=rsa2["KeyId"], DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert out["SourceKeyId"] == rsa["Arn"] and out["KeyId"] == rsa2["Arn"]
    assert "SourceKeyMaterialId" not in out and "DestinationKeyMaterialId" not in out
    assert kms.decrypt(KeyId=rsa2["KeyId"], CiphertextBlob=out["CiphertextBlob"],
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"between two RSA keys"


def test_refusals(kms, keys):
    sym, rsa = keys["sym"], keys["rsa"]
    ct = kms.encrypt(KeyId=rsa["KeyId"], Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    sym_ct = kms.encrypt(KeyId=sym["KeyId"], Plaintext=b"y" * 200)["CiphertextBlob"]
    cases = [
        # an asymmetric ciphertext names no key: SourceKeyId is required
        (dict(CiphertextBlob=ct, SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256", DestinationKeyId=sym["KeyId"]),
         ("InvalidCiphertextException", "")),
        # the wrong algorithm does not decrypt
        (dict(CiphertextBlob=ct, SourceKeyId=rsa["KeyId"], SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1",
              DestinationKeyId=sym["KeyId"]), ("InvalidCiphertextException", "")),
        (dict(CiphertextBlob=ct, SourceKeyId=rsa["KeyId"], SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
              SourceEncryptionContext={"a": "b"}, DestinationKeyId=sym["KeyId"]),
         ("ValidationException", "EncryptionContext is not supported for asymmetric KMS keys.")),
        # an RSA destination needs its algorithm, and cannot take 200 bytes with SHA-256 OAEP
        (dict(CiphertextBlob=sym_ct, DestinationKeyId=rsa["KeyId"]),
         ("InvalidKeyUsageException", "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.")),
        (dict(CiphertextBlob=sym_ct, DestinationKeyId=rsa["KeyId"], DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256"),
         ("ValidationException", "Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 bytes.")),
        (dict(CiphertextBlob=sym_ct, DestinationKeyId=rsa["KeyId"], DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1",
              DestinationEncryptionContext={"a": "b"}),
         ("ValidationException", "EncryptionContext is not supported for asymmetric KMS keys.")),
        (dict(CiphertextBlob=sym_ct, DestinationKeyId=sym["KeyId"], DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1"),
         ("InvalidKeyUsageException", f"The encryption algorithm RSAES_OAEP_SHA_1 is not supported by {sym['Arn']}.")),
    ]
    for params, expected in cases:
        with pytest.raises(ClientError) as e:
            kms.re_encrypt(**params)
        assert err(e) == expected, params
    kms.disable_key(KeyId=rsa["KeyId"])
    with pytest.raises(ClientError) as e:
        kms.re_encrypt(CiphertextBlob=ct, SourceKeyId=rsa["KeyId"], SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256",
                       DestinationKeyId=sym["KeyId"])
    assert err(e) == ("DisabledException", f"{rsa['Arn']} is disabled.")


def test_dry_run_ignore_ciphertext(kms, keys):
    sym, rsa = keys["sym"], keys["rsa"]
    garbage = b"\x00" * 64
    with pytest.raises(ClientError) as e:
        kms.re_encrypt(CiphertextBlob=garbage, SourceKeyId=sym["KeyId"], DestinationKeyId=rsa["KeyId"],
                       DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256", DryRun=True, DryRunModifiers=["IGNORE_CIPHERTEXT"])
    assert err(e) == DRY_RUN
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=garbage, KeyId=sym["KeyId"], DryRun=True, DryRunModifiers=["IGNORE_CIPHERTEXT"])
    assert err(e) == DRY_RUN
    with pytest.raises(ClientError) as e:  # the ciphertext is checked without the modifier
        kms.decrypt(CiphertextBlob=garbage, KeyId=sym["KeyId"], DryRun=True)
    assert err(e)[0] == "InvalidCiphertextException"
    with pytest.raises(ClientError) as e:
        kms.re_encrypt(CiphertextBlob=garbage, DestinationKeyId=sym["KeyId"], DryRun=True, DryRunModifiers=["IGNORE_CIPHERTEXT"])
    assert err(e) == ("ValidationException", "SourceKeyId is required when DryRunModifiers contains IGNORE_CIPHERTEXT.")
    kms.disable_key(KeyId=sym["KeyId"])  # authorization and key state are still checked
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=garbage, KeyId=sym["KeyId"], DryRun=True, DryRunModifiers=["IGNORE_CIPHERTEXT"])
    assert err(e) == ("DisabledException", f"{sym['Arn']} is disabled.")
