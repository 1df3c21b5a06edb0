"""Imported key material (BYOK): wrapping, expiry, deletion, identical re-import only."""

from __future__ import annotations

import datetime
import os

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from kms_iac.backend.clock import DAY


def wrap(params: dict, material: bytes, algorithm: str) -> bytes:
    public = serialization.load_der_public_key(params["PublicKey"])
    h = hashes.SHA256() if algorithm.endswith("256") else hashes.SHA1()
    oaep = padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)
    if algorithm.startswith("RSA_AES_KEY_WRAP"):
        aes = os.urandom(32)
        return public.encrypt(aes, oaep) + aes_key_wrap_with_padding(aes, material)
    return public.encrypt(material, oaep)


def err(e) -> tuple[str, str]:
    return e.value.response["Error"]["Code"], e.value.response["Error"].get("Message", "")


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"])
def test_import_then_use(kms, algorithm):
    md = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    assert "ExpirationModel" not in md
    params = kms.get_parameters_for_import(KeyId=md["KeyId"], WrappingAlgorithm=algorithm, WrappingKeySpec="RSA_2048")
    assert params["KeyId"] == md["Arn"] and params["ParametersValidTo"].timestamp() > md["CreationDate"].timestamp()
    material = os.urandom(32)
    kms.import_key_material(KeyId=md["KeyId"], ImportToken=params["ImportToken"],
                            EncryptedKeyMaterial=wrap(params, material, algorithm),
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    md = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    blob = kms.encrypt(KeyId=md["KeyId"], Plaintext=b"byok")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"byok"
    with pytest.raises(ClientError) as e:  # imported material is never rotated
        kms.enable_key_rotation(KeyId=md["KeyId"])
    assert err(e)[0] == "UnsupportedOperationException"


def test_delete_and_identical_reimport(kms):
    kid = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    material = os.urandom(32)

    def import_(mat, **kw):
        p = kms.get_parameters_for_import(KeyId=kid, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
        return kms.import_key_material(KeyId=kid, ImportToken=p["ImportToken"],
                                       EncryptedKeyMaterial=wrap(p, mat, "RSAES_OAEP_SHA_256"), **kw)

    import_(material, ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    blob = kms.encrypt(KeyId=kid, Plaintext=b"kept")["CiphertextBlob"]
    kms.delete_imported_key_material(KeyId=kid)
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=blob)
    assert err(e)[0] == "KMSInvalidStateException"
    with pytest.raises(ClientError) as e:
        import_(os.urandom(32), ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert err(e)[0] == "IncorrectKeyMaterialException"
    with pytest.raises(ClientError) as e:
        import_(material)  # KEY_MATERIAL_EXPIRES is the default and needs ValidTo
    assert err(e) == ("ValidationException", "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES")
    import_(material, ValidTo=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30))
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"
    md = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert md["ExpirationModel"] == "KEY_MATERIAL_EXPIRES" and "ValidTo" in md


def test_tokens(kms):
    a = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    b = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    p = kms.get_parameters_for_import(KeyId=a, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    for key, token in ((b, p["ImportToken"]), (a, b"not-a-token")):
        with pytest.raises(ClientError) as e:
            kms.import_key_material(KeyId=key, ImportToken=token, EncryptedKeyMaterial=wrap(p, os.urandom(32), "RSAES_OAEP_SHA_256"),
                                    ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
        assert err(e)[0] == "InvalidImportTokenException"
    regular = kms.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as e:
        kms.get_parameters_for_import(KeyId=regular["KeyId"], WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    assert err(e) == ("UnsupportedOperationException", f"{regular['Arn']} origin is AWS_KMS which is not valid for this operation.")


def test_material_expires_and_token_expires_on_the_clock(embedded, clock):
    kid = embedded.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    p = embedded.get_parameters_for_import(KeyId=kid, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    material = os.urandom(32)
    embedded.import_key_material(KeyId=kid, ImportToken=p["ImportToken"], EncryptedKeyMaterial=wrap(p, material, "RSAES_OAEP_SHA_256"),
                                 ValidTo=datetime.datetime.fromtimestamp(clock.now() + 2 * DAY, datetime.timezone.utc))
    assert embedded.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled"
    clock.advance(2 * DAY + 1)
    assert embedded.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingImport"
    p = embedded.get_parameters_for_import(KeyId=kid, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    clock.advance(DAY + 1)
    with pytest.raises(ClientError) as e:
        embedded.import_key_material(KeyId=kid, ImportToken=p["ImportToken"], EncryptedKeyMaterial=wrap(p, material, "RSAES_OAEP_SHA_256"),
                                     ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")
    assert err(e)[0] == "ExpiredImportTokenException"
