"""Multi-Region keys: ReplicateKey.

A replica shares its primary's key id and key material (every version), so a
ciphertext made in one Region decrypts in the other; rotation happens on the primary
and reaches every replica (see ``Backend.add_material``).
"""

from __future__ import annotations

from kms_iac.backend import keystate
from kms_iac.backend.core import Call
from kms_iac.backend.errors import AlreadyExistsException, UnsupportedOperationException, ValidationException
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.keys import metadata
from kms_iac.backend.ops.tags import check_tags, write_tags
from kms_iac.backend.policy_documents import check_policy_document, default_key_policy
from kms_iac.backend.signature import REGION_RE
from kms_iac.backend.store import KeyRecord


@operation("ReplicateKey", key="KeyId", mutates=True)
def replicate_key(call: Call, params: dict, key: KeyRecord) -> dict:
    region = params["ReplicaRegion"]
    if not key.multi_region:
        raise UnsupportedOperationException(f"{key.arn} is not a multi-Region key.")
    if key.multi_region_role == "REPLICA":
        raise UnsupportedOperationException(f"{key.arn} is a replica key; only a primary key can be replicated.")
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
    replica = KeyRecord(
        key_id=key.key_id, region=region, account=key.account, created=call.now, key_spec=key.key_spec,
        key_usage=key.key_usage, origin=key.origin, key_manager=key.key_manager,
        state=keystate.ENABLED if key.current_version else keystate.PENDING_IMPORT,
        policy=policy, description=params.get("Description", key.description), multi_region=1,
        multi_region_role="REPLICA", primary_region=key.region, rotation_enabled=key.rotation_enabled,
        rotation_period=key.rotation_period, rotation_anchor=key.rotation_anchor, current_version=key.current_version,
    )
    c = call.conn
    call.store.insert_key(c, replica)
    c.execute(
        "INSERT INTO materials (key_id, region, version, material_id, wrapped, created, rotation_type) "
        "SELECT key_id, ?, version, material_id, wrapped, created, rotation_type FROM materials WHERE key_id=? AND region=?",
        (region, key.key_id, key.region),
    )
    write_tags(c, replica, tags)
    call.resources.append(replica.arn)
    return {
        "ReplicaKeyMetadata": metadata(call, replica),
        "ReplicaPolicy": policy,
        "ReplicaTags": [{"TagKey": t["TagKey"], "TagValue": t["TagValue"]} for t in tags],
    }
