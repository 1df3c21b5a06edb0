"""GetKeyLastUsage: when, and by which cryptographic operation, a key was last used."""

from __future__ import annotations

from kms_iac.backend.core import Call
from kms_iac.backend.ops import operation
from kms_iac.backend.store import KeyRecord


@operation("GetKeyLastUsage")
def get_key_last_usage(call: Call, params: dict) -> dict:
    # AWS takes a key id or key ARN here, not an alias.
    key = call.key(params["KeyId"], allow_alias=False)
    call.backend.flush_usage()
    fresh: KeyRecord = call.store.get_key(key.key_id, key.region) or key
    out: dict = {"KeyId": key.key_id, "TrackingStartDate": fresh.created, "KeyCreationDate": fresh.created}
    if fresh.last_used_at is not None:
        out["KeyLastUsage"] = {
            "Operation": fresh.last_used_op,
            "Timestamp": fresh.last_used_at,
            "CloudTrailEventId": fresh.last_used_event,
            "KmsRequestId": fresh.last_used_request,
        }
    return out
