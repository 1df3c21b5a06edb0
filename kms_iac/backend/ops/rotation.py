"""Rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand,
ListKeyRotations.

Rotation adds material and keeps every earlier version for decryption; the key id never
changes. Automatic rotation is carried out by the dispatcher's scheduled work when
``rotation_anchor + period`` passes. Keys with imported material rotate on demand only, to
material imported beforehand (ImportType NEW_KEY_MATERIAL, see ``ops.imports``). A
multi-Region key's rotation settings are its primary key's: replicas show them and follow
its rotations.
"""

from __future__ import annotations

from kms_iac.backend import keystate
from kms_iac.backend.clock import DAY
from kms_iac.backend.core import Call
from kms_iac.backend.errors import KMSInvalidStateException, LimitExceededException, UnsupportedOperationException
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.managed import refuse_if_aws_managed
from kms_iac.backend.ops.pagination import paginate
from kms_iac.backend.store import KeyRecord

DEFAULT_PERIOD_DAYS = 365
MAX_ON_DEMAND_ROTATIONS = 25  # per key, lifetime (AWS quota "On-demand rotations per KMS key", RotateKeyOnDemand)
# An on-demand rotation is "in progress" (GetKeyRotationStatus shows OnDemandRotationStartDate)
# for this long on the backend's clock; AWS completes one within seconds and documents no figure.
ON_DEMAND_ROTATION_SECONDS = 3.0


def _check_rotatable(key: KeyRecord, on_demand: bool = False) -> None:
    if key.origin == "EXTERNAL" and not on_demand:  # imported material never rotates automatically
        raise UnsupportedOperationException(f"{key.arn} origin is EXTERNAL which is not valid for this operation.")
    if key.key_spec != "SYMMETRIC_DEFAULT":
        if on_demand:  # AWS refuses an asymmetric or HMAC key with no message
            raise UnsupportedOperationException(None)
        raise UnsupportedOperationException(f"{key.arn} key spec is {key.key_spec} which is not valid for this operation.")
    if key.custom_key_store_id:
        raise UnsupportedOperationException(f"{key.arn} is in a custom key store, which is not valid for this operation.")
    if key.multi_region_role == "REPLICA":
        raise UnsupportedOperationException(f"{key.arn} is a multi-Region replica key, which is not valid for this operation.")


@operation("EnableKeyRotation", key="KeyId", mutates=True)
def enable_key_rotation(call: Call, params: dict, key: KeyRecord) -> dict:
    refuse_if_aws_managed(call, key)
    _check_rotatable(key)
    period = params.get("RotationPeriodInDays") or key.rotation_period or DEFAULT_PERIOD_DAYS
    if params.get("RotationPeriodInDays") is None and key.rotation_enabled:
        return {}
    anchor = key.rotation_anchor if (key.rotation_enabled and key.rotation_anchor) else call.now
    call.store.update_key(call.conn, key, rotation_enabled=1, rotation_period=period, rotation_anchor=anchor)
    return {}


@operation("DisableKeyRotation", key="KeyId", mutates=True)
def disable_key_rotation(call: Call, params: dict, key: KeyRecord) -> dict:
    refuse_if_aws_managed(call, key)
    _check_rotatable(key)
    call.store.update_key(call.conn, key, rotation_enabled=0)
    return {}


def _settings(call: Call, key: KeyRecord) -> KeyRecord:
    """The record that holds ``key``'s rotation settings: its multi-Region primary's for a replica."""
    if key.multi_region_role == "REPLICA" and key.primary_region:
        return call.store.get_key(key.key_id, key.primary_region) or key
    return key


@operation("GetKeyRotationStatus", key="KeyId")
def get_key_rotation_status(call: Call, params: dict, key: KeyRecord) -> dict:
    if key.origin == "EXTERNAL":
        raise UnsupportedOperationException(f"{key.arn} origin is EXTERNAL which is not valid for this operation.")
    rotation = _settings(call, key)
    out: dict = {"KeyRotationEnabled": bool(rotation.rotation_enabled), "KeyId": key.arn}
    if rotation.rotation_enabled:
        out["RotationPeriodInDays"] = rotation.rotation_period
        if key.state != keystate.PENDING_DELETION:
            out["NextRotationDate"] = rotation.rotation_anchor + rotation.rotation_period * DAY
    started = rotation.on_demand_started
    if started is not None and call.now < started + ON_DEMAND_ROTATION_SECONDS:  # only while in progress
        out["OnDemandRotationStartDate"] = started
    return out


def _rotate_to_imported(call: Call, key: KeyRecord) -> None:
    """Make the material imported for rotation current, in every Region of the key."""
    from kms_iac.backend.ops.imports import missing_regions, pending_version

    version = pending_version(call, key)
    if version is None:
        raise KMSInvalidStateException(f"No available key material pending rotation for the key: {key.arn}.")
    waiting = missing_regions(call, key, version)
    if waiting:
        raise KMSInvalidStateException(
            f"The key material pending rotation for the key {key.arn} is not yet imported into its replica keys in "
            f"{', '.join(waiting)}."
        )
    c = call.conn
    c.execute("UPDATE materials SET rotation_type='ON_DEMAND', created=? WHERE key_id=? AND version=?",
              (call.now, key.key_id, version))
    c.execute("UPDATE keys SET current_version=? WHERE key_id=?", (version, key.key_id))
    call.store.update_key(c, key, current_version=version)


@operation("RotateKeyOnDemand", key="KeyId", mutates=True)
def rotate_key_on_demand(call: Call, params: dict, key: KeyRecord) -> dict:
    refuse_if_aws_managed(call, key)
    _check_rotatable(key, on_demand=True)
    if key.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS:
        raise LimitExceededException(
            "The on-demand rotations limit has been reached for the given keyId. "
            f"No more on-demand rotations can be performed for this key: {key.arn}"
        )
    if key.origin == "EXTERNAL":
        _rotate_to_imported(call, key)
    else:
        call.backend.add_material(call.conn, key, call.now, "ON_DEMAND")
    call.store.update_key(call.conn, key, on_demand_rotations=key.on_demand_rotations + 1, on_demand_started=call.now)
    return {"KeyId": key.arn}


def _material_state(call: Call, key: KeyRecord, version: int) -> str:
    if version == key.current_version:
        return "CURRENT"
    if version < key.current_version:
        return "NON_CURRENT"
    from kms_iac.backend.ops.imports import missing_regions

    return "PENDING_MULTI_REGION_IMPORT_AND_ROTATION" if missing_regions(call, key, version) else "PENDING_ROTATION"


@operation("ListKeyRotations", key="KeyId")
def list_key_rotations(call: Call, params: dict, key: KeyRecord) -> dict:
    """Completed rotations; with ALL_KEY_MATERIAL also the first material and any imported
    material pending rotation. Imported symmetric keys add each material's import fields."""
    materials = call.store.list_materials(key.key_id, key.region)
    if params.get("IncludeKeyMaterial") != "ALL_KEY_MATERIAL":
        materials = [m for m in materials if m.rotation_type is not None]
    page, extra = paginate(materials, params, sort_key=lambda m: f"{m.version:010d}")
    imported: dict[int, dict] = {}
    if key.origin == "EXTERNAL" and key.key_spec == "SYMMETRIC_DEFAULT":
        from kms_iac.backend.ops.imports import material_details

        imported = material_details(call, key)
    rotations = []
    for m in page:
        entry = {"KeyId": key.key_id, "KeyMaterialId": m.material_id,
                 "KeyMaterialState": _material_state(call, key, m.version), **imported.get(m.version, {})}
        if m.rotation_type is not None:
            entry["RotationDate"] = m.created
            entry["RotationType"] = m.rotation_type
        rotations.append(entry)
    return {"Rotations": rotations, **extra}
