"""Key policies: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies (one policy per key, named ``default``)."""

from __future__ import annotations

from kms_iac.backend.core import Call
from kms_iac.backend.errors import NotFoundException
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.managed import refuse_if_aws_managed
from kms_iac.backend.policy_documents import check_policy_document
from kms_iac.backend.store import KeyRecord

POLICY_NAME = "default"


def _check_name(params: dict) -> None:
    name = params.get("PolicyName")
    if name is not None and name != POLICY_NAME:
        raise NotFoundException("No such policy exists")


@operation("GetKeyPolicy", key="KeyId")
def get_key_policy(call: Call, params: dict, key: KeyRecord) -> dict:
    _check_name(params)
    return {"Policy": key.policy, "PolicyName": POLICY_NAME}


@operation("PutKeyPolicy", key="KeyId", mutates=True)
def put_key_policy(call: Call, params: dict, key: KeyRecord) -> dict:
    _check_name(params)
    refuse_if_aws_managed(call, key)
    check_policy_document(params["Policy"])
    lockout = call.backend.lockout_check
    if lockout is not None and not params.get("BypassPolicyLockoutSafetyCheck"):
        lockout(call, key, params["Policy"])
    call.store.update_key(call.conn, key, policy=params["Policy"])
    return {}


@operation("ListKeyPolicies", key="KeyId")
def list_key_policies(call: Call, params: dict, key: KeyRecord) -> dict:
    return {"PolicyNames": [POLICY_NAME], "Truncated": False}
