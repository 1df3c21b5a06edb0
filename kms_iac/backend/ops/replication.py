"""Multi-Region keys: ReplicateKey and UpdatePrimaryRegion.

A replica shares its primary's key id and key material (every version), so a ciphertext
made in one Region decrypts in the other; rotation happens on the primary and reaches every
replica (see ``Backend.add_material``), and a replica's rotation settings are its primary's.
A replica of a key with imported material gets no material: it waits in PendingImport for
the same material to be imported into it (``ops.imports``).

Both operations finish asynchronously in AWS: ReplicateKey answers with the replica in
``Creating``, UpdatePrimaryRegion leaves both keys ``Updating`` for a few seconds; here those
interim states end on the backend's clock (``kms_iac.backend.transitions``).
"""

from __future__ import annotations

from kms_iac.backend import keystate, transitions
from kms_iac.backend.core import Call
from kms_iac.backend.errors import AlreadyExistsException, NotFoundException, UnsupportedOperationException, ValidationException
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.keys import metadata
from kms_iac.backend.ops.tags import check_tags, write_tags
from kms_iac.backend.policy_documents import check_policy_document, default_key_policy
from kms_iac.backend.signature import REGION_RE
from kms_iac.backend.store import KeyRecord


def _require_primary(key: KeyRecord) -> None:
    if not key.multi_region or key.multi_region_role == "REPLICA":
        raise UnsupportedOperationException(f"{key.arn} is not a multi-Region primary key.")


@operation("ReplicateKey", key="KeyId", mutates=True)
def replicate_key(call: Call, params: dict, key: KeyRecord) -> dict:
    """The answer is AWS's right after the call: the replica is ``Creating`` (Enabled false),
    its Description is the one given or "" (never the primary's), it has no key material id
    yet, and ReplicaTags appears only when tags were given."""
    region = params["ReplicaRegion"]
    _require_primary(key)
    if not REGION_RE.match(region):
        raise ValidationException(f"{region} is not a valid Region.")
    if region == key.region:
        raise ValidationException(f"The replica Region {region} must differ from the primary key's Region.")
    if call.store.get_key(key.key_id, region) is not None:
        raise AlreadyExistsException(f"A replica of {key.arn} already exists in {region}.")
    policy = params.get("Policy")
    if policy is not None:
        check_policy_document(policy)
    else:
        policy = default_key_policy(key.account)
    tags = params.get("Tags") or []
    check_tags(tags)
    imported = key.origin == "EXTERNAL"
    replica = KeyRecord(
        key_id=key.key_id, region=region, account=key.account, created=call.now, key_spec=key.key_spec,
        key_usage=key.key_usage, origin=key.origin, key_manager=key.key_manager, state=transitions.CREATING,
        policy=policy, description=params.get("Description") or "", multi_region=1,
        multi_region_role="REPLICA", primary_region=key.region, current_version=key.current_version,
    )
    c = call.conn
    call.store.insert_key(c, replica)
    # every material version; without its bytes where the material is imported (each
    # Region imports it itself)
    c.execute(
        "INSERT INTO materials (key_id, region, version, material_id, wrapped, created, rotation_type) "
        "SELECT key_id, ?, version, material_id, CASE WHEN ? THEN x'' ELSE wrapped END, created, rotation_type "
        "FROM materials WHERE key_id=? AND region=?",
        (region, imported, key.key_id, key.region),
    )
    final = keystate.PENDING_IMPORT if imported or not key.current_version else keystate.ENABLED
    transitions.begin(call.store, c, replica, transitions.CREATING, final, call.now + transitions.REPLICA_CREATION_SECONDS)
    write_tags(c, replica, tags)
    call.resources.append(replica.arn)
    out: dict = {"ReplicaKeyMetadata": metadata(call, replica), "ReplicaPolicy": policy}
    if tags:
        out["ReplicaTags"] = [{"TagKey": t["TagKey"], "TagValue": t["TagValue"]} for t in tags]
    return out


_ROTATION_FIELDS = ("rotation_enabled", "rotation_period", "rotation_anchor", "on_demand_rotations", "on_demand_started")


@operation("UpdatePrimaryRegion", key="KeyId", mutates=True)
def update_primary_region(call: Call, params: dict, key: KeyRecord) -> dict:
    """Make the replica in PrimaryRegion the primary key and ``key`` one of its replicas.

    Every key of the set records the new primary (MultiRegionConfiguration). The primary is
    "the source for properties that are always shared by primary and replica keys, including
    ... automatic key rotation", so the rotation settings move to the new primary. Key
    policies, descriptions, tags and aliases stay each key's own. Both keys are ``Updating``
    for a few seconds and then return to their own states; they stay usable meanwhile."""
    _require_primary(key)
    region = params["PrimaryRegion"]
    if region == key.region:
        raise ValidationException(f"The key {key.arn} is already the primary key in {region}.")
    new_primary = call.store.get_key(key.key_id, region)
    if new_primary is None:
        raise NotFoundException(f"Key '{key.arn.replace(':' + key.region + ':', ':' + region + ':')}' does not exist")
    call.admit(new_primary, "UpdatePrimaryRegion")  # "kms:UpdatePrimaryRegion on the current replica key" too
    c = call.conn
    for member in call.store.find_key_any_region(key.key_id):
        call.store.update_key(c, member, primary_region=region)
    call.store.update_key(c, new_primary, multi_region_role="PRIMARY",
                          **{f: getattr(key, f) for f in _ROTATION_FIELDS})
    call.store.update_key(c, key, multi_region_role="REPLICA", rotation_enabled=0)
    due = call.now + transitions.PRIMARY_UPDATE_SECONDS
    for member in (key, new_primary):
        transitions.begin(call.store, c, member, transitions.UPDATING, member.state, due)
    return {}
