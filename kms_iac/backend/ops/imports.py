"""Imported key material (BYOK): GetParametersForImport, ImportKeyMaterial,
DeleteImportedKeyMaterial.

The wrapping key pair lives only as long as its import token (24 hours); its private
half is stored wrapped under the root key. Material is never rotated automatically,
may expire (``ValidTo``), and can only ever be re-imported identical: a keyed
fingerprint of the first import is kept for that check.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from kms_iac.backend import keystate
from kms_iac.backend.clock import DAY
from kms_iac.backend.core import Call
from kms_iac.backend.errors import (
    ExpiredImportTokenException,
    IncorrectKeyMaterialException,
    InvalidCiphertextException,
    InvalidImportTokenException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_iac.backend.ops import operation
from kms_iac.backend.store import KeyRecord

TOKEN_LIFETIME = DAY
KEY_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_OAEP_HASH = {"RSAES_OAEP_SHA_1": hashes.SHA1, "RSAES_OAEP_SHA_256": hashes.SHA256,
              "RSA_AES_KEY_WRAP_SHA_1": hashes.SHA1, "RSA_AES_KEY_WRAP_SHA_256": hashes.SHA256}


def _require_external(key: KeyRecord) -> None:
    if key.origin != "EXTERNAL":
        raise UnsupportedOperationException(f"{key.arn} origin is {key.origin} which is not valid for this operation.")


def _aad(token: str) -> bytes:
    return f"import-token#{token}".encode()


@operation("GetParametersForImport", key="KeyId", mutates=True)
def get_parameters_for_import(call: Call, params: dict, key: KeyRecord) -> dict:
    _require_external(key)
    algorithm, spec = params["WrappingAlgorithm"], params["WrappingKeySpec"]
    if algorithm not in _OAEP_HASH and algorithm != "RSAES_PKCS1_V1_5":
        raise UnsupportedOperationException(f"Wrapping algorithm {algorithm} is not supported by the kms-iac local backend.")
    if spec not in KEY_BITS:
        raise UnsupportedOperationException(f"Wrapping key spec {spec} is not supported by the kms-iac local backend.")
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS[spec])
    token = os.urandom(32).hex()
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    wrapped = call.backend.wrapper.seal_blob(_aad(token), der)
    valid_to = call.now + TOKEN_LIFETIME
    call.conn.execute(
        "INSERT INTO import_params (token, key_id, region, algorithm, wrapped_private_key, valid_to) VALUES (?, ?, ?, ?, ?, ?)",
        (token, key.key_id, key.region, algorithm, wrapped, valid_to),
    )
    public = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"KeyId": key.arn, "ImportToken": token.encode(), "PublicKey": public, "ParametersValidTo": valid_to}


def _unwrap(algorithm: str, private: rsa.RSAPrivateKey, blob: bytes) -> bytes:
    try:
        if algorithm == "RSAES_PKCS1_V1_5":
            return private.decrypt(blob, padding.PKCS1v15())
        oaep = padding.OAEP(mgf=padding.MGF1(_OAEP_HASH[algorithm]()), algorithm=_OAEP_HASH[algorithm](), label=None)
        if algorithm.startswith("RSAES_OAEP"):
            return private.decrypt(blob, oaep)
        n = private.key_size // 8  # RSA_AES_KEY_WRAP: RSA-OAEP(ephemeral AES key) || AES-KWP(material)
        return aes_key_unwrap_with_padding(private.decrypt(blob[:n], oaep), blob[n:])
    except (ValueError, InvalidUnwrap):
        raise InvalidCiphertextException("The encrypted key material could not be decrypted with the import parameters.") from None


@operation("ImportKeyMaterial", key="KeyId", mutates=True)
def import_key_material(call: Call, params: dict, key: KeyRecord) -> dict:
    _require_external(key)
    model = params.get("ExpirationModel") or "KEY_MATERIAL_EXPIRES"
    valid_to = params.get("ValidTo")
    if model == "KEY_MATERIAL_EXPIRES" and valid_to is None:
        raise ValidationException("A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES")
    if model == "KEY_MATERIAL_DOES_NOT_EXPIRE" and valid_to is not None:
        raise ValidationException("A validTo date must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE")
    if valid_to is not None and valid_to <= call.now:
        raise ValidationException("The validTo date must be in the future.")
    token = params["ImportToken"].decode("ascii", "replace")
    row = call.conn.execute(
        "SELECT key_id, region, algorithm, wrapped_private_key, valid_to FROM import_params WHERE token=?", (token,)
    ).fetchone()
    if row is None or (row[0], row[1]) != (key.key_id, key.region):
        raise InvalidImportTokenException("The import token is invalid or belongs to another KMS key.")
    if row[4] <= call.now:
        raise ExpiredImportTokenException("The import token has expired. Call GetParametersForImport again.")
    private = serialization.load_der_private_key(call.backend.wrapper.open_blob(_aad(token), row[3]), password=None)
    material = _unwrap(row[2], private, params["EncryptedKeyMaterial"])  # type: ignore[arg-type]
    if len(material) != 32:
        raise IncorrectKeyMaterialException("Key material for a SYMMETRIC_DEFAULT key must be 256 bits (32 bytes).")
    fingerprint = hmac.new(call.backend.wrapper.fingerprint_key, key.key_id.encode() + material, hashlib.sha256).hexdigest()
    known = call.conn.execute(
        "SELECT fingerprint FROM imported_material WHERE key_id=? AND region=?", (key.key_id, key.region)
    ).fetchone()
    if known is not None and not hmac.compare_digest(known[0], fingerprint):
        raise IncorrectKeyMaterialException("The key material is different from the key material previously imported into this KMS key.")
    c = call.conn
    if known is None:
        c.execute("INSERT INTO imported_material (key_id, region, fingerprint) VALUES (?, ?, ?)", (key.key_id, key.region, fingerprint))
    has_material = call.store.get_material(key.key_id, key.region, key.current_version) is not None if key.current_version else False
    if not has_material:
        version = max(key.current_version, 1)  # re-import restores the same version: old ciphertexts decrypt again
        from kms_iac.backend.store import Material

        call.store.add_material(c, key.key_id, key.region, Material(
            version, os.urandom(32).hex(), call.backend.wrapper.wrap(key.key_id, version, material), call.now, None))
        call.store.update_key(c, key, current_version=version)
    state = key.state if key.state in (keystate.PENDING_DELETION, keystate.DISABLED) else keystate.ENABLED
    call.store.update_key(c, key, state=state, valid_to=valid_to)
    c.execute("DELETE FROM import_params WHERE token=?", (token,))
    material_id = call.store.get_material(key.key_id, key.region, key.current_version)
    return {"KeyId": key.arn, "KeyMaterialId": material_id.material_id if material_id else ""}


@operation("DeleteImportedKeyMaterial", key="KeyId", mutates=True)
def delete_imported_key_material(call: Call, params: dict, key: KeyRecord) -> dict:
    _require_external(key)
    call.backend.expire_imported_material(call.conn, key)
    return {"KeyId": key.arn}
