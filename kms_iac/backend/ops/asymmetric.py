"""Asymmetric (RSA, ECC) and HMAC KMS keys: key specs, their material, GetPublicKey,
Sign, Verify, GenerateMac, VerifyMac, and Encrypt/Decrypt with RSA ENCRYPT_DECRYPT keys.

The private key (PKCS#8 DER) or HMAC secret is the key's material: it is stored wrapped
under the root key through :meth:`Backend.add_material`, like symmetric material.
RSA ciphertexts are the raw RSAES-OAEP output (no kms-iac header), as in AWS KMS, so a
ciphertext made locally with the public key decrypts here and the other way round.
"""

from __future__ import annotations

import hmac
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from kms_iac.backend.core import Call
from kms_iac.backend.errors import (
    InvalidCiphertextException,
    InvalidKeyUsageException,
    KMSInvalidMacException,
    KMSInvalidSignatureException,
    KMSInvalidStateException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_iac.backend.ops import operation
from kms_iac.backend.store import KeyRecord

SYMMETRIC = "SYMMETRIC_DEFAULT"
RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
EC_CURVES = {
    "ECC_NIST_P256": ec.SECP256R1, "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1, "ECC_SECG_P256K1": ec.SECP256K1,
}
HMAC_BYTES = {"HMAC_224": 28, "HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}
HASHES = {"SHA_1": hashes.SHA1, "SHA_224": hashes.SHA224, "SHA_256": hashes.SHA256,
          "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}

USAGES: dict[str, tuple[str, ...]] = {
    **{s: ("ENCRYPT_DECRYPT", "SIGN_VERIFY") for s in RSA_BITS},
    **{s: ("SIGN_VERIFY",) for s in EC_CURVES},
    **{s: ("GENERATE_VERIFY_MAC",) for s in HMAC_BYTES},
}
# Key specs / usages AWS has that this backend does not implement (yet).
UNIMPLEMENTED_SPECS = {"ECC_NIST_EDWARDS25519", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "SM2"}

RSA_ENCRYPTION = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
RSA_SIGNING = [
    "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
]
EC_SIGNING = {"ECC_NIST_P256": "ECDSA_SHA_256", "ECC_NIST_P384": "ECDSA_SHA_384",
              "ECC_NIST_P521": "ECDSA_SHA_512", "ECC_SECG_P256K1": "ECDSA_SHA_256"}
MAX_MESSAGE = 4096


# -- CreateKey support ------------------------------------------------------------------


def check_spec_usage(spec: str, usage: str | None, origin: str, custom_key_store: bool) -> str:
    """The key usage a non-symmetric CreateKey gets; raise AWS's refusal for a bad pair."""
    if spec in UNIMPLEMENTED_SPECS or spec not in USAGES:
        raise UnsupportedOperationException(f"KeySpec {spec} is not supported by the kms-iac local backend yet.")
    if usage is None:
        raise ValidationException("You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.")
    if usage == "KEY_AGREEMENT" and spec in ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"):
        raise UnsupportedOperationException("KeyUsage KEY_AGREEMENT is not supported by the kms-iac local backend yet.")
    if usage not in USAGES[spec]:
        raise ValidationException(f"KeyUsage {usage} is not compatible with KeySpec {spec}")
    if origin != "AWS_KMS" or custom_key_store:
        raise UnsupportedOperationException(
            f"KeySpec {spec} with Origin {origin} or in a custom key store is not supported by the kms-iac local backend yet."
        )
    return usage


def generate_material(spec: str) -> bytes:
    """A fresh private key (PKCS#8 DER) or HMAC secret for ``spec``."""
    if spec in HMAC_BYTES:
        return os.urandom(HMAC_BYTES[spec])
    if spec in RSA_BITS:
        priv = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS[spec])
    else:
        priv = ec.generate_private_key(EC_CURVES[spec]())
    return priv.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def algorithm_fields(spec: str, usage: str) -> dict:
    """The *Algorithms members of KeyMetadata (and GetPublicKey) for a non-symmetric key."""
    if spec in HMAC_BYTES:
        return {"MacAlgorithms": [f"HMAC_SHA_{spec[5:]}"]}
    if spec in RSA_BITS and usage == "ENCRYPT_DECRYPT":
        return {"EncryptionAlgorithms": list(RSA_ENCRYPTION)}
    if spec in RSA_BITS:
        return {"SigningAlgorithms": list(RSA_SIGNING)}
    return {"SigningAlgorithms": [EC_SIGNING[spec]]}


# -- helpers ----------------------------------------------------------------------------


def _require_usage(key: KeyRecord, usage: str, operation_name: str) -> None:
    if key.key_usage != usage:
        raise InvalidKeyUsageException(f"{key.arn} key usage is {key.key_usage} which is not valid for {operation_name}.")


def _incompatible(algorithm: str, key: KeyRecord) -> InvalidKeyUsageException:
    return InvalidKeyUsageException(f"Algorithm {algorithm} is incompatible with key spec {key.key_spec}.")


def _material(call: Call, key: KeyRecord) -> bytes:
    found = call.material(key)
    if found is None:
        raise KMSInvalidStateException(f"{key.arn} is pending import.")
    return found[1]


def _private_key(call: Call, key: KeyRecord):
    return serialization.load_der_private_key(_material(call, key), password=None)


def _hash_of(algorithm: str) -> hashes.HashAlgorithm:
    return HASHES[algorithm[algorithm.index("SHA_"):]]()


# -- GetPublicKey -----------------------------------------------------------------------


@operation("GetPublicKey", key="KeyId")
def get_public_key(call: Call, params: dict, key: KeyRecord) -> dict:
    if key.key_spec not in RSA_BITS and key.key_spec not in EC_CURVES:
        raise UnsupportedOperationException(f"{key.arn} key spec is {key.key_spec} which is not valid for GetPublicKey.")
    public = _private_key(call, key).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    call.record_use(key)
    return {
        "KeyId": key.arn,
        "PublicKey": public,
        "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec,
        "KeyUsage": key.key_usage,
        **algorithm_fields(key.key_spec, key.key_usage),
    }


# -- Sign / Verify ----------------------------------------------------------------------


def _signing_input(key: KeyRecord, params: dict, operation_name: str) -> tuple[str, bytes, bool]:
    """Check a Sign/Verify request against the key; return (algorithm, message, is_digest)."""
    _require_usage(key, "SIGN_VERIFY", operation_name)
    algorithm = params["SigningAlgorithm"]
    if algorithm not in algorithm_fields(key.key_spec, key.key_usage)["SigningAlgorithms"]:
        raise _incompatible(algorithm, key)
    message = params["Message"]
    digest = (params.get("MessageType") or "RAW") == "DIGEST"
    if digest and len(message) != _hash_of(algorithm).digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    return algorithm, message, digest


def _scheme(algorithm: str, digest: bool):
    """(padding or signature algorithm, hash argument) for cryptography's sign/verify."""
    h = _hash_of(algorithm)
    chosen = utils.Prehashed(h) if digest else h
    if algorithm.startswith("ECDSA"):
        return ec.ECDSA(chosen), None
    if algorithm.startswith("RSASSA_PSS"):
        return padding.PSS(mgf=padding.MGF1(_hash_of(algorithm)), salt_length=h.digest_size), chosen
    return padding.PKCS1v15(), chosen


@operation("Sign", key="KeyId")
def sign(call: Call, params: dict, key: KeyRecord) -> dict:
    algorithm, message, digest = _signing_input(key, params, "Sign")
    priv = _private_key(call, key)
    first, second = _scheme(algorithm, digest)
    signature = priv.sign(message, first) if second is None else priv.sign(message, first, second)
    call.record_use(key)
    return {"KeyId": key.arn, "Signature": signature, "SigningAlgorithm": algorithm}


@operation("Verify", key="KeyId")
def verify(call: Call, params: dict, key: KeyRecord) -> dict:
    algorithm, message, digest = _signing_input(key, params, "Verify")
    public = _private_key(call, key).public_key()
    first, second = _scheme(algorithm, digest)
    try:
        if second is None:
            public.verify(params["Signature"], message, first)
        else:
            public.verify(params["Signature"], message, first, second)
    except (InvalidSignature, ValueError):
        raise KMSInvalidSignatureException() from None
    finally:
        call.record_use(key)
    return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": algorithm}


# -- GenerateMac / VerifyMac ------------------------------------------------------------


def _mac(call: Call, key: KeyRecord, params: dict, operation_name: str) -> tuple[str, bytes]:
    _require_usage(key, "GENERATE_VERIFY_MAC", operation_name)
    algorithm = params["MacAlgorithm"]
    if algorithm not in algorithm_fields(key.key_spec, key.key_usage)["MacAlgorithms"]:
        raise _incompatible(algorithm, key)
    digest = hmac.new(_material(call, key), params["Message"], _hash_of(algorithm).name).digest()
    call.record_use(key)
    return algorithm, digest


@operation("GenerateMac", key="KeyId")
def generate_mac(call: Call, params: dict, key: KeyRecord) -> dict:
    algorithm, mac = _mac(call, key, params, "GenerateMac")
    return {"Mac": mac, "MacAlgorithm": algorithm, "KeyId": key.arn}


@operation("VerifyMac", key="KeyId")
def verify_mac(call: Call, params: dict, key: KeyRecord) -> dict:
    algorithm, mac = _mac(call, key, params, "VerifyMac")
    if not hmac.compare_digest(mac, params["Mac"]):
        raise KMSInvalidMacException()
    return {"KeyId": key.arn, "MacValid": True, "MacAlgorithm": algorithm}


# -- Encrypt / Decrypt with RSA ENCRYPT_DECRYPT keys (called from ops.encryption) -----------


def is_asymmetric_encryption_key(key: KeyRecord) -> bool:
    return key.key_spec in RSA_BITS and key.key_usage == "ENCRYPT_DECRYPT"


def _oaep(key: KeyRecord, algorithm: str | None) -> tuple[str, padding.OAEP]:
    algorithm = algorithm or SYMMETRIC
    if algorithm not in RSA_ENCRYPTION:
        raise _incompatible(algorithm, key)
    h = _hash_of(algorithm)
    return algorithm, padding.OAEP(mgf=padding.MGF1(_hash_of(algorithm)), algorithm=h, label=None)


def _no_context(params: dict, member: str = "EncryptionContext") -> None:
    if params.get(member):
        raise ValidationException("EncryptionContext is not supported for asymmetric KMS keys.")


def rsa_encrypt(call: Call, params: dict, key: KeyRecord) -> dict:
    algorithm, pad = _oaep(key, params.get("EncryptionAlgorithm"))
    _no_context(params)
    public = _private_key(call, key).public_key()
    limit = public.key_size // 8 - 2 * _hash_of(algorithm).digest_size - 2
    plaintext = params["Plaintext"]
    if len(plaintext) > limit:
        raise ValidationException(
            f"Algorithm {algorithm} and key spec {key.key_spec} cannot encrypt data larger than {limit} bytes."
        )
    blob = public.encrypt(plaintext, pad)
    call.record_use(key)
    return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": algorithm}


def rsa_decrypt(call: Call, params: dict, key: KeyRecord) -> dict:
    _require_usage(key, "ENCRYPT_DECRYPT", "Decrypt")
    algorithm, pad = _oaep(key, params.get("EncryptionAlgorithm"))
    _no_context(params)
    try:
        plaintext = _private_key(call, key).decrypt(params["CiphertextBlob"], pad)
    except ValueError:
        raise InvalidCiphertextException(None) from None
    call.record_use(key, "Decrypt")
    return {"KeyId": key.arn, "Plaintext": plaintext, "EncryptionAlgorithm": algorithm}
