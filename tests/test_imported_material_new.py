"""Imported key material as on current AWS, through the real server and boto3: HMAC and
asymmetric keys, new material pending rotation, material ids, per-material expiry, and
multi-Region keys that rotate to imported material."""

from __future__ import annotations

import datetime
import hashlib
import hmac as hmac_lib
import os

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from kms_iac.backend import transitions
from tests.test_imported_material import wrap


def err(excinfo) -> tuple[str, str]:
    e = excinfo.value.response["Error"]
    return e["Code"], e.get("Message", "")


def pkcs8(private) -> bytes:
    return private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def spki(private) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def do_import(kms, key_id: str, material: bytes, algorithm: str = "RSAES_OAEP_SHA_256", wrapping_spec: str = "RSA_2048",
              **kw) -> dict:
    p = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=wrapping_spec)
    if "ValidTo" not in kw:
        kw.setdefault("ExpirationModel", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    return kms.import_key_material(KeyId=key_id, ImportToken=p["ImportToken"],
                                   EncryptedKeyMaterial=wrap(p, material, algorithm), **kw)


# -- HMAC keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec,low,high,digest", [("HMAC_224", 28, 64, hashlib.sha224), ("HMAC_256", 32, 64, hashlib.sha256),
                                                  ("HMAC_384", 48, 128, hashlib.sha384), ("HMAC_512", 64, 128, hashlib.sha512)])
def test_hmac_material_is_imported_and_used(server, spec, low, high, digest):
    kms = server.client()
    md = kms.create_key(Origin="EXTERNAL", KeySpec=spec, KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    assert md["KeyState"] == "PendingImport" and md["MacAlgorithms"] == [f"HMAC_SHA_{spec[5:]}"]
    for size in (low - 1, high + 1):
        with pytest.raises(ClientError) as e:
            do_import(kms, md["KeyId"], os.urandom(size))
        assert err(e)[0] == "IncorrectKeyMaterialException"
    material = os.urandom(high)
    out = do_import(kms, md["KeyId"], material)
    assert out["KeyId"] == md["Arn"] and "KeyMaterialId" not in out  # material ids are for symmetric keys
    after = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert after["KeyState"] == "Enabled" and "CurrentKeyMaterialId" not in after
    mac = kms.generate_mac(KeyId=md["KeyId"], Message=b"imported", MacAlgorithm=f"HMAC_SHA_{spec[5:]}")["Mac"]
    assert mac == hmac_lib.new(material, b"imported", digest).digest()  # the imported bytes are the key


def test_hmac_key_has_one_material_for_life(server):
    kms = server.client()
    kid = kms.create_key(Origin="EXTERNAL", KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["KeyId"]
    material = os.urandom(32)
    do_import(kms, kid, material)
    for member, value in (("ImportType", "NEW_KEY_MATERIAL"), ("ImportType", "EXISTING_KEY_MATERIAL"),
                          ("KeyMaterialDescription", "d"), ("KeyMaterialId", "0" * 64)):
        with pytest.raises(ClientError) as e:
            do_import(kms, kid, material, **{member: value})
        assert err(e) == ("ValidationException", f"{member} is only supported for symmetric encryption KMS keys.")
    deleted = kms.delete_imported_key_material(KeyId=kid)
    assert deleted["KeyId"].endswith(kid) and "KeyMaterialId" not in deleted
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingImport"
    with pytest.raises(ClientError) as e:
        do_import(kms, kid, os.urandom(32))
    assert err(e)[0] == "IncorrectKeyMaterialException"
    do_import(kms, kid, material)
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled"


# -- asymmetric keys -------------------------------------------------------------------------------


def test_rsa_material_needs_an_rsa_aes_wrapping_algorithm(server):
    kms = server.client()
    md = kms.create_key(Origin="EXTERNAL", KeySpec="RSA_3072", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    for algorithm in ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"):
        with pytest.raises(ClientError) as e:
            kms.get_parameters_for_import(KeyId=md["KeyId"], WrappingAlgorithm=algorithm, WrappingKeySpec="RSA_4096")
        assert err(e)[0] == "ValidationException" and "RSA_AES_KEY_WRAP" in err(e)[1]
    private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    with pytest.raises(ClientError) as e:  # the wrong size for the key spec
        do_import(kms, md["KeyId"], pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
                  algorithm="RSA_AES_KEY_WRAP_SHA_256")
    assert err(e)[0] == "IncorrectKeyMaterialException"
    out = do_import(kms, md["KeyId"], pkcs8(private), algorithm="RSA_AES_KEY_WRAP_SHA_1")
    assert "KeyMaterialId" not in out
    after = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    assert after["KeyState"] == "Enabled" and "CurrentKeyMaterialId" not in after
    public = kms.get_public_key(KeyId=md["KeyId"])
    assert public["PublicKey"] == spki(private) and public["KeyUsage"] == "SIGN_VERIFY"
    signature = kms.sign(KeyId=md["KeyId"], Message=b"signed by imported key", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    private.public_key().verify(signature, b"signed by imported key",
                                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())


def test_rsa_encryption_key_with_imported_material(server):
    kms = server.client()
    kid = kms.create_key(Origin="EXTERNAL", KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    do_import(kms, kid, pkcs8(private), algorithm="RSA_AES_KEY_WRAP_SHA_256")
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    blob = private.public_key().encrypt(b"made outside KMS", oaep)
    assert kms.decrypt(KeyId=kid, CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"made outside KMS"


@pytest.mark.parametrize("spec,curve,algorithm,digest", [
    ("ECC_NIST_P256", ec.SECP256R1, "ECDSA_SHA_256", hashes.SHA256),
    ("ECC_NIST_P384", ec.SECP384R1, "ECDSA_SHA_384", hashes.SHA384),
    ("ECC_NIST_P521", ec.SECP521R1, "ECDSA_SHA_512", hashes.SHA512),
    ("ECC_SECG_P256K1", ec.SECP256K1, "ECDSA_SHA_256", hashes.SHA256),
])
def test_ecc_material_is_imported_and_signs(server, spec, curve, algorithm, digest):
    kms = server.client()
    kid = kms.create_key(Origin="EXTERNAL", KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    wrong = ec.SECP384R1 if curve is not ec.SECP384R1 else ec.SECP256R1
    with pytest.raises(ClientError) as e:
        do_import(kms, kid, pkcs8(ec.generate_private_key(wrong())), algorithm="RSA_AES_KEY_WRAP_SHA_256")
    assert err(e) == ("IncorrectKeyMaterialException", f"The key material is not a PKCS #8 DER-encoded private key of key spec {spec}.")
    private = ec.generate_private_key(curve())
    wrapping = "RSA_3072" if spec == "ECC_NIST_P521" else "RSA_2048"  # P-521 does not fit RSA_2048 with RSAES_OAEP
    do_import(kms, kid, pkcs8(private), wrapping_spec=wrapping)
    assert kms.get_public_key(KeyId=kid)["PublicKey"] == spki(private)
    signature = kms.sign(KeyId=kid, Message=b"ecc", SigningAlgorithm=algorithm)["Signature"]
    private.public_key().verify(signature, b"ecc", ec.ECDSA(digest()))


def test_p521_with_rsaes_oaep_needs_a_larger_wrapping_key(server):
    kms = server.client()
    kid = kms.create_key(Origin="EXTERNAL", KeySpec="ECC_NIST_P521", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms.get_parameters_for_import(KeyId=kid, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    assert err(e)[0] == "ValidationException"
    kms.get_parameters_for_import(KeyId=kid, WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256", WrappingKeySpec="RSA_2048")


def test_ed25519_material(server):
    kms = server.client()
    kid = kms.create_key(Origin="EXTERNAL", KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    private = ed25519.Ed25519PrivateKey.generate()
    do_import(kms, kid, pkcs8(private))
    assert kms.get_public_key(KeyId=kid)["PublicKey"] == spki(private)
    signature = kms.sign(KeyId=kid, Message=b"ed", SigningAlgorithm="ED25519_SHA_512")["Signature"]
    private.public_key().verify(signature, b"ed")


def test_get_public_key_waits_for_the_import(server):
    kms = server.client()
    md = kms.create_key(Origin="EXTERNAL", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    with pytest.raises(ClientError) as e:
        kms.get_public_key(KeyId=md["KeyId"])
    assert err(e) == ("KMSInvalidStateException", f"{md['Arn']} is pending import.")


def test_pkcs1_wrapping_is_no_longer_supported(server):
    kms = server.client()
    kid = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms.get_parameters_for_import(KeyId=kid, WrappingAlgorithm="RSAES_PKCS1_V1_5", WrappingKeySpec="RSA_2048")
    assert err(e)[0] == "UnsupportedOperationException"


# -- symmetric keys: new material pending rotation ----------------------------------------------------


def test_new_material_waits_for_an_on_demand_rotation(server):
    kms = server.client()
    md = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    kid, arn = md["KeyId"], md["Arn"]
    with pytest.raises(ClientError) as e:  # nothing imported yet
        kms.rotate_key_on_demand(KeyId=kid)
    assert err(e) == ("KMSInvalidStateException", f"{arn} is pending import.")
    first = os.urandom(32)
    first_id = do_import(kms, kid, first, KeyMaterialDescription="first")["KeyMaterialId"]
    assert len(first_id) == 64 and kms.describe_key(KeyId=kid)["KeyMetadata"]["CurrentKeyMaterialId"] == first_id
    old = kms.encrypt(KeyId=kid, Plaintext=b"under the first material")["CiphertextBlob"]
    with pytest.raises(ClientError) as e:
        kms.rotate_key_on_demand(KeyId=kid)
    assert err(e) == ("KMSInvalidStateException", f"No available key material pending rotation for the key: {arn}.")
    with pytest.raises(ClientError) as e:  # automatic rotation never applies to imported material
        kms.enable_key_rotation(KeyId=kid)
    assert err(e) == ("UnsupportedOperationException", f"{arn} origin is EXTERNAL which is not valid for this operation.")

    with pytest.raises(ClientError) as e:  # new material cannot be the material the key already has
        do_import(kms, kid, first, ImportType="NEW_KEY_MATERIAL")
    assert err(e)[0] == "IncorrectKeyMaterialException"
    second_id = do_import(kms, kid, os.urandom(32), ImportType="NEW_KEY_MATERIAL",
                          KeyMaterialDescription="second")["KeyMaterialId"]
    assert second_id != first_id
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["CurrentKeyMaterialId"] == first_id  # not current until rotated
    with pytest.raises(ClientError) as e:  # one material pending rotation at a time
        do_import(kms, kid, os.urandom(32), ImportType="NEW_KEY_MATERIAL")
    assert err(e)[0] == "KMSInvalidStateException"
    listed = kms.list_key_rotations(KeyId=kid, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"], r["ImportState"], r["KeyMaterialDescription"]) for r in listed] == [
        (first_id, "CURRENT", "IMPORTED", "first"), (second_id, "PENDING_ROTATION", "IMPORTED", "second")]
    assert all(r["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE" and "RotationDate" not in r for r in listed)
    assert kms.list_key_rotations(KeyId=kid)["Rotations"] == []  # no rotation has happened yet

    assert kms.rotate_key_on_demand(KeyId=kid)["KeyId"] == arn
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["CurrentKeyMaterialId"] == second_id
    (rotation,) = kms.list_key_rotations(KeyId=kid)["Rotations"]
    assert (rotation["KeyMaterialId"], rotation["KeyMaterialState"], rotation["RotationType"]) == (second_id, "CURRENT", "ON_DEMAND")
    new = kms.encrypt(KeyId=kid, Plaintext=b"under the second material")
    assert new["KeyId"] == arn
    assert kms.decrypt(CiphertextBlob=old)["KeyMaterialId"] == first_id
    assert kms.decrypt(CiphertextBlob=new["CiphertextBlob"])["KeyMaterialId"] == second_id


def test_existing_material_must_be_the_same(server):
    kms = server.client()
    kid = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    material = os.urandom(32)
    material_id = do_import(kms, kid, material)["KeyMaterialId"]
    assert do_import(kms, kid, material)["KeyMaterialId"] == material_id  # the same material, the same id
    assert do_import(kms, kid, material, ImportType="EXISTING_KEY_MATERIAL", KeyMaterialId=material_id)["KeyMaterialId"] == material_id
    with pytest.raises(ClientError) as e:
        do_import(kms, kid, os.urandom(32))  # default after the first import: EXISTING_KEY_MATERIAL
    assert err(e) == ("IncorrectKeyMaterialException",
                      "The key material is different from the key material previously imported into this KMS key.")
    with pytest.raises(ClientError) as e:
        do_import(kms, kid, material, KeyMaterialId="f" * 64)
    assert err(e)[0] == "IncorrectKeyMaterialException"
    with pytest.raises(ClientError) as e:
        do_import(kms, kid, os.urandom(32), ImportType="NEW_KEY_MATERIAL", KeyMaterialId=material_id)
    assert err(e)[0] == "ValidationException"
    other = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    assert do_import(kms, other, material)["KeyMaterialId"] != material_id  # ids depend on the key too


def test_deleted_material_keeps_its_id(server):
    kms = server.client()
    md = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    kid = md["KeyId"]
    first, second = os.urandom(32), os.urandom(32)
    first_id = do_import(kms, kid, first)["KeyMaterialId"]
    blob = kms.encrypt(KeyId=kid, Plaintext=b"kept")["CiphertextBlob"]
    second_id = do_import(kms, kid, second, ImportType="NEW_KEY_MATERIAL")["KeyMaterialId"]
    kms.rotate_key_on_demand(KeyId=kid)
    deleted = kms.delete_imported_key_material(KeyId=kid, KeyMaterialId=first_id)  # a non-current material
    assert deleted == {**deleted, "KeyId": md["Arn"], "KeyMaterialId": first_id}
    after = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert after["KeyState"] == "PendingImport" and after["CurrentKeyMaterialId"] == second_id
    states = {r["KeyMaterialId"]: r["ImportState"] for r in
              kms.list_key_rotations(KeyId=kid, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]}
    assert states == {first_id: "PENDING_IMPORT", second_id: "IMPORTED"}
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=blob)
    assert err(e) == ("KMSInvalidStateException", f"{md['Arn']} is pending import.")
    do_import(kms, kid, first)  # the same material again restores the key
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"
    deleted = kms.delete_imported_key_material(KeyId=kid)  # no id: the current material
    assert deleted["KeyMaterialId"] == second_id
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["CurrentKeyMaterialId"] == second_id


def test_material_pending_rotation_can_be_deleted_and_replaced(server):
    kms = server.client()
    kid = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    do_import(kms, kid, os.urandom(32))
    pending_id = do_import(kms, kid, os.urandom(32), ImportType="NEW_KEY_MATERIAL")["KeyMaterialId"]
    kms.delete_imported_key_material(KeyId=kid, KeyMaterialId=pending_id)
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled"  # not permanently associated
    assert len(kms.list_key_rotations(KeyId=kid, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]) == 1
    replacement = do_import(kms, kid, os.urandom(32), ImportType="NEW_KEY_MATERIAL")["KeyMaterialId"]
    kms.rotate_key_on_demand(KeyId=kid)
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["CurrentKeyMaterialId"] == replacement


def test_each_material_expires_on_its_own_date(server):
    kms = server.client()
    kid = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    now = datetime.datetime.fromtimestamp(server.advance_clock(0), datetime.timezone.utc)
    first_id = do_import(kms, kid, os.urandom(32), ExpirationModel="KEY_MATERIAL_EXPIRES",
                         ValidTo=now + datetime.timedelta(days=300))["KeyMaterialId"]
    pending_id = do_import(kms, kid, os.urandom(32), ImportType="NEW_KEY_MATERIAL", ExpirationModel="KEY_MATERIAL_EXPIRES",
                           ValidTo=now + datetime.timedelta(days=10))["KeyMaterialId"]
    md = kms.describe_key(KeyId=kid)["KeyMetadata"]  # the current material's expiry
    assert md["ExpirationModel"] == "KEY_MATERIAL_EXPIRES" and (md["ValidTo"] - now).days == 300
    server.advance_clock(11 * 86400)
    rows = {r["KeyMaterialId"]: r for r in kms.list_key_rotations(KeyId=kid, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]}
    assert rows[pending_id]["ImportState"] == "PENDING_IMPORT" and "ValidTo" not in rows[pending_id]
    assert rows[first_id]["ImportState"] == "IMPORTED" and rows[first_id]["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled"  # pending material is not the key's yet
    with pytest.raises(ClientError) as e:
        kms.rotate_key_on_demand(KeyId=kid)  # the pending material expired: no bytes to rotate to
    assert err(e)[0] == "KMSInvalidStateException"


# -- multi-Region keys with imported material ---------------------------------------------------------


def test_multi_region_imported_rotation_waits_for_every_replica(server):
    us, eu = server.client(), server.client(region="eu-central-1")
    md = us.create_key(Origin="EXTERNAL", MultiRegion=True)["KeyMetadata"]
    kid = md["KeyId"]
    first = os.urandom(32)
    first_id = do_import(us, kid, first)["KeyMaterialId"]
    rep = us.replicate_key(KeyId=kid, ReplicaRegion="eu-central-1")["ReplicaKeyMetadata"]
    assert rep["KeyState"] == "Creating"
    server.advance_clock(transitions.REPLICA_CREATION_SECONDS)
    assert eu.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingImport"  # each Region imports for itself
    with pytest.raises(ClientError) as e:
        do_import(eu, kid, os.urandom(32))
    assert err(e)[0] == "IncorrectKeyMaterialException"
    assert do_import(eu, kid, first)["KeyMaterialId"] == first_id  # same key id, same material: same id
    blob = us.encrypt(KeyId=kid, Plaintext=b"across regions")["CiphertextBlob"]
    assert eu.decrypt(CiphertextBlob=blob)["Plaintext"] == b"across regions"

    with pytest.raises(ClientError) as e:  # new material goes into the primary only
        do_import(eu, kid, os.urandom(32), ImportType="NEW_KEY_MATERIAL")
    assert err(e)[0] == "UnsupportedOperationException"
    second = os.urandom(32)
    second_id = do_import(us, kid, second, ImportType="NEW_KEY_MATERIAL")["KeyMaterialId"]
    listed = us.list_key_rotations(KeyId=kid, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert listed[-1]["KeyMaterialId"] == second_id
    assert listed[-1]["KeyMaterialState"] == "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"
    with pytest.raises(ClientError) as e:
        us.rotate_key_on_demand(KeyId=kid)
    assert err(e)[0] == "KMSInvalidStateException"
    do_import(eu, kid, second, ImportType="EXISTING_KEY_MATERIAL")
    assert us.list_key_rotations(KeyId=kid, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"][-1]["KeyMaterialState"] == \
        "PENDING_ROTATION"
    us.rotate_key_on_demand(KeyId=kid)
    for client in (us, eu):
        assert client.describe_key(KeyId=kid)["KeyMetadata"]["CurrentKeyMaterialId"] == second_id
    new = eu.encrypt(KeyId=kid, Plaintext=b"after rotation")
    assert us.decrypt(CiphertextBlob=new["CiphertextBlob"])["KeyMaterialId"] == second_id
    assert eu.decrypt(CiphertextBlob=blob)["KeyMaterialId"] == first_id


def test_cancelled_deletion_of_a_key_missing_material_waits_for_the_import(server):
    kms = server.client()
    kid = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    material = os.urandom(32)
    do_import(kms, kid, material)
    kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    kms.delete_imported_key_material(KeyId=kid)
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingDeletion"  # unchanged, as AWS documents
    kms.cancel_key_deletion(KeyId=kid)
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingImport"
    do_import(kms, kid, material)
    kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=kid)
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Disabled"
