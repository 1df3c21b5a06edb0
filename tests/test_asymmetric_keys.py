"""Asymmetric (RSA, ECC) and HMAC keys through both front doors, checked against `cryptography`."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

RSA_SIGNING = ["RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
               "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512"]
EC_SPECS = {"ECC_NIST_P256": "ECDSA_SHA_256", "ECC_NIST_P384": "ECDSA_SHA_384",
            "ECC_NIST_P521": "ECDSA_SHA_512", "ECC_SECG_P256K1": "ECDSA_SHA_256"}
HASH = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def err(excinfo) -> tuple[str, str]:
    e = excinfo.value.response["Error"]
    return e["Code"], e.get("Message", "")


def h_of(alg: str):
    return HASH[alg[-3:]]()


def local_verify(public, alg: str, sig: bytes, msg: bytes, digest: bool = False) -> None:
    h = h_of(alg)
    chosen = utils.Prehashed(h) if digest else h
    if alg.startswith("ECDSA"):
        public.verify(sig, msg, ec.ECDSA(chosen))
    elif alg.startswith("RSASSA_PSS"):
        public.verify(sig, msg, padding.PSS(mgf=padding.MGF1(h_of(alg)), salt_length=h.digest_size), chosen)
    else:
        public.verify(sig, msg, padding.PKCS1v15(), chosen)




def make(kms, spec, usage):
    return kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]


@pytest.mark.parametrize("spec,usage,field,algs", [
    ("RSA_2048", "ENCRYPT_DECRYPT", "EncryptionAlgorithms", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]),
    ("RSA_3072", "SIGN_VERIFY", "SigningAlgorithms", RSA_SIGNING),
    ("RSA_4096", "ENCRYPT_DECRYPT", "EncryptionAlgorithms", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]),
    *[(s, "SIGN_VERIFY", "SigningAlgorithms", [a]) for s, a in EC_SPECS.items()],
    *[(f"HMAC_{n}", "GENERATE_VERIFY_MAC", "MacAlgorithms", [f"HMAC_SHA_{n}"]) for n in (224, 256, 384, 512)],
])
def test_create_each_spec_metadata(kms, spec, usage, field, algs):
    md = make(kms, spec, usage)
    assert md["KeySpec"] == md["CustomerMasterKeySpec"] == spec and md["KeyUsage"] == usage
    assert sorted(md[field]) == sorted(algs)
    for other in {"EncryptionAlgorithms", "SigningAlgorithms", "MacAlgorithms"} - {field}:
        assert other not in md
    assert kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"][field] == md[field]
    if spec.startswith("HMAC"):
        with pytest.raises(ClientError) as e:
            kms.get_public_key(KeyId=md["KeyId"])
        assert err(e) == ("UnsupportedOperationException", f"{md['Arn']} key spec is {spec} which is not valid for GetPublicKey.")
    else:
        pk = kms.get_public_key(KeyId=md["KeyId"])
        assert pk["KeyId"] == md["Arn"] and pk["KeySpec"] == pk["CustomerMasterKeySpec"] == spec
        assert pk["KeyUsage"] == usage and pk[field] == md[field]
        public = serialization.load_der_public_key(pk["PublicKey"])
        if spec.startswith("ECC"):
            assert isinstance(public, ec.EllipticCurvePublicKey)
        else:
            assert public.key_size == int(spec[4:])


@pytest.mark.parametrize("params,code,message", [
    ({"KeySpec": "HMAC_256"}, "ValidationException",
     "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys."),
    ({"KeySpec": "ECC_NIST_P256"}, "ValidationException",
     "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys."),
    ({"KeySpec": "ECC_NIST_P256", "KeyUsage": "ENCRYPT_DECRYPT"}, "ValidationException",
     "KeyUsage ENCRYPT_DECRYPT is not compatible with KeySpec ECC_NIST_P256"),
    ({"KeySpec": "HMAC_256", "KeyUsage": "ENCRYPT_DECRYPT"}, "ValidationException",
     "KeyUsage ENCRYPT_DECRYPT is not compatible with KeySpec HMAC_256"),
    ({"KeySpec": "RSA_2048", "KeyUsage": "GENERATE_VERIFY_MAC"}, "ValidationException",
     "KeyUsage GENERATE_VERIFY_MAC is not compatible with KeySpec RSA_2048"),
    ({"KeyUsage": "SIGN_VERIFY"}, "ValidationException", "KeyUsage SIGN_VERIFY is not compatible with KeySpec SYMMETRIC_DEFAULT"),
])
def test_invalid_spec_usage_pairs(kms, params, code, message):
    with pytest.raises(ClientError) as e:
        kms.create_key(**params)
    assert err(e) == (code, message)


@pytest.mark.slow
def test_rsa_sign_verify_round_trips(kms):
    md = make(kms, "RSA_2048", "SIGN_VERIFY")
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=md["KeyId"])["PublicKey"])
    msg = b"hello asymmetric world"
    for alg in RSA_SIGNING:
        for digest in (False, True):
            m = hashlib.new(f"sha{alg[-3:]}", msg).digest() if digest else msg
            mt = "DIGEST" if digest else "RAW"
            out = kms.sign(KeyId=md["KeyId"], Message=m, MessageType=mt, SigningAlgorithm=alg)
            assert out["KeyId"] == md["Arn"] and out["SigningAlgorithm"] == alg
            local_verify(public, alg, out["Signature"], m, digest)
            v = kms.verify(KeyId=md["KeyId"], Message=m, MessageType=mt, Signature=out["Signature"], SigningAlgorithm=alg)
            assert v == {**v, "KeyId": md["Arn"], "SignatureValid": True, "SigningAlgorithm": alg}
    # a RAW signature verifies as a DIGEST of the same message
    sig = kms.sign(KeyId=md["KeyId"], Message=msg, SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    assert kms.verify(KeyId=md["KeyId"], Message=hashlib.sha256(msg).digest(), MessageType="DIGEST",
                      Signature=sig, SigningAlgorithm="RSASSA_PSS_SHA_256")["SignatureValid"] is True


@pytest.mark.parametrize("spec", list(EC_SPECS))
def test_ecdsa_sign_verify_round_trips(kms, spec):
    alg = EC_SPECS[spec]
    md = make(kms, spec, "SIGN_VERIFY")
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=md["KeyId"])["PublicKey"])
    msg = b"ecdsa message"
    digest = hashlib.new(f"sha{alg[-3:]}", msg).digest()
    raw = kms.sign(KeyId=md["KeyId"], Message=msg, SigningAlgorithm=alg)["Signature"]
    local_verify(public, alg, raw, msg)
    dg = kms.sign(KeyId=md["KeyId"], Message=digest, MessageType="DIGEST", SigningAlgorithm=alg)["Signature"]
    local_verify(public, alg, dg, digest, digest=True)
    assert kms.verify(KeyId=md["KeyId"], Message=msg, Signature=dg, SigningAlgorithm=alg)["SignatureValid"] is True
    with pytest.raises(ClientError) as e:
        kms.verify(KeyId=md["KeyId"], Message=msg + b"!", Signature=raw, SigningAlgorithm=alg)
    assert err(e) == ("KMSInvalidSignatureException", "")


def test_tampered_signature_and_sign_errors(kms):
    md = make(kms, "RSA_2048", "SIGN_VERIFY")
    kid = md["KeyId"]
    sig = bytearray(kms.sign(KeyId=kid, Message=b"m", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")["Signature"])
    sig[10] ^= 1
    with pytest.raises(ClientError) as e:
        kms.verify(KeyId=kid, Message=b"m", Signature=bytes(sig), SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
    assert err(e) == ("KMSInvalidSignatureException", "")
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=kid, Message=b"x" * 20, MessageType="DIGEST", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
    assert err(e) == ("ValidationException", "Digest is invalid length for algorithm RSASSA_PKCS1_V1_5_SHA_256.")
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=kid, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    assert err(e) == ("InvalidKeyUsageException", "Algorithm ECDSA_SHA_256 is incompatible with key spec RSA_2048.")
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=kid, Message=b"x" * 4097, SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert err(e)[0] == "ValidationException" and "4096" in err(e)[1]
    assert kms.sign(KeyId=kid, Message=b"x" * 4096, SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]


def test_rsa_encrypt_decrypt_interoperates(kms):
    md = make(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    kid = md["KeyId"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=kid)["PublicKey"])
    for alg, h in (("RSAES_OAEP_SHA_1", hashes.SHA1), ("RSAES_OAEP_SHA_256", hashes.SHA256)):
        pad = padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(), label=None)
        local = public.encrypt(b"secret made locally", pad)
        out = kms.decrypt(KeyId=kid, CiphertextBlob=local, EncryptionAlgorithm=alg)
        assert out["Plaintext"] == b"secret made locally" and out["KeyId"] == md["Arn"] and out["EncryptionAlgorithm"] == alg
        enc = kms.encrypt(KeyId=kid, Plaintext=b"secret from kms", EncryptionAlgorithm=alg)
        assert enc["EncryptionAlgorithm"] == alg and enc["KeyId"] == md["Arn"] and len(enc["CiphertextBlob"]) == 256
        assert kms.decrypt(KeyId=kid, CiphertextBlob=enc["CiphertextBlob"], EncryptionAlgorithm=alg)["Plaintext"] == b"secret from kms"
    # size limits: 256 - 2*32 - 2 = 190 (SHA-256), 256 - 2*20 - 2 = 214 (SHA-1)
    assert kms.encrypt(KeyId=kid, Plaintext=b"a" * 190, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    for alg, limit in (("RSAES_OAEP_SHA_256", 190), ("RSAES_OAEP_SHA_1", 214)):
        with pytest.raises(ClientError) as e:
            kms.encrypt(KeyId=kid, Plaintext=b"a" * (limit + 1), EncryptionAlgorithm=alg)
        assert err(e) == ("ValidationException", f"Algorithm {alg} and key spec RSA_2048 cannot encrypt data larger than {limit} bytes.")
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=kid, Plaintext=b"a")
    assert err(e) == ("InvalidKeyUsageException", "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.")
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=b"\x00" * 256, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert err(e)[0] == "InvalidCiphertextException"
    with pytest.raises(ClientError) as e:
        kms.decrypt(KeyId=kid, CiphertextBlob=b"\x01" * 256, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert err(e)[0] == "InvalidCiphertextException"
    with pytest.raises(ClientError) as e:
        kms.generate_data_key(KeyId=kid, KeySpec="AES_256")
    assert err(e) == ("InvalidKeyUsageException", "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.")


def test_hmac_generate_verify(kms):
    for n in (224, 256, 384, 512):
        md = make(kms, f"HMAC_{n}", "GENERATE_VERIFY_MAC")
        alg = f"HMAC_SHA_{n}"
        out = kms.generate_mac(KeyId=md["KeyId"], Message=b"mac me", MacAlgorithm=alg)
        assert out["KeyId"] == md["Arn"] and out["MacAlgorithm"] == alg and len(out["Mac"]) == n // 8
        assert out["Mac"] == kms.generate_mac(KeyId=md["KeyId"], Message=b"mac me", MacAlgorithm=alg)["Mac"]
        v = kms.verify_mac(KeyId=md["KeyId"], Message=b"mac me", Mac=out["Mac"], MacAlgorithm=alg)
        assert v == {**v, "KeyId": md["Arn"], "MacValid": True, "MacAlgorithm": alg}
        with pytest.raises(ClientError) as e:
            kms.verify_mac(KeyId=md["KeyId"], Message=b"mac me!", Mac=out["Mac"], MacAlgorithm=alg)
        assert err(e) == ("KMSInvalidMacException", "")
    with pytest.raises(ClientError) as e:
        kms.generate_mac(KeyId=md["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")
    assert err(e) == ("InvalidKeyUsageException", "Algorithm HMAC_SHA_256 is incompatible with key spec HMAC_512.")


def test_wrong_usage_errors(kms):
    sym = kms.create_key()["KeyMetadata"]
    signer = make(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    rsa_enc = make(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    mac = make(kms, "HMAC_256", "GENERATE_VERIFY_MAC")
    cases = [
        (lambda: kms.encrypt(KeyId=signer["KeyId"], Plaintext=b"x"), signer, "SIGN_VERIFY", "Encrypt"),
        (lambda: kms.encrypt(KeyId=mac["KeyId"], Plaintext=b"x"), mac, "GENERATE_VERIFY_MAC", "Encrypt"),
        (lambda: kms.sign(KeyId=rsa_enc["KeyId"], Message=b"x", SigningAlgorithm="RSASSA_PSS_SHA_256"),
         rsa_enc, "ENCRYPT_DECRYPT", "Sign"),
        (lambda: kms.sign(KeyId=sym["KeyId"], Message=b"x", SigningAlgorithm="RSASSA_PSS_SHA_256"), sym, "ENCRYPT_DECRYPT", "Sign"),
        (lambda: kms.verify(KeyId=mac["KeyId"], Message=b"x", Signature=b"s", SigningAlgorithm="ECDSA_SHA_256"),
         mac, "GENERATE_VERIFY_MAC", "Verify"),
        (lambda: kms.generate_mac(KeyId=signer["KeyId"], Message=b"x", MacAlgorithm="HMAC_SHA_256"),
         signer, "SIGN_VERIFY", "GenerateMac"),
        (lambda: kms.verify_mac(KeyId=sym["KeyId"], Message=b"x", Mac=b"m", MacAlgorithm="HMAC_SHA_256"),
         sym, "ENCRYPT_DECRYPT", "VerifyMac"),
    ]
    for fn, md, usage, op in cases:
        with pytest.raises(ClientError) as e:
            fn()
        assert err(e) == ("InvalidKeyUsageException", f"{md['Arn']} key usage is {usage} which is not valid for {op}."), op
    with pytest.raises(ClientError) as e:
        kms.get_public_key(KeyId=sym["KeyId"])
    assert err(e) == ("UnsupportedOperationException", f"{sym['Arn']} key spec is SYMMETRIC_DEFAULT which is not valid for GetPublicKey.")
    with pytest.raises(ClientError) as e:
        kms.generate_data_key(KeyId=signer["KeyId"], KeySpec="AES_256")
    assert err(e)[0] == "InvalidKeyUsageException"


@pytest.mark.parametrize("spec,usage", [("RSA_2048", "SIGN_VERIFY"), ("ECC_NIST_P256", "SIGN_VERIFY"),
                                        ("HMAC_256", "GENERATE_VERIFY_MAC")])
def test_rotation_refused(kms, spec, usage):
    md = make(kms, spec, usage)
    with pytest.raises(ClientError) as e:
        kms.enable_key_rotation(KeyId=md["KeyId"])
    assert err(e) == ("UnsupportedOperationException", f"{md['Arn']} key spec is {spec} which is not valid for this operation.")
    with pytest.raises(ClientError) as e:  # AWS sends RotateKeyOnDemand's refusal without a message
        kms.rotate_key_on_demand(KeyId=md["KeyId"])
    assert err(e) == ("UnsupportedOperationException", "") and "message" not in e.value.response


def test_disabled_key_refuses_signing(kms):
    md = make(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    kms.disable_key(KeyId=md["KeyId"])
    with pytest.raises(ClientError) as e:
        kms.sign(KeyId=md["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    assert err(e) == ("DisabledException", f"{md['Arn']} is disabled.")


def test_material_is_not_stored_in_the_clear(embedded, backend):
    md = embedded.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    mac = embedded.generate_mac(KeyId=md["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    key = backend.store.get_key(md["KeyId"], backend.region)
    secret = backend.material_cache_get(key, key.current_version)
    assert hmac.new(secret, b"m", "sha256").digest() == mac
    stored = backend.store.get_material(key.key_id, key.region, key.current_version).wrapped
    assert secret not in stored
    raw = (backend.data_dir / "kms.sqlite3").read_bytes()
    assert secret not in raw
