"""``kms-iac:index:ReplicaKey``: a replica, in the provider's Region, of a multi-Region primary key.

The replica shares the primary's key id, key spec, key usage and material (any spec KMS makes
multi-Region: symmetric, RSA, ECC, Ed25519, ML-DSA, ML-KEM, HMAC), reported as the outputs
``keySpec`` and ``keyUsage``; its description, policy, tags and enablement are its own.
ReplicateKey is called in the primary's Region (taken from ``primaryKeyArn``); deleting the
replica schedules its deletion with its window.
"""

from __future__ import annotations

import time

from kms_iac.provider.resources.base import (
    ResourceHandler,
    fail,
    kms_call,
    live_key,
    read_policy,
    read_tags,
    tag_list,
)
from kms_iac.provider.resources.key import (
    BYPASS,
    DESCRIPTION,
    ENABLED,
    KEY_OUTPUTS,
    POLICY,
    TAGS,
    WINDOW,
    KeyHandler,
    _mismatch,
)
from kms_iac.provider.spec import Prop, ResourceSpec

CREATE_TIMEOUT = 300.0  # AWS documents no bound for Creating; Terraform waits up to 2 minutes

SPEC = ResourceSpec(
    "ReplicaKey",
    "A replica of a multi-Region primary key, in the provider's Region.",
    (
        Prop("primaryKeyArn", "string", "ARN of the multi-Region primary key (mrk-...).", replaces=True, required=True),
        DESCRIPTION,
        POLICY,
        WINDOW,
        ENABLED,
        BYPASS,
        TAGS,
        *KEY_OUTPUTS,
        Prop("keySpec", "string", "The key spec, the primary key's.", output=True),
        Prop("keyUsage", "string", "The key usage, the primary key's.", output=True),
    ),
)


class ReplicaKeyHandler(ResourceHandler):
    spec = SPEC
    makes_keys = True

    def __init__(self) -> None:
        self._key = KeyHandler()

    def validate(self, inputs: dict) -> list[tuple[str, str]]:
        fails = []
        arn = inputs.get("primaryKeyArn")
        if isinstance(arn, str) and (not arn.startswith("arn:") or ":key/mrk-" not in arn):
            fails.append(("primaryKeyArn", "primaryKeyArn must be the ARN of a multi-Region key (arn:...:key/mrk-...)"))
        sub = {k: v for k, v in inputs.items() if k in ("description", "policy", "deletionWindowInDays", "tags")}
        return fails + self._key.validate(sub)

    def create(self, kms, name: str, inputs: dict, urn: str = "") -> tuple[str, dict]:
        adopted = self.adopt_orphan(kms, name, urn, inputs)
        if adopted is not None:
            return adopted
        primary_arn = inputs["primaryKeyArn"]
        primary_region = primary_arn.split(":")[3]
        replica_region = kms.meta.region_name
        primary = kms if primary_region == replica_region else self.regional(primary_region)
        params: dict = {"KeyId": primary_arn, "ReplicaRegion": replica_region,
                        "Description": inputs.get("description", ""),
                        "Tags": tag_list(inputs.get("tags"), urn)}
        if inputs.get("policy"):
            params["Policy"] = inputs["policy"]
        if inputs.get("bypassPolicyLockoutSafetyCheck"):
            params["BypassPolicyLockoutSafetyCheck"] = True
        md = kms_call(name, "ReplicateKey", primary.replicate_key, **params)["ReplicaKeyMetadata"]
        self._wait_created(kms, name, md["Arn"])
        if inputs.get("isEnabled") is False:
            kms_call(name, "DisableKey", kms.disable_key, KeyId=md["Arn"])
        state = self.read_back(kms, name, md["Arn"], inputs)
        return md["Arn"], state

    def adoption_mismatch(self, md: dict, inputs: dict) -> str | None:
        mrc = md.get("MultiRegionConfiguration") or {}
        return _mismatch({"MultiRegionKeyType": mrc.get("MultiRegionKeyType"),
                          "PrimaryKeyArn": (mrc.get("PrimaryKey") or {}).get("Arn")},
                         {"MultiRegionKeyType": "REPLICA", "PrimaryKeyArn": inputs["primaryKeyArn"]})

    def resource_id_of(self, md: dict) -> str:
        return md["Arn"]

    def adopt(self, kms, name: str, md: dict, inputs: dict) -> tuple[str, dict]:
        self._wait_created(kms, name, md["Arn"])
        return super().adopt(kms, name, md, inputs)

    @staticmethod
    def _wait_created(kms, name: str, arn: str) -> None:
        """KMS answers ReplicateKey with the replica still ``Creating``; it cannot be disabled,
        updated or read as enabled until KMS finishes, so wait for that (as Terraform does)."""
        deadline, delay = time.monotonic() + CREATE_TIMEOUT, 0.25
        while True:
            state = kms_call(name, "DescribeKey", kms.describe_key, KeyId=arn)["KeyMetadata"]["KeyState"]
            if state != "Creating":
                return
            if time.monotonic() > deadline:
                raise fail(name, "ReplicateKey", f"{arn} is still Creating after {CREATE_TIMEOUT:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def read(self, kms, name: str, resource_id: str, state: dict) -> dict | None:
        md = live_key(kms, resource_id)
        if md is None:
            return None
        policy = read_policy(kms, name, resource_id, state)
        tags = read_tags(kms, resource_id)
        primary = (md.get("MultiRegionConfiguration") or {}).get("PrimaryKey", {}).get("Arn", state.get("primaryKeyArn"))
        return {
            "primaryKeyArn": primary, "description": md.get("Description", ""), "policy": policy,
            "deletionWindowInDays": state.get("deletionWindowInDays") or 30, "isEnabled": md["KeyState"] == "Enabled",
            "bypassPolicyLockoutSafetyCheck": bool(state.get("bypassPolicyLockoutSafetyCheck", False)),
            "tags": tags, "arn": md["Arn"], "keyId": md["KeyId"], "keyState": md["KeyState"],
            "keySpec": md.get("KeySpec", "SYMMETRIC_DEFAULT"), "keyUsage": md.get("KeyUsage", "ENCRYPT_DECRYPT"),
        }

    def update(self, kms, name: str, resource_id: str, olds: dict, news: dict, changes: list[str]) -> dict:
        self._key.apply_changes(kms, name, resource_id, olds, news, changes)
        state = self.read_back(kms, name, resource_id, {**olds, **news})
        return state

    def delete(self, kms, name: str, resource_id: str, state: dict) -> None:
        self._key.delete(kms, name, resource_id, state)

    def replacement_note(self, state: dict) -> str | None:
        return self._key.replacement_note(state)
