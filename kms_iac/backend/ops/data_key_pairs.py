"""GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: asymmetric key pairs for use
outside KMS, the private key encrypted under a symmetric encryption KMS key.

As the API reference says: the public key is a DER X.509 SubjectPublicKeyInfo, the private
key a DER PKCS#8 PrivateKeyInfo (ML-KEM's in seed form, so every ML-KEM private key is the same
length), and PrivateKeyCiphertextBlob is an ordinary ciphertext of the symmetric key, bound to
the encryption context: Decrypt returns the PKCS#8 bytes. Key usage rules do not apply to data
key pairs (KMS cannot enforce them outside KMS), so any KeyPairSpec goes with any purpose.
"""

from __future__ import annotations

from kms_iac.backend import keypairs
from kms_iac.backend.core import Call
from kms_iac.backend.errors import UnsupportedOperationException
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.asymmetric import UNSUPPORTED_SPECS
from kms_iac.backend.ops.encryption import check_usage, refuse_recipient, require_symmetric, seal
from kms_iac.backend.store import KeyRecord


def _new_pair(spec: str) -> tuple[bytes, bytes]:
    """(PKCS#8 private key, SubjectPublicKeyInfo) of a fresh pair; its own material, so not re-validated."""
    private_der = keypairs.generate_material(spec)
    return private_der, keypairs.public_key_der(keypairs.load_private_key(spec, private_der, trusted=True))


def _key_pair(call: Call, params: dict, key: KeyRecord, operation_name: str) -> tuple[dict, bytes]:
    """Check the request, make the pair, encrypt its private key: (response without the
    plaintext private key, the plaintext private key)."""
    spec = params["KeyPairSpec"]
    check_usage(key, None, operation_name)
    require_symmetric(key)
    if key.custom_key_store_id:
        raise UnsupportedOperationException(
            f"{key.arn} is in a custom key store: {operation_name} needs a symmetric encryption KMS key "
            "outside custom key stores."
        )
    where = keypairs.region_refusal(spec, call.ctx.region)
    if where is not None:
        raise UnsupportedOperationException(f"KeyPairSpec {spec} {where}")
    if spec not in keypairs.DATA_KEY_PAIR_SPECS:
        raise UnsupportedOperationException(UNSUPPORTED_SPECS.get(spec, f"KeyPairSpec {spec} is not supported") + ".")
    private_der, public_der = call.compute(_new_pair, spec, heavy=keypairs.is_heavy(spec, "generate"))
    blob, material_id = seal(call, key, private_der, params.get("EncryptionContext"))
    return {
        "PrivateKeyCiphertextBlob": blob,
        "PublicKey": public_der,
        "KeyId": key.arn,
        "KeyPairSpec": spec,
        "KeyMaterialId": material_id,
    }, private_der


@operation("GenerateDataKeyPair", key="KeyId")
def generate_data_key_pair(call: Call, params: dict, key: KeyRecord) -> dict:
    refuse_recipient(params)
    out, private_der = _key_pair(call, params, key, "GenerateDataKeyPair")
    return {**out, "PrivateKeyPlaintext": private_der}


@operation("GenerateDataKeyPairWithoutPlaintext", key="KeyId")
def generate_data_key_pair_without_plaintext(call: Call, params: dict, key: KeyRecord) -> dict:
    out, _ = _key_pair(call, params, key, "GenerateDataKeyPairWithoutPlaintext")
    return out
