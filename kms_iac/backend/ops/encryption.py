"""Encryption: Encrypt, Decrypt, ReEncrypt (symmetric keys, and RSA keys through
``ops.asymmetric``), GenerateDataKey, GenerateDataKeyWithoutPlaintext."""

from __future__ import annotations

from kms_iac.backend import crypto
from kms_iac.backend.core import Call
from kms_iac.backend.entropy import random_bytes
from kms_iac.backend.errors import (
    IncorrectKeyException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    KMSInvalidStateException,
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_iac.backend.ops import asymmetric, operation
from kms_iac.backend.store import KeyRecord

SYMMETRIC_ALGORITHM = "SYMMETRIC_DEFAULT"
DATA_KEY_BYTES = {"AES_128": 16, "AES_256": 32}
NULL_CIPHERTEXT = (
    "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy constraint: Member must not be null"
)


def refuse_recipient(params: dict) -> None:
    """Refuse a Recipient (Nitro Enclaves / NitroTPM attestation document), naming the gap.

    AWS KMS verifies the document's signature chain up to the AWS Nitro Attestation PKI root
    and encrypts the result to the enclave's key (CiphertextForRecipient). No local document
    can chain to that root, so answering with the plaintext instead would silently hand an
    attested workload's secret to its host: refused instead."""
    if params.get("Recipient"):
        raise UnsupportedOperationException(
            "Recipient (a Nitro Enclaves or NitroTPM attestation document) is not supported by the kms-iac local "
            "backend: it cannot verify documents signed by the AWS Nitro Attestation PKI."
        )


def check_usage(key: KeyRecord, algorithm: str | None, operation: str = "Encrypt") -> None:
    """AWS's refusals for a key that cannot encrypt, or an algorithm a symmetric key lacks."""
    if key.key_usage != "ENCRYPT_DECRYPT":
        raise InvalidKeyUsageException(f"{key.arn} key usage is {key.key_usage} which is not valid for {operation}.")
    if algorithm not in (None, SYMMETRIC_ALGORITHM):
        raise InvalidKeyUsageException(f"The encryption algorithm {algorithm} is not supported by {key.arn}.")


def require_symmetric(key: KeyRecord) -> None:
    """Refuse a non-symmetric key where only a symmetric encryption key will do (GenerateDataKey*)."""
    if key.key_spec != SYMMETRIC_ALGORITHM:
        raise InvalidKeyUsageException(f"Algorithm {SYMMETRIC_ALGORITHM} is incompatible with key spec {key.key_spec}.")


def seal(call: Call, key: KeyRecord, plaintext: bytes, context: dict | None) -> tuple[bytes, str]:
    """Encrypt under the key's current material; return the blob and that material's id."""
    require_symmetric(key)
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
    except (crypto.NotOurFormat, crypto.AuthenticationFailed):  # AWS answers any foreign or damaged blob
        raise InvalidCiphertextException(None) from None  # with no message at all
    if key_id_param is not None:
        named = call.resolve(key_id_param)
        if named.key_id != header.key_id:
            raise IncorrectKeyException(
                "The key ID in the request does not identify a CMK that can perform this operation."
            )
        key = named
    else:
        key = call.store.get_key(header.key_id, call.ctx.region)  # the blob's key in the caller's Region (cached)
        if key is None:
            raise InvalidCiphertextException(None)
    call.admit(key, operation)
    check_usage(key, None, operation)
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
    check_usage(key, params.get("EncryptionAlgorithm"))
    blob, _ = seal(call, key, params["Plaintext"], params.get("EncryptionContext"))
    return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": SYMMETRIC_ALGORITHM}


def _require_blob(params: dict) -> bytes:
    if "CiphertextBlob" not in params:
        raise ValidationException(NULL_CIPHERTEXT)
    return params["CiphertextBlob"]


def open_any(call: Call, blob: bytes, context: dict | None, key_id: str | None, algorithm: str | None,
             operation: str) -> tuple[KeyRecord, bytes, str, str | None]:
    """Decrypt for Decrypt and ReEncrypt's source: a kms-iac blob under a symmetric key, or a raw
    RSAES-OAEP ciphertext under the RSA key ``key_id`` names (``algorithm`` RSAES_OAEP_*).
    Returns (key, plaintext, algorithm, key material id or None for an RSA key)."""
    if algorithm not in (None, SYMMETRIC_ALGORITHM) and key_id is None:
        raise InvalidCiphertextException(None)  # an asymmetric ciphertext names no key
    if algorithm in asymmetric.RSA_ENCRYPTION:
        named = call.resolve(key_id)  # type: ignore[arg-type]
        if named.key_spec != SYMMETRIC_ALGORITHM:
            call.admit(named, operation)
            plaintext, algorithm = asymmetric.rsa_open(call, named, blob, algorithm, context, operation)
            return named, plaintext, algorithm, None
    key, plaintext, material_id = unseal(call, blob, context, key_id, operation)
    if algorithm not in (None, SYMMETRIC_ALGORITHM):
        raise InvalidKeyUsageException(f"The encryption algorithm {algorithm} is not supported by {key.arn}.")
    return key, plaintext, SYMMETRIC_ALGORITHM, material_id


def _ignore_ciphertext(params: dict) -> bool:
    return bool(params.get("DryRun")) and "IGNORE_CIPHERTEXT" in (params.get("DryRunModifiers") or [])


def _authorize_only(call: Call, key_id: str | None, member: str, operation: str) -> KeyRecord:
    """DryRun with IGNORE_CIPHERTEXT: "KMS performs only authorization validation without
    ciphertext validation" (API reference), so the key must be named."""
    if key_id is None:
        raise ValidationException(f"{member} is required when DryRunModifiers contains IGNORE_CIPHERTEXT.")
    return call.key(key_id, operation)


@operation("Decrypt")
def decrypt(call: Call, params: dict) -> dict:
    refuse_recipient(params)
    if _ignore_ciphertext(params):  # the dispatcher answers DryRunOperationException
        return {"KeyId": _authorize_only(call, params.get("KeyId"), "KeyId", "Decrypt").arn}
    key, plaintext, algorithm, material_id = open_any(
        call, _require_blob(params), params.get("EncryptionContext"), params.get("KeyId"),
        params.get("EncryptionAlgorithm"), "Decrypt",
    )
    out = {"KeyId": key.arn, "Plaintext": plaintext, "EncryptionAlgorithm": algorithm}
    if material_id is not None:
        out["KeyMaterialId"] = material_id
    return out


@operation("ReEncrypt")
def re_encrypt(call: Call, params: dict) -> dict:
    """Decrypt under the source key, encrypt under the destination key, inside KMS.

    Either side may be a symmetric key (kms-iac blob, encryption context) or an RSA
    ENCRYPT_DECRYPT key (raw RSAES-OAEP, SourceEncryptionAlgorithm/DestinationEncryptionAlgorithm).
    With DryRun and the IGNORE_CIPHERTEXT modifier only authorization is checked, for the source
    key (SourceKeyId, then required) and the destination."""
    source_algorithm = params.get("SourceEncryptionAlgorithm")
    if _ignore_ciphertext(params):
        source = _authorize_only(call, params.get("SourceKeyId"), "SourceKeyId", "ReEncryptFrom")
        dest = call.key(params["DestinationKeyId"], "ReEncryptTo")
        return {"SourceKeyId": source.arn, "KeyId": dest.arn}  # the dispatcher answers DryRunOperationException
    source, plaintext, source_algorithm, source_material = open_any(
        call, _require_blob(params), params.get("SourceEncryptionContext"), params.get("SourceKeyId"),
        source_algorithm, "ReEncryptFrom",
    )
    dest = call.key(params["DestinationKeyId"], "ReEncryptTo")
    dest_algorithm = params.get("DestinationEncryptionAlgorithm")
    dest_context = params.get("DestinationEncryptionContext")
    dest_material = None
    if asymmetric.is_asymmetric_encryption_key(dest):
        blob, dest_algorithm = asymmetric.rsa_seal(call, dest, plaintext, dest_algorithm, dest_context)
    else:
        check_usage(dest, dest_algorithm)
        blob, dest_material = seal(call, dest, plaintext, dest_context)
        dest_algorithm = SYMMETRIC_ALGORITHM
    out = {
        "CiphertextBlob": blob,
        "SourceKeyId": source.arn,
        "KeyId": dest.arn,
        "SourceEncryptionAlgorithm": source_algorithm,
        "DestinationEncryptionAlgorithm": dest_algorithm,
    }
    if source_material is not None:  # present only for a symmetric source key (API reference)
        out["SourceKeyMaterialId"] = source_material
    if dest_material is not None:
        out["DestinationKeyMaterialId"] = dest_material
    return out


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
    check_usage(key, None)
    refuse_recipient(params)
    plaintext = random_bytes(size)
    blob, material_id = seal(call, key, plaintext, params.get("EncryptionContext"))
    return {"CiphertextBlob": blob, "Plaintext": plaintext, "KeyId": key.arn, "KeyMaterialId": material_id}


@operation("GenerateDataKeyWithoutPlaintext", key="KeyId")
def generate_data_key_without_plaintext(call: Call, params: dict, key: KeyRecord) -> dict:
    size = _data_key_size(params)
    check_usage(key, None)
    blob, material_id = seal(call, key, random_bytes(size), params.get("EncryptionContext"))
    return {"CiphertextBlob": blob, "KeyId": key.arn, "KeyMaterialId": material_id}


__all__ = ["seal", "unseal", "open_any", "refuse_recipient", "NotFoundException"]
