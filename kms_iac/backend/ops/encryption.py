"""Cryptographic use of symmetric keys: Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
GenerateDataKeyWithoutPlaintext."""

from __future__ import annotations

import os

from kms_iac.backend import crypto
from kms_iac.backend.core import Call
from kms_iac.backend.errors import (
    IncorrectKeyException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    KMSInvalidStateException,
    NotFoundException,
    ValidationException,
)
from kms_iac.backend.ops import asymmetric, operation
from kms_iac.backend.store import KeyRecord

SYMMETRIC_ALGORITHM = "SYMMETRIC_DEFAULT"
DATA_KEY_BYTES = {"AES_128": 16, "AES_256": 32}
NOT_OUR_FORMAT = (
    "The ciphertext is not a kms-iac ciphertext blob: it was not produced by this backend "
    "(for example it came from AWS KMS or another emulator), so it cannot be decrypted here."
)


def _check_usage(key: KeyRecord, algorithm: str | None, operation: str = "Encrypt") -> None:
    if key.key_usage != "ENCRYPT_DECRYPT":
        raise InvalidKeyUsageException(f"{key.arn} key usage is {key.key_usage} which is not valid for {operation}.")
    if algorithm not in (None, SYMMETRIC_ALGORITHM):
        raise InvalidKeyUsageException(f"The encryption algorithm {algorithm} is not supported by {key.arn}.")


def seal(call: Call, key: KeyRecord, plaintext: bytes, context: dict | None) -> tuple[bytes, str]:
    """Encrypt under the key's current material; return the blob and that material's id."""
    if key.key_spec != SYMMETRIC_ALGORITHM:  # e.g. GenerateDataKey or ReEncrypt to an RSA key
        raise InvalidKeyUsageException(f"Algorithm {SYMMETRIC_ALGORITHM} is incompatible with key spec {key.key_spec}.")
    if key.custom_key_store_id:  # AES-GCM inside the CloudHSM key store's token
        from kms_iac.backend.ops.custom_key_stores import hsm_seal

        blob = hsm_seal(call, key, plaintext, context)
        call.record_use(key)
        return blob, _material_id(call, key, key.current_version)
    found = call.material(key)
    if found is None:  # no material (never imported): AWS refuses such a key as pending import
        raise KMSInvalidStateException(f"{key.arn} is pending import.")
    version, material = found
    blob = crypto.seal(material, key.key_id, version, plaintext, context)
    call.record_use(key)
    return blob, _material_id(call, key, version)


def _material_id(call: Call, key: KeyRecord, version: int) -> str:
    m = call.store.get_material(key.key_id, key.region, version)
    return m.material_id if m else ""


def unseal(call: Call, blob: bytes, context: dict | None, key_id_param: str | None, operation: str) -> tuple[KeyRecord, bytes, str]:
    """Find the key a blob names, check it against the KeyId given, authorize, and open the blob."""
    try:
        header = crypto.read_header(blob)
    except crypto.NotOurFormat:
        raise InvalidCiphertextException(NOT_OUR_FORMAT) from None
    except crypto.AuthenticationFailed:
        raise InvalidCiphertextException(None) from None
    if key_id_param is not None:
        named = call.resolve(key_id_param)
        if named.key_id != header.key_id:
            raise IncorrectKeyException(
                "The key ID in the request does not identify a CMK that can perform this operation."
            )
        key = named
    else:
        candidates = [k for k in call.store.find_key_any_region(header.key_id) if k.region == call.ctx.region]
        if not candidates:
            raise InvalidCiphertextException(None)
        key = candidates[0]
    call.admit(key, operation)
    _check_usage(key, None, operation)
    if key.custom_key_store_id:  # opened by the CloudHSM key store's token
        from kms_iac.backend import hsm
        from kms_iac.backend.ops.custom_key_stores import hsm_open

        try:
            plaintext = hsm_open(call, key, header, blob, context)
        except (crypto.AuthenticationFailed, hsm.HsmKeyMissing):
            raise InvalidCiphertextException(None) from None
        call.record_use(key, operation)
        return key, plaintext, _material_id(call, key, header.version)
    found = call.material(key, header.version)
    if found is None:
        raise InvalidCiphertextException(None)
    try:
        plaintext = crypto.open_blob(found[1], header, blob, context)
    except crypto.AuthenticationFailed:
        raise InvalidCiphertextException(None) from None
    call.record_use(key, "ReEncrypt" if operation.startswith("ReEncrypt") else operation)
    return key, plaintext, _material_id(call, key, header.version)


@operation("Encrypt", key="KeyId")
def encrypt(call: Call, params: dict, key: KeyRecord) -> dict:
    if asymmetric.is_asymmetric_encryption_key(key):
        return asymmetric.rsa_encrypt(call, params, key)
    _check_usage(key, params.get("EncryptionAlgorithm"))
    blob, _ = seal(call, key, params["Plaintext"], params.get("EncryptionContext"))
    return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": SYMMETRIC_ALGORITHM}


@operation("Decrypt")
def decrypt(call: Call, params: dict) -> dict:
    if params.get("EncryptionAlgorithm") not in (None, SYMMETRIC_ALGORITHM) and params.get("KeyId") is None:
        raise InvalidCiphertextException(None)
    if "CiphertextBlob" not in params:
        raise ValidationException(
            "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy constraint: Member must not be null"
        )
    if params.get("EncryptionAlgorithm") in asymmetric.RSA_ENCRYPTION:  # raw RSA-OAEP ciphertext: KeyId names the key
        named = call.resolve(params["KeyId"])
        if named.key_spec != SYMMETRIC_ALGORITHM:
            call.admit(named, "Decrypt")
            return asymmetric.rsa_decrypt(call, params, named)
    key, plaintext, material_id = unseal(
        call, params["CiphertextBlob"], params.get("EncryptionContext"), params.get("KeyId"), "Decrypt"
    )
    if params.get("EncryptionAlgorithm") not in (None, SYMMETRIC_ALGORITHM):
        raise InvalidKeyUsageException(f"The encryption algorithm {params['EncryptionAlgorithm']} is not supported by {key.arn}.")
    return {"KeyId": key.arn, "Plaintext": plaintext, "EncryptionAlgorithm": SYMMETRIC_ALGORITHM, "KeyMaterialId": material_id}


@operation("ReEncrypt")
def re_encrypt(call: Call, params: dict) -> dict:
    if "CiphertextBlob" not in params:
        raise ValidationException(
            "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy constraint: Member must not be null"
        )
    source, plaintext, source_material = unseal(
        call, params["CiphertextBlob"], params.get("SourceEncryptionContext"), params.get("SourceKeyId"), "ReEncryptFrom"
    )
    dest = call.key(params["DestinationKeyId"], "ReEncryptTo")
    _check_usage(dest, params.get("DestinationEncryptionAlgorithm"))
    blob, dest_material = seal(call, dest, plaintext, params.get("DestinationEncryptionContext"))
    return {
        "CiphertextBlob": blob,
        "SourceKeyId": source.arn,
        "KeyId": dest.arn,
        "SourceEncryptionAlgorithm": SYMMETRIC_ALGORITHM,
        "DestinationEncryptionAlgorithm": SYMMETRIC_ALGORITHM,
        "SourceKeyMaterialId": source_material,
        "DestinationKeyMaterialId": dest_material,
    }


def _data_key_size(params: dict) -> int:
    spec, n = params.get("KeySpec"), params.get("NumberOfBytes")
    if spec is not None and n is not None:
        raise ValidationException("Please specify either number of bytes or key spec.")
    if spec is None and n is None:
        raise ValidationException("Please specify either number of bytes or key spec.")
    return DATA_KEY_BYTES[spec] if spec is not None else n


@operation("GenerateDataKey", key="KeyId")
def generate_data_key(call: Call, params: dict, key: KeyRecord) -> dict:
    size = _data_key_size(params)
    _check_usage(key, None)
    plaintext = os.urandom(size)
    blob, material_id = seal(call, key, plaintext, params.get("EncryptionContext"))
    return {"CiphertextBlob": blob, "Plaintext": plaintext, "KeyId": key.arn, "KeyMaterialId": material_id}


@operation("GenerateDataKeyWithoutPlaintext", key="KeyId")
def generate_data_key_without_plaintext(call: Call, params: dict, key: KeyRecord) -> dict:
    size = _data_key_size(params)
    _check_usage(key, None)
    blob, material_id = seal(call, key, os.urandom(size), params.get("EncryptionContext"))
    return {"CiphertextBlob": blob, "KeyId": key.arn, "KeyMaterialId": material_id}


__all__ = ["seal", "unseal", "NotFoundException"]
