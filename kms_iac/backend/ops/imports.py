"""Imported key material (BYOK): GetParametersForImport, ImportKeyMaterial,
DeleteImportedKeyMaterial, for symmetric, HMAC and asymmetric (RSA, ECC) keys.

The wrapping key pair lives only as long as its import token (24 hours); its private half is
stored wrapped under the root key. What is imported is checked against the key spec as AWS
documents it ("Requirements for imported key material"): 256 bits for SYMMETRIC_DEFAULT,
between the hash length and the hash block size for HMAC keys, a PKCS#8 DER private key of
the key spec's size or curve for asymmetric keys.

Each imported material is a row of ``materials`` whose id AWS derives "from the KMS key ID and
the imported key material", so the same material imported again gets the same id (a keyed
hash here, never a plain one). Deleting or expiring material keeps its row without its bytes
(``wrapped`` empty): the id stays listed (ImportState PENDING_IMPORT) and DescribeKey keeps
CurrentKeyMaterialId, as AWS does; importing the identical material again restores it.
``import_materials`` holds what AWS shows per material: its description and ValidTo.

Symmetric keys may take new material (ImportType NEW_KEY_MATERIAL): it waits, pending
rotation, as the version after the current one until RotateKeyOnDemand makes it current
(``ops.rotation``). For a multi-Region primary every replica must import the same material
(EXISTING_KEY_MATERIAL) before the rotation. Imported material is never rotated
automatically. Asymmetric and HMAC keys have one material for life.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from kms_iac.backend import keystate
from kms_iac.backend.clock import DAY
from kms_iac.backend.core import Backend, Call
from kms_iac.backend.errors import (
    ExpiredImportTokenException,
    IncorrectKeyMaterialException,
    InvalidCiphertextException,
    InvalidImportTokenException,
    KMSInvalidStateException,
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.asymmetric import EC_CURVES, HMAC_BYTES, RSA_BITS
from kms_iac.backend.store import KeyRecord, Material

SYMMETRIC = "SYMMETRIC_DEFAULT"
ED25519 = "ECC_NIST_EDWARDS25519"
TOKEN_LIFETIME = DAY
KEY_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
_OAEP_HASH = {"RSAES_OAEP_SHA_1": hashes.SHA1, "RSAES_OAEP_SHA_256": hashes.SHA256,
              "RSA_AES_KEY_WRAP_SHA_1": hashes.SHA1, "RSA_AES_KEY_WRAP_SHA_256": hashes.SHA256}
RSA_AES_WRAPPING = ("RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256")
SYMMETRIC_BYTES = 32
# HMAC key material: at least the hash length, at most the hash's block size (AWS developer
# guide, requirements for imported key material; bytes).
HMAC_LENGTHS = {"HMAC_224": (28, 64), "HMAC_256": (32, 64), "HMAC_384": (48, 128), "HMAC_512": (64, 128)}
NEW, EXISTING = "NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"
DOES_NOT_EXPIRE, EXPIRES = "KEY_MATERIAL_DOES_NOT_EXPIRE", "KEY_MATERIAL_EXPIRES"
_SYMMETRIC_ONLY_MEMBERS = ("ImportType", "KeyMaterialDescription", "KeyMaterialId")


def importable(spec: str) -> bool:
    """Whether this backend can take imported material for ``spec``."""
    return spec == SYMMETRIC or spec in HMAC_LENGTHS or spec in RSA_BITS or spec in EC_CURVES or spec == ED25519


def check_importable(spec: str) -> None:
    """CreateKey with Origin EXTERNAL: refuse the key specs whose material this backend cannot take."""
    if not importable(spec):
        raise UnsupportedOperationException(
            f"KeySpec {spec} with Origin EXTERNAL is not supported by the kms-iac local backend yet."
        )


def _require_external(key: KeyRecord) -> None:
    if key.origin != "EXTERNAL":
        raise UnsupportedOperationException(f"{key.arn} origin is {key.origin} which is not valid for this operation.")


def _aad(token: str) -> bytes:
    return f"import-token#{token}".encode()


# -- GetParametersForImport ---------------------------------------------------------------


def _check_wrapping(key: KeyRecord, algorithm: str, wrapping_spec: str) -> None:
    """AWS's documented limits on wrapping (GetParametersForImport, WrappingAlgorithm)."""
    if algorithm == "RSAES_PKCS1_V1_5":  # "As of October 10, 2023, KMS does not support" it
        raise UnsupportedOperationException(f"Wrapping algorithm {algorithm} is no longer supported by AWS KMS.")
    if algorithm not in _OAEP_HASH:  # SM2PKE: China Regions only
        raise UnsupportedOperationException(f"Wrapping algorithm {algorithm} is not supported by the kms-iac local backend.")
    if wrapping_spec not in KEY_BITS:
        raise UnsupportedOperationException(f"Wrapping key spec {wrapping_spec} is not supported by the kms-iac local backend.")
    if key.key_spec in RSA_BITS and algorithm not in RSA_AES_WRAPPING:  # "To import an RSA private key, you must
        raise ValidationException(  # use an RSA_AES wrapping algorithm"
            f"Wrapping algorithm {algorithm} cannot wrap {key.key_spec} key material: use RSA_AES_KEY_WRAP_SHA_1 "
            "or RSA_AES_KEY_WRAP_SHA_256."
        )
    if key.key_spec == "ECC_NIST_P521" and algorithm not in RSA_AES_WRAPPING and wrapping_spec == "RSA_2048":
        raise ValidationException(  # "You cannot use the RSAES_OAEP_SHA_* wrapping algorithm with the RSA_2048
            f"Wrapping algorithm {algorithm} with wrapping key spec RSA_2048 cannot wrap ECC_NIST_P521 key "  # ..."
            "material: use a larger wrapping key spec or an RSA_AES_KEY_WRAP algorithm."
        )


@operation("GetParametersForImport", key="KeyId", mutates=True)
def get_parameters_for_import(call: Call, params: dict, key: KeyRecord) -> dict:
    _require_external(key)
    algorithm, spec = params["WrappingAlgorithm"], params["WrappingKeySpec"]
    _check_wrapping(key, algorithm, spec)
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


# -- ImportKeyMaterial ----------------------------------------------------------------------


def _unwrap(algorithm: str, private: rsa.RSAPrivateKey, blob: bytes) -> bytes:
    try:
        if algorithm == "RSAES_PKCS1_V1_5":  # a token issued before this backend refused the algorithm
            return private.decrypt(blob, padding.PKCS1v15())
        oaep = padding.OAEP(mgf=padding.MGF1(_OAEP_HASH[algorithm]()), algorithm=_OAEP_HASH[algorithm](), label=None)
        if algorithm.startswith("RSAES_OAEP"):
            return private.decrypt(blob, oaep)
        n = private.key_size // 8  # RSA_AES_KEY_WRAP: RSA-OAEP(ephemeral AES key) || AES-KWP(material)
        return aes_key_unwrap_with_padding(private.decrypt(blob[:n], oaep), blob[n:])
    except (ValueError, InvalidUnwrap):
        raise InvalidCiphertextException("The encrypted key material could not be decrypted with the import parameters.") from None


def _asymmetric_material(spec: str, der: bytes) -> bytes:
    """The PKCS#8 DER private key, re-encoded canonically, if it is one of ``spec``; else refused."""
    try:
        private = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        private = None
    if spec in RSA_BITS:
        fits = isinstance(private, rsa.RSAPrivateKey) and private.key_size == RSA_BITS[spec]
    elif spec in EC_CURVES:
        fits = isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, EC_CURVES[spec])
    else:
        fits = isinstance(private, ed25519.Ed25519PrivateKey)
    if not fits:
        raise IncorrectKeyMaterialException(
            f"The key material is not a PKCS #8 DER-encoded private key of key spec {spec}."
        )
    return private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,  # type: ignore[union-attr]
                                 serialization.NoEncryption())


def _checked_material(spec: str, material: bytes) -> bytes:
    """``material`` as stored for a key of ``spec``, or AWS's refusal when it cannot be one."""
    if spec == SYMMETRIC:
        if len(material) != SYMMETRIC_BYTES:
            raise IncorrectKeyMaterialException("Key material for a SYMMETRIC_DEFAULT key must be 256 bits (32 bytes).")
        return material
    if spec in HMAC_LENGTHS:
        low, high = HMAC_LENGTHS[spec]
        if not low <= len(material) <= high:
            raise IncorrectKeyMaterialException(
                f"Key material for a {spec} key must be between {low} and {high} bytes long."
            )
        return material
    return _asymmetric_material(spec, material)


def _material_id(call: Call, key: KeyRecord, material: bytes) -> str:
    """AWS derives the id from the key id and the material: the same material, the same id in
    every Region of a multi-Region key. Keyed, so the id reveals nothing about the material."""
    return hmac.new(call.backend.wrapper.fingerprint_key, key.key_id.encode() + material, hashlib.sha256).hexdigest()


def _expiry(params: dict, now: float) -> float | None:
    """ValidTo from ExpirationModel and ValidTo, checked as AWS checks them."""
    model = params.get("ExpirationModel") or EXPIRES
    valid_to = params.get("ValidTo")
    if model == EXPIRES and valid_to is None:
        raise ValidationException("A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES")
    if model == DOES_NOT_EXPIRE and valid_to is not None:
        raise ValidationException("A validTo date must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE")
    if valid_to is not None and valid_to <= now:
        raise ValidationException("The validTo date must be in the future.")
    return valid_to


def _redeem_token(call: Call, key: KeyRecord, raw_token: bytes) -> tuple[str, str, rsa.RSAPrivateKey]:
    """(token, wrapping algorithm, wrapping private key) of a live import token for ``key``."""
    token = raw_token.decode("ascii", "replace")
    row = call.conn.execute(
        "SELECT key_id, region, algorithm, wrapped_private_key, valid_to FROM import_params WHERE token=?", (token,)
    ).fetchone()
    if row is None or (row[0], row[1]) != (key.key_id, key.region):
        raise InvalidImportTokenException("The import token is invalid or belongs to another KMS key.")
    if row[4] <= call.now:
        raise ExpiredImportTokenException("The import token has expired. Call GetParametersForImport again.")
    private = serialization.load_der_private_key(call.backend.wrapper.open_blob(_aad(token), row[3]), password=None)
    return token, row[2], private  # type: ignore[return-value]


@dataclass
class _Target:
    """Where an import lands: the material version, and whether it is new to the key."""

    version: int
    new: bool


def _legacy_fingerprint(c: sqlite3.Connection, key: KeyRecord) -> str | None:
    """Keys imported by earlier kms-iac versions: the first import's keyed fingerprint (the
    material id now), kept while their material rows carry random ids."""
    row = c.execute("SELECT fingerprint FROM imported_material WHERE key_id=? AND region=?", (key.key_id, key.region)).fetchone()
    return row[0] if row else None


def _target(call: Call, key: KeyRecord, params: dict, material_id: str) -> _Target:
    """Decide, as AWS does, which material this import is (ImportType, KeyMaterialId)."""
    c = call.conn
    if key.multi_region_role == "REPLICA":
        return _replica_target(call, key, params, material_id)
    materials = call.store.list_materials(key.key_id, key.region)
    legacy = _legacy_fingerprint(c, key)
    match = next((m for m in materials if m.material_id == material_id), None)
    if match is None and legacy == material_id and materials:
        match = materials[0]
    first = not materials and legacy is None
    import_type = params.get("ImportType") or (NEW if first else EXISTING)
    if params.get("KeyMaterialId") is not None and import_type == NEW:
        raise ValidationException("You cannot specify a key material ID with ImportType set to NEW_KEY_MATERIAL.")
    if import_type == EXISTING:
        if first:
            raise IncorrectKeyMaterialException("No key material has been imported into this KMS key yet: use "
                                                "ImportType NEW_KEY_MATERIAL.")
        if match is None and not materials and legacy == material_id:  # legacy key whose material expired
            return _Target(max(key.current_version, 1), False)
        if match is None:
            raise IncorrectKeyMaterialException(
                "The key material is different from the key material previously imported into this KMS key."
            )
        if params.get("KeyMaterialId") not in (None, match.material_id):
            raise IncorrectKeyMaterialException(
                f"The key material does not match key material ID {params['KeyMaterialId']}."
            )
        return _Target(match.version, False)
    if first:
        return _Target(1, True)
    if match is not None:
        raise IncorrectKeyMaterialException(
            "The key material being imported as new key material is already associated with the KMS key."
        )
    if any(m.version > key.current_version for m in materials):
        raise KMSInvalidStateException(
            f"{key.arn} already has key material pending rotation: rotate it (RotateKeyOnDemand) or delete it first."
        )
    return _Target(max(m.version for m in materials) + 1, True)


def _replica_target(call: Call, key: KeyRecord, params: dict, material_id: str) -> _Target:
    """A replica takes only material of its multi-Region key ("You cannot directly import new
    key material into the replica Region keys"): the version its primary gave that material."""
    if params.get("ImportType") == NEW:
        raise UnsupportedOperationException(
            f"{key.arn} is a multi-Region replica key: import new key material into its primary key, then import the "
            "same key material here with ImportType EXISTING_KEY_MATERIAL."
        )
    row = call.conn.execute("SELECT version FROM materials WHERE key_id=? AND material_id=? ORDER BY version LIMIT 1",
                            (key.key_id, material_id)).fetchone()
    if row is None:
        raise IncorrectKeyMaterialException(
            "The key material is different from the key material imported into the multi-Region key."
        )
    if params.get("KeyMaterialId") not in (None, material_id):
        raise IncorrectKeyMaterialException(f"The key material does not match key material ID {params['KeyMaterialId']}.")
    return _Target(row[0], False)


@operation("ImportKeyMaterial", key="KeyId", mutates=True)
def import_key_material(call: Call, params: dict, key: KeyRecord) -> dict:
    _require_external(key)
    symmetric = key.key_spec == SYMMETRIC
    if not symmetric:
        given = [m for m in _SYMMETRIC_ONLY_MEMBERS if params.get(m) is not None]
        if given:  # "only usable with symmetric encryption keys"; AWS rejects the request
            raise ValidationException(f"{given[0]} is only supported for symmetric encryption KMS keys.")
    valid_to = _expiry(params, call.now)
    token, algorithm, private = _redeem_token(call, key, params["ImportToken"])
    material = _checked_material(key.key_spec, _unwrap(algorithm, private, params["EncryptedKeyMaterial"]))
    material_id = _material_id(call, key, material)
    c = call.conn
    expire_due(call.backend, c, key, call.now)  # what expired before this import is gone first
    target = _target(call, key, params, material_id)
    wrapped = call.backend.wrapper.wrap(key.key_id, target.version, material)
    stored = c.execute("UPDATE materials SET wrapped=? WHERE key_id=? AND region=? AND version=?",
                       (wrapped, key.key_id, key.region, target.version)).rowcount
    if not stored:  # new material, or material an earlier kms-iac deleted outright
        call.store.add_material(c, key.key_id, key.region, Material(target.version, material_id, wrapped, call.now, None))
    if not key.current_version:  # the first material is current for good
        call.store.update_key(c, key, current_version=target.version)
        if _legacy_fingerprint(c, key) is None:
            c.execute("INSERT INTO imported_material (key_id, region, fingerprint) VALUES (?, ?, ?)",
                      (key.key_id, key.region, material_id))
    elif target.new:  # pending rotation: every replica waits for the same material
        _mirror_to_replicas(c, key, target.version, material_id)
    description = params.get("KeyMaterialDescription")
    previous = c.execute("SELECT description FROM import_materials WHERE key_id=? AND region=? AND version=?",
                         (key.key_id, key.region, target.version)).fetchone()
    if description is None and previous is not None:  # "KMS retains the value you specified when you last imported"
        description = previous[0]
    c.execute("INSERT OR REPLACE INTO import_materials (key_id, region, version, description, valid_to) VALUES (?, ?, ?, ?, ?)",
              (key.key_id, key.region, target.version, description, valid_to))
    c.execute("DELETE FROM import_params WHERE token=?", (token,))
    _settle(call.backend, c, key)
    call.backend.forget_material(key.key_id, key.region)
    out: dict = {"KeyId": key.arn}
    if symmetric:  # AWS gives material ids for symmetric encryption keys only
        out["KeyMaterialId"] = material_id
    return out


def _mirror_to_replicas(c: sqlite3.Connection, key: KeyRecord, version: int, material_id: str) -> None:
    """A multi-Region primary's new material appears in each replica as waiting for its import."""
    if key.multi_region_role != "PRIMARY":
        return
    c.execute(
        "INSERT OR IGNORE INTO materials (key_id, region, version, material_id, wrapped, created, rotation_type) "
        "SELECT key_id, region, ?, ?, x'', created, NULL FROM keys WHERE key_id=? AND region<>?",
        (version, material_id, key.key_id, key.region),
    )


# -- the key's state and expiry, from its materials -------------------------------------------


def material_complete(c: sqlite3.Connection, key: KeyRecord) -> bool:
    """Whether every material permanently associated with ``key`` (current and earlier
    versions; not material pending rotation) is imported."""
    if not key.current_version:
        return False
    missing = c.execute("SELECT COUNT(*) FROM materials WHERE key_id=? AND region=? AND version<=? AND length(wrapped)=0",
                        (key.key_id, key.region, key.current_version)).fetchone()[0]
    present = c.execute("SELECT COUNT(*) FROM materials WHERE key_id=? AND region=? AND version=?",
                        (key.key_id, key.region, key.current_version)).fetchone()[0]
    return not missing and bool(present)


def _settle(backend: Backend, c: sqlite3.Connection, key: KeyRecord) -> None:
    """The key state and ValidTo its materials give it.

    "The KMS key is usable in cryptographic operations only after all key materials
    permanently associated with it are imported. If you delete any of them or let it expire,
    the key state becomes PendingImport." Material pending rotation is not permanently
    associated. A key pending deletion stays so; a disabled key with all its material stays
    disabled. The key's ValidTo (what the scheduler watches) is the earliest expiry of any
    material present."""
    rows = c.execute(
        "SELECT length(m.wrapped), i.valid_to FROM materials m LEFT JOIN import_materials i "
        "ON i.key_id=m.key_id AND i.region=m.region AND i.version=m.version WHERE m.key_id=? AND m.region=?",
        (key.key_id, key.region),
    ).fetchall()
    complete = material_complete(c, key)
    state = key.state
    if state != keystate.PENDING_DELETION:
        if not complete:
            state = keystate.PENDING_IMPORT
        elif state == keystate.PENDING_IMPORT:
            state = keystate.ENABLED
    expiries = [t for n, t in rows if n and t is not None]
    backend.store.update_key(c, key, state=state, valid_to=min(expiries) if expiries else None)


def expire_due(backend: Backend, c: sqlite3.Connection, key: KeyRecord, until: float) -> None:
    """Delete the bytes of every imported material whose ValidTo is ``until`` or earlier: "When
    the key material expires, KMS deletes the key material from the KMS key"; its id stays."""
    expired = c.execute(
        "SELECT version FROM import_materials WHERE key_id=? AND region=? AND valid_to IS NOT NULL AND valid_to<=?",
        (key.key_id, key.region, until),
    ).fetchall()
    legacy = (not expired and key.valid_to is not None and key.valid_to <= until
              and not c.execute("SELECT 1 FROM import_materials WHERE key_id=? AND region=?", (key.key_id, key.region)).fetchone())
    if not expired and not legacy:
        return
    if legacy:  # imported by an earlier kms-iac: one expiry for all its material
        c.execute("UPDATE materials SET wrapped=x'' WHERE key_id=? AND region=?", (key.key_id, key.region))
    for (version,) in expired:
        c.execute("UPDATE materials SET wrapped=x'' WHERE key_id=? AND region=? AND version=?", (key.key_id, key.region, version))
        c.execute("UPDATE import_materials SET valid_to=NULL WHERE key_id=? AND region=? AND version=?",
                  (key.key_id, key.region, version))
    _settle(backend, c, key)
    backend.forget_material(key.key_id, key.region)


def expiration_fields(call: Call, key: KeyRecord) -> dict:
    """DescribeKey's ExpirationModel and ValidTo: those of the current key material."""
    row = call.store.execute("SELECT valid_to FROM import_materials WHERE key_id=? AND region=? AND version=?",
                             (key.key_id, key.region, key.current_version))
    valid_to = row[0][0] if row else key.valid_to
    out: dict = {"ExpirationModel": EXPIRES if valid_to else DOES_NOT_EXPIRE}
    if valid_to:
        out["ValidTo"] = valid_to
    return out


def material_details(call: Call, key: KeyRecord) -> dict[int, dict]:
    """ListKeyRotations' import fields per material version of an imported symmetric key:
    ImportState, KeyMaterialDescription, ExpirationModel and ValidTo (the last two only while
    the material is imported)."""
    rows = call.store.execute(
        "SELECT m.version, length(m.wrapped), i.description, i.valid_to FROM materials m LEFT JOIN import_materials i "
        "ON i.key_id=m.key_id AND i.region=m.region AND i.version=m.version WHERE m.key_id=? AND m.region=?",
        (key.key_id, key.region),
    )
    out: dict[int, dict] = {}
    for version, present, description, valid_to in rows:
        entry: dict = {"ImportState": "IMPORTED" if present else "PENDING_IMPORT"}
        if description is not None:
            entry["KeyMaterialDescription"] = description
        if present:
            entry["ExpirationModel"] = EXPIRES if valid_to else DOES_NOT_EXPIRE
            if valid_to:
                entry["ValidTo"] = valid_to
        out[version] = entry
    return out


def pending_version(call: Call, key: KeyRecord) -> int | None:
    """The version of material imported for the next on-demand rotation, if any."""
    row = call.store.execute("SELECT MIN(version) FROM materials WHERE key_id=? AND region=? AND version>?",
                             (key.key_id, key.region, key.current_version))
    return row[0][0] if row and row[0][0] is not None else None


def missing_regions(call: Call, key: KeyRecord, version: int) -> list[str]:
    """Regions of this (multi-Region) key still waiting for the import of material ``version``."""
    return [r for (r,) in call.store.execute(
        "SELECT k.region FROM keys k LEFT JOIN materials m ON m.key_id=k.key_id AND m.region=k.region AND m.version=? "
        "WHERE k.key_id=? AND (m.wrapped IS NULL OR length(m.wrapped)=0) ORDER BY k.region",
        (version, key.key_id),
    )]


# -- DeleteImportedKeyMaterial ---------------------------------------------------------------


@operation("DeleteImportedKeyMaterial", key="KeyId", mutates=True)
def delete_imported_key_material(call: Call, params: dict, key: KeyRecord) -> dict:
    _require_external(key)
    symmetric = key.key_spec == SYMMETRIC
    c = call.conn
    wanted = params.get("KeyMaterialId")
    if wanted is None:  # "If no KeyMaterialId is specified, KMS deletes the current key material."
        version = key.current_version
        row = call.store.get_material(key.key_id, key.region, version) if version else None
        material_id = row.material_id if row is not None else None
    else:
        found = c.execute("SELECT version FROM materials WHERE key_id=? AND region=? AND material_id=?",
                          (key.key_id, key.region, wanted)).fetchone()
        if found is None:
            raise NotFoundException(f"Key material {wanted} is not associated with {key.arn}.")
        version, material_id = found[0], wanted
    if version and version > key.current_version:
        # pending rotation: not permanently associated, so it goes entirely (from every
        # Region of a multi-Region primary, as AWS documents)
        regions = ("key_id=?", (key.key_id,)) if key.multi_region_role == "PRIMARY" else \
            ("key_id=? AND region=?", (key.key_id, key.region))
        c.execute(f"DELETE FROM materials WHERE {regions[0]} AND version=?", (*regions[1], version))
        c.execute(f"DELETE FROM import_materials WHERE {regions[0]} AND version=?", (*regions[1], version))
    elif version:
        c.execute("UPDATE materials SET wrapped=x'' WHERE key_id=? AND region=? AND version=?", (key.key_id, key.region, version))
        c.execute("UPDATE import_materials SET valid_to=NULL WHERE key_id=? AND region=? AND version=?",
                  (key.key_id, key.region, version))
    _settle(call.backend, c, key)
    call.backend.forget_material(key.key_id, key.region)
    out: dict = {"KeyId": key.arn}
    if symmetric and material_id is not None:
        out["KeyMaterialId"] = material_id
    return out
