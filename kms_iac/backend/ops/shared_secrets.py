"""Shared secrets: DeriveSharedSecret (ECDH with a KEY_AGREEMENT key) and Encapsulate /
Decapsulate (ML-KEM with an ENCAPSULATE_DECAPSULATE key).

DeriveSharedSecret returns the raw ECDH output, the x-coordinate of the shared point, which the
peer computes with its private key and the KMS key's public key (GetPublicKey); KMS leaves key
derivation to the caller. Encapsulate returns a 32-byte secret and its FIPS 203 ciphertext;
Decapsulate recovers it, refusing only a ciphertext of the wrong length (implicit rejection: any
other ciphertext yields a pseudo-random secret, as the API reference warns).
"""

from __future__ import annotations

from kms_iac.backend import keypairs
from kms_iac.backend.core import Call
from kms_iac.backend.errors import InvalidCiphertextException, ValidationException
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.asymmetric import private_key, require_usage
from kms_iac.backend.ops.encryption import refuse_recipient
from kms_iac.backend.store import KeyRecord


@operation("DeriveSharedSecret", key="KeyId")
def derive_shared_secret(call: Call, params: dict, key: KeyRecord) -> dict:
    require_usage(key, "KEY_AGREEMENT", "DeriveSharedSecret")
    refuse_recipient(params)
    algorithm = params["KeyAgreementAlgorithm"]  # the model allows ECDH only
    try:
        secret = keypairs.ecdh(private_key(call, key), params["PublicKey"])
    except ValueError:
        raise ValidationException(
            f"PublicKey must be a DER-encoded X.509 SubjectPublicKeyInfo of an elliptic curve key on the "
            f"curve of key spec {key.key_spec}."
        ) from None
    call.record_use(key)
    return {"KeyId": key.arn, "SharedSecret": secret, "KeyAgreementAlgorithm": algorithm, "KeyOrigin": key.origin}


@operation("Encapsulate", key="KeyId")
def encapsulate(call: Call, params: dict, key: KeyRecord) -> dict:
    require_usage(key, "ENCAPSULATE_DECAPSULATE", "Encapsulate")
    secret, ciphertext = keypairs.encapsulate(private_key(call, key))
    call.record_use(key)
    return {"KeyId": key.arn, "SharedSecret": secret, "SharedSecretCiphertextBlob": ciphertext,
            "EncapsulationAlgorithm": params["EncapsulationAlgorithm"]}


@operation("Decapsulate", key="KeyId")
def decapsulate(call: Call, params: dict, key: KeyRecord) -> dict:
    require_usage(key, "ENCAPSULATE_DECAPSULATE", "Decapsulate")
    try:
        secret = keypairs.decapsulate(key.key_spec, private_key(call, key), params["SharedSecretCiphertextBlob"])
    except ValueError:
        raise InvalidCiphertextException(None) from None
    call.record_use(key)
    return {"KeyId": key.arn, "SharedSecret": secret, "EncapsulationAlgorithm": params["EncapsulationAlgorithm"]}
