"""The newer key specs through both front doors, checked offline against independent code:
Ed25519 (ED25519_SHA_512 and Ed25519ph), ML-DSA (RAW and EXTERNAL_MU), ML-KEM (Encapsulate,
Decapsulate), ECDH key agreement (DeriveSharedSecret), and AWS's refusals for each.

Public keys come from GetPublicKey and are parsed here; signatures are verified, shared
secrets recomputed and ciphertexts encapsulated outside the backend."""

from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem

from kms_iac.backend import keypairs
from kms_iac.backend.audit import read_events
from kms_iac.backend.embedded import embedded_client
from tests.helpers import NO_CLIENT_VALIDATION

ML_DSA = ["ML_DSA_44", "ML_DSA_65", "ML_DSA_87"]
ML_KEM = {"ML_KEM_512": 768, "ML_KEM_768": 1088, "ML_KEM_1024": 1568}
NIST = {"ECC_NIST_P256": ec.SECP256R1, "ECC_NIST_P384": ec.SECP384R1, "ECC_NIST_P521": ec.SECP521R1}
# SubjectPublicKeyInfo algorithm OIDs: RFC 8410 (Ed25519), RFC 9881 (ML-DSA), RFC 9935 (ML-KEM)
OIDS = {"ECC_NIST_EDWARDS25519": "1.3.101.112", "ML_DSA_44": "2.16.840.1.101.3.4.3.17",
        "ML_DSA_65": "2.16.840.1.101.3.4.3.18", "ML_DSA_87": "2.16.840.1.101.3.4.3.19",
        "ML_KEM_512": "2.16.840.1.101.3.4.4.1", "ML_KEM_768": "2.16.840.1.101.3.4.4.2",
        "ML_KEM_1024": "2.16.840.1.101.3.4.4.3", **{s: "1.2.840.10045.2.1" for s in NIST}}


def err(excinfo) -> tuple[str, str]:
    e = excinfo.value.response["Error"]
    return e["Code"], e.get("Message", "")


def refused(fn, **params) -> tuple[str, str]:
    """The (code, message) a call fails with."""
    with pytest.raises(ClientError) as e:
        fn(**params)
    return err(e)


def usage_error(md: dict, operation: str) -> tuple[str, str]:
    return "InvalidKeyUsageException", f"{md['Arn']} key usage is {md['KeyUsage']} which is not valid for {operation}."


def make(kms, spec: str, usage: str) -> dict:
    return kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]


def _der(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER element at ``at``."""
    tag, n = data[at], data[at + 1]
    at += 2
    if n & 0x80:
        size = n & 0x7F
        n = int.from_bytes(data[at:at + size], "big")
        at += size
    return tag, at, at + n


def spki_oid(der: bytes) -> str:
    """The algorithm OID of a DER SubjectPublicKeyInfo, read with no library's help."""
    _, body, _ = _der(der, 0)
    _, alg, _ = _der(der, body)
    tag, start, end = _der(der, alg)
    assert tag == 0x06
    raw = der[start:end]
    parts, value = [raw[0] // 40, raw[0] % 40], 0
    for b in raw[1:]:
        value = value << 7 | b & 0x7F
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def public_key(kms, key_id: str) -> bytes:
    return kms.get_public_key(KeyId=key_id)["PublicKey"]


# -- CreateKey, DescribeKey, GetPublicKey ------------------------------------------------------


@pytest.mark.parametrize("spec,usage,field,algorithms", [
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", "SigningAlgorithms", ["ED25519_SHA_512", "ED25519_PH_SHA_512"]),
    *[(s, "SIGN_VERIFY", "SigningAlgorithms", ["ML_DSA_SHAKE_256"]) for s in ML_DSA],
    *[(s, "ENCAPSULATE_DECAPSULATE", "EncapsulationAlgorithms", ["ML_KEM"]) for s in ML_KEM],
    *[(s, "KEY_AGREEMENT", "KeyAgreementAlgorithms", ["ECDH"]) for s in NIST],
])
def test_metadata_and_public_key(kms, spec, usage, field, algorithms):
    md = make(kms, spec, usage)
    described = kms.describe_key(KeyId=md["KeyId"])["KeyMetadata"]
    for meta in (md, described):
        assert meta["KeySpec"] == spec and meta["KeyUsage"] == usage and meta[field] == algorithms
        others = {"EncryptionAlgorithms", "SigningAlgorithms", "MacAlgorithms", "KeyAgreementAlgorithms",
                  "EncapsulationAlgorithms"} - {field}
        assert not others & set(meta), meta
    pk = kms.get_public_key(KeyId=md["KeyId"])
    assert pk["KeyId"] == md["Arn"] and pk["KeySpec"] == spec and pk["KeyUsage"] == usage and pk[field] == algorithms
    assert spki_oid(pk["PublicKey"]) == OIDS[spec]
    if spec == "ML_KEM_512":  # cryptography has no ML-KEM-512: the raw key is 800 bytes (FIPS 203)
        assert len(pk["PublicKey"]) == 22 + 800
    else:
        loaded = serialization.load_der_public_key(pk["PublicKey"])
        if spec in NIST:
            assert loaded.curve.name == NIST[spec].name


@pytest.mark.parametrize("params,message", [
    ({"KeySpec": "ECC_SECG_P256K1", "KeyUsage": "KEY_AGREEMENT"}, "KeyUsage KEY_AGREEMENT is not compatible with KeySpec ECC_SECG_P256K1"),
    ({"KeySpec": "ECC_NIST_EDWARDS25519", "KeyUsage": "KEY_AGREEMENT"},
     "KeyUsage KEY_AGREEMENT is not compatible with KeySpec ECC_NIST_EDWARDS25519"),
    ({"KeySpec": "ML_DSA_65", "KeyUsage": "ENCAPSULATE_DECAPSULATE"},
     "KeyUsage ENCAPSULATE_DECAPSULATE is not compatible with KeySpec ML_DSA_65"),
    ({"KeySpec": "ML_KEM_768", "KeyUsage": "SIGN_VERIFY"}, "KeyUsage SIGN_VERIFY is not compatible with KeySpec ML_KEM_768"),
    ({"KeySpec": "RSA_2048", "KeyUsage": "KEY_AGREEMENT"}, "KeyUsage KEY_AGREEMENT is not compatible with KeySpec RSA_2048"),
    ({"KeySpec": "ML_KEM_512"}, "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys."),
])
def test_spec_usage_pairs_refused(kms, params, message):
    with pytest.raises(ClientError) as e:
        kms.create_key(**params)
    assert err(e) == ("ValidationException", message)


# -- Ed25519 -------------------------------------------------------------------------------------


def test_ed25519ph_matches_rfc8032_test_vector():
    """RFC 8032 section 7.3, "TEST abc": the backend's Ed25519ph, checked against the standard."""
    seed = bytes.fromhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
    private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    req = keypairs.SigningInput("ED25519_PH_SHA_512", b"abc", "DIGEST")
    signature = keypairs.sign(keypairs.ED25519, private, req)
    assert signature.hex() == (
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
        "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406")
    assert keypairs.verify(keypairs.ED25519, private.public_key(), req, signature)
    assert not keypairs.verify(keypairs.ED25519, private.public_key(), req, signature[:-1] + b"\x07")


def test_ed25519_sign_verify(kms):
    md = make(kms, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
    kid = md["KeyId"]
    public = serialization.load_der_public_key(public_key(kms, kid))
    assert isinstance(public, ed25519.Ed25519PublicKey)
    msg = b"pure Ed25519 over the message itself"
    out = kms.sign(KeyId=kid, Message=msg, MessageType="RAW", SigningAlgorithm="ED25519_SHA_512")
    assert out["KeyId"] == md["Arn"] and out["SigningAlgorithm"] == "ED25519_SHA_512"
    public.verify(out["Signature"], msg)  # RFC 8032 Ed25519, deterministic
    assert kms.sign(KeyId=kid, Message=msg, SigningAlgorithm="ED25519_SHA_512")["Signature"] == out["Signature"]
    assert kms.verify(KeyId=kid, Message=msg, Signature=out["Signature"], SigningAlgorithm="ED25519_SHA_512")["SignatureValid"]

    # ED25519_PH_SHA_512 takes a SHA-512 digest, and KMS hashes it again (Ed25519ph of the digest)
    from Crypto.Hash import SHA512
    from Crypto.PublicKey import ECC
    from Crypto.Signature import eddsa

    digest = hashlib.sha512(msg).digest()
    ph = kms.sign(KeyId=kid, Message=digest, MessageType="DIGEST", SigningAlgorithm="ED25519_PH_SHA_512")["Signature"]
    eddsa.new(ECC.import_key(public_key(kms, kid)), "rfc8032").verify(SHA512.new(digest), ph)
    assert kms.verify(KeyId=kid, Message=digest, MessageType="DIGEST", Signature=ph,
                      SigningAlgorithm="ED25519_PH_SHA_512")["SignatureValid"]
    with pytest.raises(ClientError) as e:  # a pure signature is not an Ed25519ph one
        kms.verify(KeyId=kid, Message=digest, MessageType="DIGEST", Signature=out["Signature"],
                   SigningAlgorithm="ED25519_PH_SHA_512")
    assert err(e) == ("KMSInvalidSignatureException", "")


@pytest.mark.parametrize("algorithm,message_type,message,expected", [
    ("ED25519_SHA_512", "DIGEST", b"d" * 64,
     ("ValidationException", "Message type DIGEST is incompatible with algorithm ED25519_SHA_512.")),
    ("ED25519_PH_SHA_512", "RAW", b"m",
     ("ValidationException", "Message type RAW is incompatible with algorithm ED25519_PH_SHA_512.")),
    ("ED25519_PH_SHA_512", "DIGEST", b"d" * 32,
     ("ValidationException", "Digest is invalid length for algorithm ED25519_PH_SHA_512.")),
    ("ED25519_SHA_512", "EXTERNAL_MU", b"m" * 64,
     ("ValidationException", "Message type EXTERNAL_MU is incompatible with algorithm ED25519_SHA_512.")),
    ("ECDSA_SHA_256", "RAW", b"m",
     ("InvalidKeyUsageException", "Algorithm ECDSA_SHA_256 is incompatible with key spec ECC_NIST_EDWARDS25519.")),
])
def test_ed25519_refusals(kms, algorithm, message_type, message, expected):
    kid = make(kms, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY")["KeyId"]
    for call in (lambda: kms.sign(KeyId=kid, Message=message, MessageType=message_type, SigningAlgorithm=algorithm),
                 lambda: kms.verify(KeyId=kid, Message=message, MessageType=message_type, Signature=b"s" * 64,
                                    SigningAlgorithm=algorithm)):
        with pytest.raises(ClientError) as e:
            call()
        assert err(e) == expected


# -- ML-DSA --------------------------------------------------------------------------------------


def external_mu(public_der: bytes, message: bytes) -> bytes:
    """FIPS 204 mu for pure ML-DSA with an empty context, as AWS's offline example computes it:
    SHAKE256(SHAKE256(pk, 64) || 0x00 || 0x00 || M, 64)."""
    raw = serialization.load_der_public_key(public_der).public_bytes_raw()
    tr = hashlib.shake_256(raw).digest(64)
    return hashlib.shake_256(tr + b"\x00\x00" + message).digest(64)


@pytest.mark.parametrize("spec", ML_DSA)
def test_ml_dsa_sign_verify(kms, spec):
    md = make(kms, spec, "SIGN_VERIFY")
    kid = md["KeyId"]
    der = public_key(kms, kid)
    public = serialization.load_der_public_key(der)
    assert isinstance(public, (mldsa.MLDSA44PublicKey, mldsa.MLDSA65PublicKey, mldsa.MLDSA87PublicKey))
    msg = b"post-quantum firmware image" * 10
    raw = kms.sign(KeyId=kid, Message=msg, SigningAlgorithm="ML_DSA_SHAKE_256")
    assert raw["SigningAlgorithm"] == "ML_DSA_SHAKE_256" and raw["KeyId"] == md["Arn"]
    public.verify(raw["Signature"], msg)  # FIPS 204 ML-DSA.Verify, empty context

    mu = external_mu(der, msg)
    hasher = mldsa.MLDSAMuHasher(public)
    hasher.update(msg)
    assert hasher.finalize() == mu  # the test's mu is the standard one
    by_mu = kms.sign(KeyId=kid, Message=mu, MessageType="EXTERNAL_MU", SigningAlgorithm="ML_DSA_SHAKE_256")["Signature"]
    public.verify(by_mu, msg)  # "the same as the RAW ones": a signature over the message
    for signature in (raw["Signature"], by_mu):
        for message, message_type in ((msg, "RAW"), (mu, "EXTERNAL_MU")):
            assert kms.verify(KeyId=kid, Message=message, MessageType=message_type, Signature=signature,
                              SigningAlgorithm="ML_DSA_SHAKE_256")["SignatureValid"]
    with pytest.raises(ClientError) as e:
        kms.verify(KeyId=kid, Message=msg + b"!", Signature=by_mu, SigningAlgorithm="ML_DSA_SHAKE_256")
    assert err(e) == ("KMSInvalidSignatureException", "")


def test_ml_dsa_refusals(kms):
    kid = make(kms, "ML_DSA_44", "SIGN_VERIFY")["KeyId"]
    cases = [
        ({"Message": b"d" * 32, "MessageType": "DIGEST", "SigningAlgorithm": "ML_DSA_SHAKE_256"},
         ("ValidationException", "Message type DIGEST is incompatible with key spec ML_DSA_44.")),
        ({"Message": b"m" * 63, "MessageType": "EXTERNAL_MU", "SigningAlgorithm": "ML_DSA_SHAKE_256"},
         ("ValidationException", "Message of type EXTERNAL_MU must be 64 bytes long for algorithm ML_DSA_SHAKE_256.")),
        ({"Message": b"m", "SigningAlgorithm": "ED25519_SHA_512"},
         ("InvalidKeyUsageException", "Algorithm ED25519_SHA_512 is incompatible with key spec ML_DSA_44.")),
    ]
    for params, expected in cases:
        with pytest.raises(ClientError) as e:
            kms.sign(KeyId=kid, **params)
        assert err(e) == expected
    ecdsa = make(kms, "ECC_NIST_P256", "SIGN_VERIFY")["KeyId"]
    with pytest.raises(ClientError) as e:  # EXTERNAL_MU is ML-DSA's alone
        kms.sign(KeyId=ecdsa, Message=b"m" * 64, MessageType="EXTERNAL_MU", SigningAlgorithm="ECDSA_SHA_256")
    assert err(e) == ("ValidationException", "Message type EXTERNAL_MU is incompatible with key spec ECC_NIST_P256.")


# -- ML-KEM --------------------------------------------------------------------------------------


def encapsulate_offline(spec: str, public_der: bytes) -> tuple[bytes, bytes]:
    """(shared secret, ciphertext) made outside the backend with the KMS key's public key."""
    if spec == "ML_KEM_512":
        from Crypto.PublicKey import MLKEM

        return MLKEM.import_key(public_der)._encaps()
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, (mlkem.MLKEM768PublicKey, mlkem.MLKEM1024PublicKey))
    return public.encapsulate()


@pytest.mark.parametrize("spec", list(ML_KEM))
def test_ml_kem_encapsulate_decapsulate(kms, spec):
    md = make(kms, spec, "ENCAPSULATE_DECAPSULATE")
    kid = md["KeyId"]
    enc = kms.encapsulate(KeyId=kid, EncapsulationAlgorithm="ML_KEM")
    assert enc["KeyId"] == md["Arn"] and enc["EncapsulationAlgorithm"] == "ML_KEM"
    assert len(enc["SharedSecret"]) == 32 and len(enc["SharedSecretCiphertextBlob"]) == ML_KEM[spec]
    dec = kms.decapsulate(KeyId=kid, EncapsulationAlgorithm="ML_KEM",
                          SharedSecretCiphertextBlob=enc["SharedSecretCiphertextBlob"])
    assert dec["SharedSecret"] == enc["SharedSecret"] and dec["KeyId"] == md["Arn"]

    secret, ciphertext = encapsulate_offline(spec, public_key(kms, kid))  # a peer with only the public key
    assert kms.decapsulate(KeyId=kid, EncapsulationAlgorithm="ML_KEM",
                           SharedSecretCiphertextBlob=ciphertext)["SharedSecret"] == secret

    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]  # implicit rejection: a secret, but another one
    other = kms.decapsulate(KeyId=kid, EncapsulationAlgorithm="ML_KEM", SharedSecretCiphertextBlob=tampered)
    assert len(other["SharedSecret"]) == 32 and other["SharedSecret"] != secret
    with pytest.raises(ClientError) as e:  # only a wrong length is refused
        kms.decapsulate(KeyId=kid, EncapsulationAlgorithm="ML_KEM", SharedSecretCiphertextBlob=ciphertext[:-1])
    assert err(e)[0] == "InvalidCiphertextException"


def test_ml_kem_wrong_usage_and_state(kms):
    signer = make(kms, "ML_DSA_44", "SIGN_VERIFY")
    kem = make(kms, "ML_KEM_768", "ENCAPSULATE_DECAPSULATE")
    assert refused(kms.encapsulate, KeyId=signer["KeyId"], EncapsulationAlgorithm="ML_KEM") == usage_error(signer, "Encapsulate")
    assert refused(kms.sign, KeyId=kem["KeyId"], Message=b"m", SigningAlgorithm="ML_DSA_SHAKE_256") == usage_error(kem, "Sign")
    blob = kms.encapsulate(KeyId=kem["KeyId"], EncapsulationAlgorithm="ML_KEM")["SharedSecretCiphertextBlob"]
    kms.disable_key(KeyId=kem["KeyId"])
    assert refused(kms.decapsulate, KeyId=kem["KeyId"], EncapsulationAlgorithm="ML_KEM",
                   SharedSecretCiphertextBlob=blob) == ("DisabledException", f"{kem['Arn']} is disabled.")
    kms.schedule_key_deletion(KeyId=kem["KeyId"], PendingWindowInDays=7)
    deleting = ("KMSInvalidStateException", f"{kem['Arn']} is pending deletion.")
    assert refused(kms.encapsulate, KeyId=kem["KeyId"], EncapsulationAlgorithm="ML_KEM") == deleting
    assert refused(kms.get_public_key, KeyId=kem["KeyId"]) == deleting


# -- ECDH key agreement --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", list(NIST))
def test_derive_shared_secret(kms, spec):
    md = make(kms, spec, "KEY_AGREEMENT")
    kms_public = serialization.load_der_public_key(public_key(kms, md["KeyId"]))
    peer = ec.generate_private_key(NIST[spec]())
    peer_der = peer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    out = kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=peer_der)
    assert out["KeyId"] == md["Arn"] and out["KeyAgreementAlgorithm"] == "ECDH" and out["KeyOrigin"] == "AWS_KMS"
    assert out["SharedSecret"] == peer.exchange(ec.ECDH(), kms_public)  # Bob's side, offline
    assert len(out["SharedSecret"]) == (NIST[spec].key_size + 7) // 8  # the raw x-coordinate

    other = make(kms, spec, "KEY_AGREEMENT")  # two KMS keys agree with each other's public keys
    a = kms.derive_shared_secret(KeyId=md["KeyId"], KeyAgreementAlgorithm="ECDH",
                                 PublicKey=public_key(kms, other["KeyId"]))["SharedSecret"]
    b = kms.derive_shared_secret(KeyId=other["KeyId"], KeyAgreementAlgorithm="ECDH",
                                 PublicKey=public_key(kms, md["KeyId"]))["SharedSecret"]
    assert a == b


def test_derive_shared_secret_refusals(kms):
    agree = make(kms, "ECC_NIST_P256", "KEY_AGREEMENT")
    signer = make(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    wrong_curve = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for bad in (wrong_curve, b"not a public key"):
        with pytest.raises(ClientError) as e:
            kms.derive_shared_secret(KeyId=agree["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=bad)
        assert err(e) == ("ValidationException", "PublicKey must be a DER-encoded X.509 SubjectPublicKeyInfo of an "
                                                  "elliptic curve key on the curve of key spec ECC_NIST_P256.")
    peer = public_key(kms, agree["KeyId"])
    assert refused(kms.derive_shared_secret, KeyId=signer["KeyId"], KeyAgreementAlgorithm="ECDH",
                   PublicKey=peer) == usage_error(signer, "DeriveSharedSecret")
    assert refused(kms.sign, KeyId=agree["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256") == usage_error(agree, "Sign")
    kms.disable_key(KeyId=agree["KeyId"])
    assert refused(kms.derive_shared_secret, KeyId=agree["KeyId"], KeyAgreementAlgorithm="ECDH",
                   PublicKey=peer) == ("DisabledException", f"{agree['Arn']} is disabled.")


def test_recipient_is_refused_naming_the_gap(kms):
    agree = make(kms, "ECC_NIST_P256", "KEY_AGREEMENT")
    sym = kms.create_key()["KeyMetadata"]["KeyId"]
    recipient = {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": b"\x84not-a-real-document"}
    calls = [
        lambda: kms.derive_shared_secret(KeyId=agree["KeyId"], KeyAgreementAlgorithm="ECDH",
                                         PublicKey=public_key(kms, agree["KeyId"]), Recipient=recipient),
        lambda: kms.generate_data_key(KeyId=sym, KeySpec="AES_256", Recipient=recipient),
        lambda: kms.generate_data_key_pair(KeyId=sym, KeyPairSpec="ECC_NIST_P256", Recipient=recipient),
        lambda: kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=sym, Plaintext=b"x")["CiphertextBlob"], Recipient=recipient),
        lambda: kms.generate_random(NumberOfBytes=32, Recipient=recipient),
    ]
    for call in calls:
        with pytest.raises(ClientError) as e:
            call()
        code, message = err(e)
        assert code == "UnsupportedOperationException" and "Recipient" in message and "Nitro" in message


# -- DryRun, grants, regions ----------------------------------------------------------------------


def test_dry_run(kms):
    agree = make(kms, "ECC_NIST_P384", "KEY_AGREEMENT")
    kem = make(kms, "ML_KEM_1024", "ENCAPSULATE_DECAPSULATE")
    ed = make(kms, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
    blob = kms.encapsulate(KeyId=kem["KeyId"], EncapsulationAlgorithm="ML_KEM")["SharedSecretCiphertextBlob"]
    calls = [
        lambda **kw: kms.derive_shared_secret(KeyId=agree["KeyId"], KeyAgreementAlgorithm="ECDH",
                                              PublicKey=public_key(kms, agree["KeyId"]), **kw),
        lambda **kw: kms.encapsulate(KeyId=kem["KeyId"], EncapsulationAlgorithm="ML_KEM", **kw),
        lambda **kw: kms.decapsulate(KeyId=kem["KeyId"], EncapsulationAlgorithm="ML_KEM",
                                     SharedSecretCiphertextBlob=blob, **kw),
        lambda **kw: kms.sign(KeyId=ed["KeyId"], Message=b"m", SigningAlgorithm="ED25519_SHA_512", **kw),
    ]
    for call in calls:
        with pytest.raises(ClientError) as e:
            call(DryRun=True)
        assert err(e) == ("DryRunOperationException", "The request would have succeeded, but the DryRun option is set.")
        call()  # and without DryRun it succeeds
    with pytest.raises(ClientError) as e:  # a request that would fail says so, DryRun or not
        kms.encapsulate(KeyId=ed["KeyId"], EncapsulationAlgorithm="ML_KEM", DryRun=True)
    assert err(e)[0] == "InvalidKeyUsageException"


@pytest.mark.parametrize("spec,usage,allowed,refused", [
    ("ECC_NIST_P256", "KEY_AGREEMENT", ["DeriveSharedSecret", "GetPublicKey", "DescribeKey"], "Sign"),
    ("ML_KEM_512", "ENCAPSULATE_DECAPSULATE", ["Encapsulate", "Decapsulate", "GetPublicKey"], "Decrypt"),
    ("ML_DSA_65", "SIGN_VERIFY", ["Sign", "Verify", "GetPublicKey", "RetireGrant"], "DeriveSharedSecret"),
    ("RSA_2048", "ENCRYPT_DECRYPT", ["Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey"],
     "GenerateDataKey"),
    ("HMAC_256", "GENERATE_VERIFY_MAC", ["GenerateMac", "VerifyMac", "CreateGrant"], "GetPublicKey"),
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", ["GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext"], "Encapsulate"),
])
def test_grant_operations_by_key_type(kms, spec, usage, allowed, refused):
    md = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
    grantee = "arn:aws:iam::111122223333:role/Grantee"
    grant = kms.create_grant(KeyId=md["KeyId"], GranteePrincipal=grantee, Operations=allowed)
    listed = kms.list_grants(KeyId=md["KeyId"])["Grants"]
    assert [g["Operations"] for g in listed if g["GrantId"] == grant["GrantId"]] == [allowed]
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=md["KeyId"], GranteePrincipal=grantee, Operations=[refused])
    assert err(e) == ("ValidationException",
                      f"Grant operation {refused} is not valid for KMS key {md['Arn']} with KeyUsage {usage}.")


def test_grant_encryption_context_constraint_needs_a_symmetric_key(kms):
    rsa = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=rsa["KeyId"], GranteePrincipal="arn:aws:iam::111122223333:role/G", Operations=["Decrypt"],
                         Constraints={"EncryptionContextSubset": {"a": "b"}})
    assert err(e)[0] == "ValidationException" and "encryption context" in err(e)[1].lower()


@pytest.fixture(params=["embedded", "server"])
def china(request, tmp_path):
    """A client in cn-north-1, where SM2 exists and ML-KEM does not."""
    if request.param == "embedded":
        from kms_iac.backend.core import Backend

        b = Backend(tmp_path / "kms")
        yield embedded_client(backend=b, region="cn-north-1", config=NO_CLIENT_VALIDATION)
        b.close()
    else:
        yield request.getfixturevalue("server").client(region="cn-north-1")


def test_regions_of_sm2_and_ml_kem(kms, china):
    with pytest.raises(ClientError) as e:
        china.create_key(KeySpec="SM2", KeyUsage="SIGN_VERIFY")
    code, message = err(e)
    assert code == "UnsupportedOperationException" and "SM2" in message and "kms-iac" in message
    with pytest.raises(ClientError) as e:
        china.create_key(KeySpec="ML_KEM_768", KeyUsage="ENCAPSULATE_DECAPSULATE")
    assert err(e) == ("UnsupportedOperationException", "KeySpec ML_KEM_768 is not supported in this Region")
    sym = china.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        china.generate_data_key_pair(KeyId=sym, KeyPairSpec="ML_KEM_512")
    assert err(e) == ("UnsupportedOperationException", "KeyPairSpec ML_KEM_512 is not supported in this Region")
    with pytest.raises(ClientError) as e:
        kms.create_key(KeySpec="SM2", KeyUsage="ENCRYPT_DECRYPT")
    assert err(e) == ("UnsupportedOperationException", "KeySpec SM2 is not supported in this Region")


def test_audit_events_carry_no_secrets(embedded, backend):
    agree = make(embedded, "ECC_NIST_P256", "KEY_AGREEMENT")["KeyId"]
    kem = make(embedded, "ML_KEM_768", "ENCAPSULATE_DECAPSULATE")["KeyId"]
    derived = embedded.derive_shared_secret(KeyId=agree, KeyAgreementAlgorithm="ECDH", PublicKey=public_key(embedded, agree))
    enc = embedded.encapsulate(KeyId=kem, EncapsulationAlgorithm="ML_KEM")
    embedded.decapsulate(KeyId=kem, EncapsulationAlgorithm="ML_KEM", SharedSecretCiphertextBlob=enc["SharedSecretCiphertextBlob"])
    events = {e["eventName"]: e for e in read_events(backend.data_dir)}
    assert events["DeriveSharedSecret"]["requestParameters"] == {"keyId": agree, "keyAgreementAlgorithm": "ECDH"}
    assert events["Decapsulate"]["requestParameters"] == {"keyId": kem, "encapsulationAlgorithm": "ML_KEM"}
    for name in ("DeriveSharedSecret", "Encapsulate", "Decapsulate"):
        event = events[name]
        assert event["responseElements"] is None and event["readOnly"] is True and "errorCode" not in event
        assert event["resources"][0]["ARN"].endswith(agree if name == "DeriveSharedSecret" else kem)
    text = repr(list(events.values()))
    for secret in (derived["SharedSecret"], enc["SharedSecret"], enc["SharedSecretCiphertextBlob"]):
        assert secret.hex() not in text and base64.b64encode(secret).decode() not in text
