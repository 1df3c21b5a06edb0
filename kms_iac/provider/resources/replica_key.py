"""``kms-iac:index:ReplicaKey``: a replica, in the provider's Region, of a multi-Region primary key.

The replica shares the primary's key id and material; its description, policy, tags
and enablement are its own. ReplicateKey is called in the primary's Region (taken from
``primaryKeyArn``); deleting the replica schedules its deletion with its window.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from kms_iac.policy.normalize import policies_equal
from kms_iac.provider.resources.base import ProviderError, ResourceHandler, is_not_found, kms_call
from kms_iac.provider.resources.key import KeyHandler, _tags_equal
from kms_iac.provider.spec import Prop, ResourceSpec

SPEC = ResourceSpec(
    "ReplicaKey",
    "A replica of a multi-Region primary key, in the provider's Region.",
    (
        Prop("primaryKeyArn", "string", "ARN of the multi-Region primary key (mrk-...).", replaces=True, required=True),
        Prop("description", "string", "Description of the replica.", default=""),
        Prop("policy", "string", "Key policy of the replica (JSON); KMS's default when omitted.",
             equal=policies_equal, ignore_when_absent=True),
        Prop("deletionWindowInDays", "integer", "Waiting period (7-30 days) when the replica is deleted.", default=30),
        Prop("isEnabled", "boolean", "Whether the replica is enabled.", default=True),
        Prop("bypassPolicyLockoutSafetyCheck", "boolean", "Skip KMS's policy lockout safety check.", default=False),
        Prop("tags", "map", "Tags of the replica.", equal=_tags_equal, default={}),
        Prop("arn", "string", "The replica's ARN.", output=True),
        Prop("keyId", "string", "The key id (the primary's).", output=True),
        Prop("keyState", "string", "The replica's key state.", output=True),
    ),
)


class ReplicaKeyHandler(ResourceHandler):
    spec = SPEC

    def __init__(self) -> None:
        self._key = KeyHandler()

    def validate(self, inputs: dict) -> list[tuple[str, str]]:
        fails = []
        arn = inputs.get("primaryKeyArn")
        if isinstance(arn, str) and (not arn.startswith("arn:") or ":key/mrk-" not in arn):
            fails.append(("primaryKeyArn", "primaryKeyArn must be the ARN of a multi-Region key (arn:...:key/mrk-...)"))
        sub = {k: v for k, v in inputs.items() if k in ("description", "policy", "deletionWindowInDays", "tags")}
        return fails + self._key.validate(sub)

    def create(self, kms, name: str, inputs: dict) -> tuple[str, dict]:
        primary_arn = inputs["primaryKeyArn"]
        primary_region = primary_arn.split(":")[3]
        replica_region = kms.meta.region_name
        primary = kms if primary_region == replica_region else self.regional(primary_region)
        params: dict = {"KeyId": primary_arn, "ReplicaRegion": replica_region,
                        "Description": inputs.get("description", ""),
                        "Tags": [{"TagKey": k, "TagValue": v} for k, v in (inputs.get("tags") or {}).items()]}
        if inputs.get("policy"):
            params["Policy"] = inputs["policy"]
        if inputs.get("bypassPolicyLockoutSafetyCheck"):
            params["BypassPolicyLockoutSafetyCheck"] = True
        md = kms_call(name, "ReplicateKey", primary.replicate_key, **params)["ReplicaKeyMetadata"]
        if inputs.get("isEnabled") is False:
            kms_call(name, "DisableKey", kms.disable_key, KeyId=md["Arn"])
        state = self.read(kms, name, md["Arn"], inputs)
        assert state is not None
        return md["Arn"], state

    def read(self, kms, name: str, resource_id: str, state: dict) -> dict | None:
        try:
            md = kms.describe_key(KeyId=resource_id)["KeyMetadata"]
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        if md["KeyState"] in ("PendingDeletion", "PendingReplicaDeletion"):
            return None
        policy = kms_call(name, "GetKeyPolicy", kms.get_key_policy, KeyId=resource_id, PolicyName="default")["Policy"]
        if isinstance(state.get("policy"), str) and policies_equal(state["policy"], policy):
            policy = state["policy"]
        tags: dict = {}
        for page in kms.get_paginator("list_resource_tags").paginate(KeyId=resource_id):
            tags.update({t["TagKey"]: t["TagValue"] for t in page.get("Tags", [])})
        primary = (md.get("MultiRegionConfiguration") or {}).get("PrimaryKey", {}).get("Arn", state.get("primaryKeyArn"))
        return {
            "primaryKeyArn": primary, "description": md.get("Description", ""), "policy": policy,
            "deletionWindowInDays": state.get("deletionWindowInDays") or 30, "isEnabled": md["KeyState"] == "Enabled",
            "bypassPolicyLockoutSafetyCheck": bool(state.get("bypassPolicyLockoutSafetyCheck", False)),
            "tags": tags, "arn": md["Arn"], "keyId": md["KeyId"], "keyState": md["KeyState"],
        }

    def update(self, kms, name: str, resource_id: str, olds: dict, news: dict, changes: list[str]) -> dict:
        self._key.apply_changes(kms, name, resource_id, olds, news, changes)
        state = self.read(kms, name, resource_id, {**olds, **news})
        if state is None:
            raise ProviderError(f"{name}: replica {resource_id} disappeared during the update")
        return state

    def delete(self, kms, name: str, resource_id: str, state: dict) -> None:
        self._key.delete(kms, name, resource_id, state)

    def replacement_note(self, state: dict) -> str | None:
        return self._key.replacement_note(state)
