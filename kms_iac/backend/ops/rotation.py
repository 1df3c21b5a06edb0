"""Rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand,
ListKeyRotations.

Rotation adds material and keeps every earlier version for decryption; the key id never
changes. Automatic rotation is carried out by the dispatcher's scheduled work when
``rotation_anchor + period`` passes.
"""

from __future__ import annotations

from kms_iac.backend import keystate
from kms_iac.backend.clock import DAY
from kms_iac.backend.core import Call
from kms_iac.backend.errors import LimitExceededException, UnsupportedOperationException
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.managed import refuse_if_aws_managed
from kms_iac.backend.ops.pagination import paginate
from kms_iac.backend.store import KeyRecord

DEFAULT_PERIOD_DAYS = 365
MAX_ON_DEMAND_ROTATIONS = 25  # per key, lifetime (AWS quota "On-demand rotations per KMS key")


def _check_rotatable(key: KeyRecord) -> None:
    if key.origin == "EXTERNAL":
        raise UnsupportedOperationException(f"{key.arn} origin is EXTERNAL which is not valid for this operation.")
    if key.key_spec != "SYMMETRIC_DEFAULT":
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


@operation("GetKeyRotationStatus", key="KeyId")
def get_key_rotation_status(call: Call, params: dict, key: KeyRecord) -> dict:
    if key.origin == "EXTERNAL":
        raise UnsupportedOperationException(f"{key.arn} origin is EXTERNAL which is not valid for this operation.")
    out: dict = {"KeyRotationEnabled": bool(key.rotation_enabled), "KeyId": key.arn}
    if key.rotation_enabled:
        out["RotationPeriodInDays"] = key.rotation_period
        if key.state != keystate.PENDING_DELETION:
            out["NextRotationDate"] = key.rotation_anchor + key.rotation_period * DAY
    if key.on_demand_started is not None:
        out["OnDemandRotationStartDate"] = key.on_demand_started
    return out


@operation("RotateKeyOnDemand", key="KeyId", mutates=True)
def rotate_key_on_demand(call: Call, params: dict, key: KeyRecord) -> dict:
    refuse_if_aws_managed(call, key)
    _check_rotatable(key)
    if key.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS:
        raise LimitExceededException(
            "The on-demand rotations limit has been reached for the given keyId. "
            f"No more on-demand rotations can be performed for this key: {key.arn}"
        )
    call.backend.add_material(call.conn, key, call.now, "ON_DEMAND")
    call.store.update_key(call.conn, key, on_demand_rotations=key.on_demand_rotations + 1, on_demand_started=call.now)
    return {"KeyId": key.key_id}


@operation("ListKeyRotations", key="KeyId")
def list_key_rotations(call: Call, params: dict, key: KeyRecord) -> dict:
    if key.origin == "EXTERNAL" and params.get("IncludeKeyMaterial") != "ALL_KEY_MATERIAL":
        raise UnsupportedOperationException(f"{key.arn} origin is EXTERNAL which is not valid for this operation.")
    materials = call.store.list_materials(key.key_id, key.region)
    if params.get("IncludeKeyMaterial") != "ALL_KEY_MATERIAL":
        materials = [m for m in materials if m.rotation_type is not None]
    page, extra = paginate(materials, params, sort_key=lambda m: f"{m.version:010d}")
    rotations = []
    for m in page:
        entry = {
            "KeyId": key.key_id,
            "KeyMaterialId": m.material_id,
            "KeyMaterialState": "CURRENT" if m.version == key.current_version else "NON_CURRENT",
        }
        if m.rotation_type is not None:
            entry["RotationDate"] = m.created
            entry["RotationType"] = m.rotation_type
        rotations.append(entry)
    return {"Rotations": rotations, **extra}
