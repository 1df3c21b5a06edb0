"""Asymmetric (RSA, ECC, Ed25519, ML-DSA, ML-KEM) and HMAC KMS keys: CreateKey's checks for
them, GetPublicKey, Sign, Verify, GenerateMac, VerifyMac, and Encrypt/Decrypt with RSA
ENCRYPT_DECRYPT keys.

The private key (PKCS#8 DER) or HMAC secret is the key's material: it is stored wrapped
under the root key through :meth:`Backend.add_material`, like symmetric material. What each
key spec is and its cryptography live in :mod:`kms_iac.backend.keypairs`.
RSA ciphertexts are the raw RSAES-OAEP output (no kms-iac header), as in AWS KMS, so a
ciphertext made locally with the public key decrypts here and the other way round.
"""

from __future__ import annotations

import hmac
from typing import Any

from cryptography.hazmat.primitives.asymmetric import padding

from kms_iac.backend import keypairs
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
from kms_iac.backend.keypairs import EC_CURVES, HMAC_BYTES, RSA_BITS, RSA_ENCRYPTION, USAGES, algorithm_fields, hash_of
from kms_iac.backend.ops import operation
from kms_iac.backend.store import KeyRecord

SYMMETRIC = keypairs.SYMMETRIC
# Key specs AWS has that this backend refuses, and why (in the regions where AWS offers them).
UNSUPPORTED_SPECS = {
    keypairs.SM2: "SM2 keys (China Regions only) are not supported by the kms-iac local backend: no maintained "
                  "Python library implements SM2DSA, SM2PKE and SM2 key agreement as AWS KMS does",
}
NON_SYMMETRIC_NEEDS_USAGE = "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys."

__all__ = ["EC_CURVES", "HMAC_BYTES", "RSA_BITS", "RSA_ENCRYPTION", "USAGES", "algorithm_fields", "check_spec_usage",
           "generate_material", "is_asymmetric_encryption_key", "rsa_decrypt", "rsa_encrypt", "private_key"]


# -- CreateKey support ------------------------------------------------------------------


def check_spec_usage(spec: str, usage: str | None, origin: str, custom_key_store: bool, region: str = "") -> str:
    """The key usage a non-symmetric CreateKey gets; raise AWS's refusal for a bad pair."""
    where = keypairs.region_refusal(spec, region)
    if where is not None:
        raise UnsupportedOperationException(f"KeySpec {spec} {where}")
    if spec in UNSUPPORTED_SPECS:
        raise UnsupportedOperationException(UNSUPPORTED_SPECS[spec] + ".")
    if spec not in USAGES:
        raise UnsupportedOperationException(f"KeySpec {spec} is not supported by the kms-iac local backend yet.")
    if usage is None:
        raise ValidationException(NON_SYMMETRIC_NEEDS_USAGE)
    if usage not in USAGES[spec]:
        raise ValidationException(f"KeyUsage {usage} is not compatible with KeySpec {spec}")
    if origin == "EXTERNAL" and not custom_key_store:  # imported material (ops.imports)
        from kms_iac.backend.ops.imports import check_importable

        check_importable(spec)
    elif origin != "AWS_KMS" or custom_key_store:
        raise UnsupportedOperationException(
            f"KeySpec {spec} with Origin {origin} or in a custom key store is not supported by the kms-iac local backend yet."
        )
    return usage


def generate_material(call: Call, spec: str) -> bytes:
    """A fresh private key (PKCS#8 DER) or HMAC secret for ``spec`` (RSA and ML-DSA off the event loop)."""
    return call.compute(keypairs.generate_material, spec, heavy=keypairs.is_heavy(spec, "generate"))


# -- helpers ----------------------------------------------------------------------------


def require_usage(key: KeyRecord, usage: str, operation_name: str) -> None:
    """InvalidKeyUsageException, as AWS words it, unless ``key`` has ``usage``."""
    if key.key_usage != usage:
        raise InvalidKeyUsageException(f"{key.arn} key usage is {key.key_usage} which is not valid for {operation_name}.")


def incompatible(algorithm: str, key: KeyRecord) -> InvalidKeyUsageException:
    return InvalidKeyUsageException(f"Algorithm {algorithm} is incompatible with key spec {key.key_spec}.")


def _material(call: Call, key: KeyRecord) -> bytes:
    found = call.material(key)
    if found is None:
        raise KMSInvalidStateException(f"{key.arn} is pending import.")
    return found[1]


def private_key(call: Call, key: KeyRecord) -> Any:
    """The key's parsed private key (every operation gets it here), from the backend's cache of
    parsed keys; material this backend generated (origin AWS_KMS) is parsed without RSA's key
    validation, imported material with it (see :func:`keypairs.load_private_key`)."""
    found = call.material(key)
    if found is None:
        raise KMSInvalidStateException(f"{key.arn} is pending import.")
    version, der = found
    return call.backend.parsed_keys.get((key.key_id, key.region, version), key.key_spec, der,
                                        trusted=key.origin == "AWS_KMS")


# -- GetPublicKey -----------------------------------------------------------------------


@operation("GetPublicKey", key="KeyId")
def get_public_key(call: Call, params: dict, key: KeyRecord) -> dict:
    if key.key_spec == SYMMETRIC or key.key_spec in HMAC_BYTES:
        raise UnsupportedOperationException(f"{key.arn} key spec is {key.key_spec} which is not valid for GetPublicKey.")
    public = keypairs.public_key_der(private_key(call, key))
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


def _signing_input(key: KeyRecord, params: dict, operation_name: str) -> keypairs.SigningInput:
    """Check a Sign/Verify request against the key, as AWS KMS does, before any cryptography.

    AWS's rules (Sign API reference, MessageType): DIGEST must be as long as the algorithm's
    hash; ED25519_SHA_512 takes RAW only and ED25519_PH_SHA_512 DIGEST only (a SHA-512
    digest, which KMS hashes again for Ed25519ph); EXTERNAL_MU is ML-DSA's 64-byte mu and only
    ML-DSA's, which takes no DIGEST."""
    require_usage(key, "SIGN_VERIFY", operation_name)
    algorithm = params["SigningAlgorithm"]
    if algorithm not in keypairs.signing_algorithms(key.key_spec):
        raise incompatible(algorithm, key)
    message = params["Message"]
    message_type = params.get("MessageType") or "RAW"
    spec = key.key_spec
    if spec == keypairs.ED25519:
        wanted = "RAW" if algorithm == "ED25519_SHA_512" else "DIGEST"
        if message_type != wanted:
            raise ValidationException(f"Message type {message_type} is incompatible with algorithm {algorithm}.")
    elif spec in keypairs.ML_DSA:
        if message_type == "DIGEST":
            raise ValidationException(f"Message type {message_type} is incompatible with key spec {spec}.")
        if message_type == "EXTERNAL_MU" and len(message) != keypairs.ML_DSA_MU_BYTES:
            raise ValidationException(f"Message of type EXTERNAL_MU must be {keypairs.ML_DSA_MU_BYTES} bytes long "
                                      f"for algorithm {algorithm}.")
    elif message_type == "EXTERNAL_MU":
        raise ValidationException(f"Message type {message_type} is incompatible with key spec {spec}.")
    if message_type == "DIGEST" and len(message) != hash_of(algorithm).digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    return keypairs.SigningInput(algorithm, message, message_type)


@operation("Sign", key="KeyId")
def sign(call: Call, params: dict, key: KeyRecord) -> dict:
    req = _signing_input(key, params, "Sign")
    signature = call.compute(keypairs.sign, key.key_spec, private_key(call, key), req,
                             heavy=keypairs.is_heavy(key.key_spec))
    call.record_use(key)
    return {"KeyId": key.arn, "Signature": signature, "SigningAlgorithm": req.algorithm}


@operation("Verify", key="KeyId")
def verify(call: Call, params: dict, key: KeyRecord) -> dict:
    req = _signing_input(key, params, "Verify")
    valid = call.compute(keypairs.verify, key.key_spec, private_key(call, key).public_key(), req, params["Signature"],
                         heavy=keypairs.is_heavy(key.key_spec, "verify"))
    call.record_use(key)
    if not valid:
        raise KMSInvalidSignatureException()
    return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": req.algorithm}


# -- GenerateMac / VerifyMac ------------------------------------------------------------


def _mac(call: Call, key: KeyRecord, params: dict, operation_name: str) -> tuple[str, bytes]:
    require_usage(key, "GENERATE_VERIFY_MAC", operation_name)
    algorithm = params["MacAlgorithm"]
    if algorithm not in algorithm_fields(key.key_spec, key.key_usage)["MacAlgorithms"]:
        raise incompatible(algorithm, key)
    digest = hmac.new(_material(call, key), params["Message"], hash_of(algorithm).name).digest()
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


# -- Encrypt / Decrypt / ReEncrypt with RSA ENCRYPT_DECRYPT keys (called from ops.encryption) -------


def is_asymmetric_encryption_key(key: KeyRecord) -> bool:
    return key.key_spec in RSA_BITS and key.key_usage == "ENCRYPT_DECRYPT"


def _oaep(key: KeyRecord, algorithm: str | None) -> tuple[str, padding.OAEP]:
    algorithm = algorithm or SYMMETRIC
    if algorithm not in RSA_ENCRYPTION:
        raise incompatible(algorithm, key)
    h = hash_of(algorithm)
    return algorithm, padding.OAEP(mgf=padding.MGF1(hash_of(algorithm)), algorithm=h, label=None)


def _no_context(context: dict | None) -> None:
    if context:
        raise ValidationException("EncryptionContext is not supported for asymmetric KMS keys.")


def rsa_seal(call: Call, key: KeyRecord, plaintext: bytes, algorithm: str | None, context: dict | None) -> tuple[bytes, str]:
    """RSAES-OAEP under the key's public key (Encrypt, ReEncrypt to an RSA key): (ciphertext, algorithm)."""
    algorithm, pad = _oaep(key, algorithm)
    _no_context(context)
    public = private_key(call, key).public_key()
    limit = public.key_size // 8 - 2 * hash_of(algorithm).digest_size - 2
    if len(plaintext) > limit:
        raise ValidationException(
            f"Algorithm {algorithm} and key spec {key.key_spec} cannot encrypt data larger than {limit} bytes."
        )
    blob = public.encrypt(plaintext, pad)
    call.record_use(key)
    return blob, algorithm


def rsa_open(call: Call, key: KeyRecord, blob: bytes, algorithm: str | None, context: dict | None,
             operation_name: str) -> tuple[bytes, str]:
    """Decrypt a raw RSAES-OAEP ciphertext (Decrypt, ReEncrypt from an RSA key): (plaintext, algorithm)."""
    require_usage(key, "ENCRYPT_DECRYPT", operation_name)
    algorithm, pad = _oaep(key, algorithm)
    _no_context(context)
    try:
        plaintext = call.compute(private_key(call, key).decrypt, blob, pad)
    except ValueError:
        raise InvalidCiphertextException(None) from None
    call.record_use(key, "ReEncrypt" if operation_name.startswith("ReEncrypt") else operation_name)
    return plaintext, algorithm


def rsa_encrypt(call: Call, params: dict, key: KeyRecord) -> dict:
    blob, algorithm = rsa_seal(call, key, params["Plaintext"], params.get("EncryptionAlgorithm"),
                               params.get("EncryptionContext"))
    return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": algorithm}


def rsa_decrypt(call: Call, params: dict, key: KeyRecord) -> dict:
    plaintext, algorithm = rsa_open(call, key, params["CiphertextBlob"], params.get("EncryptionAlgorithm"),
                                    params.get("EncryptionContext"), "Decrypt")
    return {"KeyId": key.arn, "Plaintext": plaintext, "EncryptionAlgorithm": algorithm}
