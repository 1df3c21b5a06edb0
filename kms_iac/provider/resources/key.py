"""``kms-iac:index:Key``: a customer managed KMS key.

keySpec, keyUsage, multiRegion and customKeyStoreId replace the key; description,
policy, rotation, enablement and tags update in place; deleting the key schedules its
deletion with ``deletionWindowInDays`` (never an immediate loss).
"""

from __future__ import annotations


from botocore.exceptions import ClientError

from kms_iac.backend.keypairs import USAGES as KEY_USAGES

from kms_iac.policy.document import PolicyError, PolicyNotObject, parse_policy
from kms_iac.policy.normalize import policies_equal
from kms_iac.provider.orphans import MAX_TAGS, URN_TAG
from kms_iac.provider.resources.base import (
    ResourceHandler,
    is_not_found,
    kms_call,
    kms_error,
    live_key,
    read_policy,
    read_tags,
    tag_list,
)
from kms_iac.provider.spec import Prop, ResourceSpec

# Which key usages AWS accepts with each key spec: the backend's table (one copy), so Check at
# preview refuses exactly what CreateKey would.
USAGES_BY_SPEC: dict[str, tuple[str, ...]] = {"SYMMETRIC_DEFAULT": ("ENCRYPT_DECRYPT",), **KEY_USAGES}
MAX_POLICY_BYTES = 32768


def _tags_equal(a: dict, b: dict) -> bool:
    return dict(a or {}) == dict(b or {})


DESCRIPTION = Prop("description", "string", "Description of the key.", default="")
POLICY = Prop("policy", "string", "Key policy (JSON). KMS's default policy when omitted.", equal=policies_equal,
              ignore_when_absent=True)
WINDOW = Prop("deletionWindowInDays", "integer", "Waiting period (7-30 days) when the key is deleted.", default=30)
ENABLED = Prop("isEnabled", "boolean", "Whether the key is enabled.", default=True)
MULTI_REGION = Prop("multiRegion", "boolean", "Create a multi-Region primary key.", replaces=True, default=False)
BYPASS = Prop("bypassPolicyLockoutSafetyCheck", "boolean", "Skip KMS's policy lockout safety check.", default=False)
TAGS = Prop("tags", "map", "Tags of the key.", equal=_tags_equal, default={})
KEY_OUTPUTS = (
    Prop("arn", "string", "The key ARN.", output=True),
    Prop("keyId", "string", "The key id.", output=True),
    Prop("keyState", "string", "The key state (Enabled, Disabled, PendingDeletion, ...).", output=True),
)

SPEC = ResourceSpec(
    "Key",
    "A customer managed AWS KMS key.",
    (
        DESCRIPTION,
        Prop("keySpec", "string", "Key spec (SYMMETRIC_DEFAULT, RSA_*, ECC_NIST_*, ECC_SECG_P256K1, ECC_NIST_EDWARDS25519, ML_DSA_*, ML_KEM_*, HMAC_*; SM2 in the China Regions).", replaces=True, default="SYMMETRIC_DEFAULT"),
        Prop("keyUsage", "string", "ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC, KEY_AGREEMENT or ENCAPSULATE_DECAPSULATE.", replaces=True, default="ENCRYPT_DECRYPT"),
        POLICY,
        Prop("enableKeyRotation", "boolean", "Automatic rotation of the key material.", default=False),
        Prop("rotationPeriodInDays", "integer", "Days between automatic rotations (90-2560).", ignore_when_absent=True),
        WINDOW,
        ENABLED,
        MULTI_REGION,
        Prop("customKeyStoreId", "string", "Custom key store to create the key in.", replaces=True),
        BYPASS,
        TAGS,
        *KEY_OUTPUTS,
    ),
)


class KeyHandler(ResourceHandler):
    spec = SPEC
    makes_keys = True

    def validate(self, inputs: dict) -> list[tuple[str, str]]:
        fails: list[tuple[str, str]] = []
        spec, usage = inputs.get("keySpec"), inputs.get("keyUsage")
        if isinstance(spec, str) and spec not in USAGES_BY_SPEC:
            fails.append(("keySpec", f"keySpec must be one of {', '.join(USAGES_BY_SPEC)}"))
        elif isinstance(spec, str) and isinstance(usage, str) and usage not in USAGES_BY_SPEC[spec]:
            fails.append(("keyUsage", f"keyUsage {usage} is not valid for keySpec {spec} (valid: {', '.join(USAGES_BY_SPEC[spec])})"))
        store = inputs.get("customKeyStoreId")
        if isinstance(store, str) and store and isinstance(spec, str) and spec != "SYMMETRIC_DEFAULT":
            # CreateKey: "you can create only symmetric encryption KMS keys" in a CloudHSM key store
            fails.append(("keySpec", f"a key in a custom key store must be SYMMETRIC_DEFAULT, not {spec}"))
        if inputs.get("enableKeyRotation") is True and isinstance(spec, str) and spec != "SYMMETRIC_DEFAULT":
            fails.append(("enableKeyRotation", f"automatic rotation is only supported for SYMMETRIC_DEFAULT keys, not {spec}"))
        period = inputs.get("rotationPeriodInDays")
        if isinstance(period, int) and not 90 <= period <= 2560:
            fails.append(("rotationPeriodInDays", f"rotationPeriodInDays must be between 90 and 2560, got {period}"))
        window = inputs.get("deletionWindowInDays")
        if isinstance(window, int) and not 7 <= window <= 30:
            fails.append(("deletionWindowInDays", f"deletionWindowInDays must be between 7 and 30, got {window}"))
        desc = inputs.get("description")
        if isinstance(desc, str) and len(desc) > 8192:
            fails.append(("description", "description must be at most 8192 characters"))
        policy = inputs.get("policy")
        if isinstance(policy, str):
            if len(policy.encode()) > MAX_POLICY_BYTES:
                fails.append(("policy", f"policy must be at most {MAX_POLICY_BYTES} bytes"))
            else:
                try:
                    if "Statement" not in parse_policy(policy):
                        fails.append(("policy", "policy must be a JSON object with a Statement"))
                except PolicyNotObject:
                    fails.append(("policy", "policy must be a JSON object with a Statement"))
                except PolicyError as exc:
                    fails.append(("policy", str(exc)))
        tags = inputs.get("tags")
        if isinstance(tags, dict):
            if len(tags) > MAX_TAGS:
                fails.append(("tags", f"a key can have at most {MAX_TAGS} tags"))
            for k, v in tags.items():
                if k.lower().startswith("aws:"):
                    fails.append(("tags", f"tag key {k!r}: tags beginning with aws: are reserved"))
                if k == URN_TAG:
                    fails.append(("tags", f"tag key {k!r} is set by the provider (the resource's Pulumi URN)"))
                if not 1 <= len(k) <= 128 or not isinstance(v, str) or len(v) > 256:
                    fails.append(("tags", f"tag {k!r}: keys are 1-128 characters, values strings of at most 256"))
        return fails

    def create(self, kms, name: str, inputs: dict, urn: str = "") -> tuple[str, dict]:
        adopted = self.adopt_orphan(kms, name, urn, inputs)
        if adopted is not None:
            return adopted
        params: dict = {
            "Description": inputs.get("description", ""),
            "KeySpec": inputs["keySpec"],
            "KeyUsage": inputs["keyUsage"],
            "MultiRegion": bool(inputs.get("multiRegion")),
            "Tags": tag_list(inputs.get("tags"), urn),
        }
        if inputs.get("policy"):
            params["Policy"] = inputs["policy"]
        if inputs.get("customKeyStoreId"):  # a key in a CloudHSM key store
            params.update(CustomKeyStoreId=inputs["customKeyStoreId"], Origin="AWS_CLOUDHSM")
        if inputs.get("bypassPolicyLockoutSafetyCheck"):
            params["BypassPolicyLockoutSafetyCheck"] = True
        md = kms_call(name, "CreateKey", kms.create_key, **params)["KeyMetadata"]
        key_id = md["KeyId"]
        try:
            if inputs.get("enableKeyRotation"):
                self._enable_rotation(kms, name, key_id, inputs)
            if inputs.get("isEnabled") is False:
                kms_call(name, "DisableKey", kms.disable_key, KeyId=key_id)
        except Exception:
            # Never leave a half-configured key behind: schedule it for deletion, then fail.
            try:
                kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=inputs.get("deletionWindowInDays") or 30)
            except ClientError:
                pass
            raise
        state = self.read_back(kms, name, key_id, inputs)
        return key_id, state

    def adoption_mismatch(self, md: dict, inputs: dict) -> str | None:
        store = inputs.get("customKeyStoreId")
        wanted = {"KeySpec": inputs.get("keySpec", "SYMMETRIC_DEFAULT"), "KeyUsage": inputs.get("keyUsage", "ENCRYPT_DECRYPT"),
                  "MultiRegion": bool(inputs.get("multiRegion")), "Origin": "AWS_CLOUDHSM" if store else "AWS_KMS",
                  "CustomKeyStoreId": store}
        return _mismatch(md, wanted)

    def _enable_rotation(self, kms, name: str, key_id: str, inputs: dict) -> None:
        args = {"KeyId": key_id}
        if inputs.get("rotationPeriodInDays"):
            args["RotationPeriodInDays"] = inputs["rotationPeriodInDays"]
        kms_call(name, "EnableKeyRotation", kms.enable_key_rotation, **args)

    def read(self, kms, name: str, resource_id: str, state: dict) -> dict | None:
        md = live_key(kms, resource_id)
        if md is None:
            return None
        policy = read_policy(kms, name, resource_id, state)
        rotation_enabled, period = False, state.get("rotationPeriodInDays")
        if md.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT" and md.get("Origin") == "AWS_KMS":
            rot = kms_call(name, "GetKeyRotationStatus", kms.get_key_rotation_status, KeyId=resource_id)
            rotation_enabled = bool(rot.get("KeyRotationEnabled"))
            if rotation_enabled and rot.get("RotationPeriodInDays"):
                period = int(rot["RotationPeriodInDays"])
        tags = read_tags(kms, resource_id)
        out = {
            "description": md.get("Description", ""),
            "keySpec": md.get("KeySpec", "SYMMETRIC_DEFAULT"),
            "keyUsage": md.get("KeyUsage", "ENCRYPT_DECRYPT"),
            "policy": policy,
            "enableKeyRotation": rotation_enabled,
            "deletionWindowInDays": state.get("deletionWindowInDays") or 30,
            "isEnabled": md["KeyState"] == "Enabled",
            "multiRegion": bool(md.get("MultiRegion")),
            "bypassPolicyLockoutSafetyCheck": bool(state.get("bypassPolicyLockoutSafetyCheck", False)),
            "tags": tags,
            "arn": md["Arn"],
            "keyId": md["KeyId"],
            "keyState": md["KeyState"],
        }
        if period is not None:
            out["rotationPeriodInDays"] = period
        if md.get("CustomKeyStoreId"):
            out["customKeyStoreId"] = md["CustomKeyStoreId"]
        return out

    def update(self, kms, name: str, resource_id: str, olds: dict, news: dict, changes: list[str]) -> dict:
        self.apply_changes(kms, name, resource_id, olds, news, changes)
        state = self.read_back(kms, name, resource_id, {**olds, **news})
        return state

    def apply_changes(self, kms, name: str, resource_id: str, olds: dict, news: dict, changes: list[str]) -> None:
        """The in-place changes, in an order KMS accepts (enable first, disable last); shared with replicas."""
        enabling = "isEnabled" in changes and news.get("isEnabled", True)
        disabling = "isEnabled" in changes and not news.get("isEnabled", True)
        if enabling:
            kms_call(name, "EnableKey", kms.enable_key, KeyId=resource_id)
        if "description" in changes:
            kms_call(name, "UpdateKeyDescription", kms.update_key_description, KeyId=resource_id,
                     Description=news.get("description", ""))
        if "policy" in changes and news.get("policy"):
            args = {"KeyId": resource_id, "PolicyName": "default", "Policy": news["policy"]}
            if news.get("bypassPolicyLockoutSafetyCheck"):
                args["BypassPolicyLockoutSafetyCheck"] = True
            kms_call(name, "PutKeyPolicy", kms.put_key_policy, **args)
        if {"enableKeyRotation", "rotationPeriodInDays"} & set(changes):
            if news.get("enableKeyRotation"):
                self._enable_rotation(kms, name, resource_id, news)
            elif olds.get("enableKeyRotation"):
                kms_call(name, "DisableKeyRotation", kms.disable_key_rotation, KeyId=resource_id)
        if "tags" in changes:
            old_tags, new_tags = olds.get("tags") or {}, news.get("tags") or {}
            gone = [k for k in old_tags if k not in new_tags]
            if len(new_tags) >= MAX_TAGS:
                gone.append(URN_TAG)  # the program's tags take all 50 places; the URN tag yields
            if gone:
                kms_call(name, "UntagResource", kms.untag_resource, KeyId=resource_id, TagKeys=gone)
            changed = [{"TagKey": k, "TagValue": v} for k, v in new_tags.items() if old_tags.get(k) != v]
            if changed:
                kms_call(name, "TagResource", kms.tag_resource, KeyId=resource_id, Tags=changed)
        if disabling:
            kms_call(name, "DisableKey", kms.disable_key, KeyId=resource_id)

    def delete(self, kms, name: str, resource_id: str, state: dict) -> None:
        window = int(state.get("deletionWindowInDays") or 30)
        try:
            kms.schedule_key_deletion(KeyId=resource_id, PendingWindowInDays=window)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if is_not_found(exc) or (code == "KMSInvalidStateException" and "pending deletion" in str(exc)):
                return  # already gone or already scheduled
            raise kms_error(name, "ScheduleKeyDeletion", exc) from None

    def replacement_note(self, state: dict) -> str | None:
        window = state.get("deletionWindowInDays") or 30
        key = state.get("keyId") or "the old key"
        return f"replacing schedules deletion of key {key} with a {window}-day waiting period (it can be cancelled until then)"


def _mismatch(md: dict, wanted: dict) -> str | None:
    """How a key's metadata differs from what a create would make (None: it matches)."""
    diffs = [f"{k} {md.get(k)} (wanted {v})" for k, v in wanted.items() if (md.get(k) or None) != (v or None)]
    return ", ".join(diffs) if diffs else None
