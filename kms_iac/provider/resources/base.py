"""What every resource handler provides, and how KMS errors become Pulumi errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from botocore.exceptions import ClientError

from kms_iac.provider.engine_log import EngineLog
from kms_iac.provider.errors import ProviderError
from kms_iac.provider.orphans import URN_TAG, OrphanIndex, carries_urn_tag, urn_tag_value, with_urn_tag, without_urn_tag
from kms_iac.provider.spec import ResourceSpec, diff


class NotAdoptable(Exception):
    """A key tagged with the resource's URN turned out not to be the one it would create."""


def fail(resource: str, what: str, why: str, code: str | None = None) -> ProviderError:
    return ProviderError(f"{resource}: {what} failed: {why}", code)


def kms_error(resource: str, action: str, exc: ClientError) -> ProviderError:
    err = exc.response.get("Error", {})
    code = err.get("Code", "Error")
    return fail(resource, action, f"{code}: {err.get('Message', '')}".rstrip(": "), code)


def kms_call(resource: str, action: str, fn, **kwargs) -> Any:
    """Call KMS; turn a ClientError into a message that names the resource and the error."""
    try:
        return fn(**kwargs)
    except ClientError as exc:
        raise kms_error(resource, action, exc) from None


def is_not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "NotFoundException"


def describe_or_none(kms, key_ref: str) -> dict | None:
    """KeyMetadata, or None when the key (or alias) does not exist."""
    try:
        return kms.describe_key(KeyId=key_ref)["KeyMetadata"]
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def live_key(kms, key_ref: str) -> dict | None:
    """KeyMetadata of a key that still counts as existing: one scheduled for deletion is gone."""
    md = describe_or_none(kms, key_ref)
    if md is None or md["KeyState"] in ("PendingDeletion", "PendingReplicaDeletion"):
        return None
    return md


def tag_list(tags: dict | None, urn: str = "") -> list[dict[str, str]]:
    """CreateKey's / ReplicateKey's Tags: the program's, plus ``creating <URN>`` (see orphans.py)."""
    return [{"TagKey": k, "TagValue": v} for k, v in with_urn_tag(tags, urn).items()]


def confirm_urn_tag(kms, name: str, key_ref: str, urn: str, tags: dict | None) -> None:
    """``creating <URN>`` becomes ``<URN>``: the engine has the key, so it is no orphan."""
    if carries_urn_tag(tags, urn):
        kms_call(name, "TagResource", kms.tag_resource, KeyId=key_ref,
                 Tags=[{"TagKey": URN_TAG, "TagValue": urn_tag_value(urn)}])


def read_tags(kms, key_id: str) -> dict[str, str]:
    """The key's tags as the program declares them: without the provider's own URN tag."""
    tags: dict[str, str] = {}
    for page in kms.get_paginator("list_resource_tags").paginate(KeyId=key_id):
        tags.update({t["TagKey"]: t["TagValue"] for t in page.get("Tags", [])})
    return without_urn_tag(tags)


def read_policy(kms, name: str, key_id: str, state: dict) -> str:
    """The key policy, in the program's own spelling when it means the same (so no diff appears)."""
    from kms_iac.policy.normalize import policies_equal

    policy = kms_call(name, "GetKeyPolicy", kms.get_key_policy, KeyId=key_id, PolicyName="default")["Policy"]
    given = state.get("policy")
    return given if isinstance(given, str) and policies_equal(given, policy) else policy


class ResourceHandler(ABC):
    spec: ResourceSpec
    # Set by the provider when it is configured: where warnings go, and the index of keys
    # carrying a URN tag (None where orphans are not looked up: on AWS).
    log: EngineLog = EngineLog(None)
    orphans: OrphanIndex | None = None
    makes_keys = False  # creates KMS keys, which carry the URN tag (see orphans.py)

    def regional(self, region: str):
        """A client of the same target in another Region (set by the provider when it is configured)."""
        raise RuntimeError("the provider is not configured")

    def validate(self, inputs: dict) -> list[tuple[str, str]]:
        """KMS's own rules for the inputs, so preview fails fast before any call."""
        return []

    @abstractmethod
    def create(self, kms, name: str, inputs: dict, urn: str = "") -> tuple[str, dict]:
        """Create the resource; ``name`` is the resource as messages name it, ``urn`` its Pulumi URN."""

    @abstractmethod
    def read(self, kms, name: str, resource_id: str, state: dict) -> dict | None:
        """The resource's actual state (inputs and outputs), or None when it is gone."""

    @abstractmethod
    def update(self, kms, name: str, resource_id: str, olds: dict, news: dict, changes: list[str]) -> dict: ...

    @abstractmethod
    def delete(self, kms, name: str, resource_id: str, state: dict) -> None: ...

    def read_back(self, kms, name: str, resource_id: str, state: dict) -> dict:
        """The state right after a create or update; its absence is a failure, never an assert."""
        found = self.read(kms, name, resource_id, state)
        if found is None:
            raise fail(name, "read back", f"{self.spec.name} {resource_id} no longer exists right after it was written")
        return found

    # -- keys left behind by an interrupted deployment (see kms_iac/provider/orphans.py) --

    def adoption_mismatch(self, md: dict, inputs: dict) -> str | None:
        """Why the key ``md`` (tagged with this resource's URN) is not what a create would make."""
        return "this resource type does not adopt keys"

    def resource_id_of(self, md: dict) -> str:
        """The resource id of the key ``md`` describes (a key id; a replica's is its ARN)."""
        return md["KeyId"]

    def adopt(self, kms, name: str, md: dict, inputs: dict) -> tuple[str, dict]:
        """Bring an orphan key to the declared inputs as an update would (description, policy,
        rotation, enablement, tags); (resource id, state). May raise NotAdoptable."""
        resource_id = self.resource_id_of(md)
        current = self.read_back(kms, name, resource_id, inputs)
        changes, _ = diff(self.spec, current, inputs)
        return resource_id, self.update(kms, name, resource_id, current, inputs, changes)

    def adopt_orphan(self, kms, name: str, urn: str, inputs: dict) -> tuple[str, dict] | None:
        """A key an interrupted deployment created for ``urn``, brought to ``inputs``; None if there is none.

        Only keys still tagged ``creating <urn>``, not claimed by a resource of this
        deployment and not pending deletion are considered; one whose immutable properties
        differ is reported and left.
        """
        if not urn or self.orphans is None:
            return None
        for key_id in self.orphans.candidates(kms, urn):
            md = live_key(kms, key_id)
            if md is None:
                continue
            why = self.adoption_mismatch(md, inputs)
            if why is None:
                try:
                    resource_id, state = self.adopt(kms, name, md, inputs)
                except NotAdoptable as exc:
                    why = str(exc)
                else:
                    self.log.warn(urn, f"adopted key {md['KeyId']}: a deployment was interrupted while creating it "
                                       f"for this resource (its {URN_TAG} tag still said creating) and no state "
                                       "knows it; no new key was created")
                    return resource_id, state
            self.log.warn(urn, f"key {md['KeyId']}, left by an interrupted create of this resource, is not "
                               f"adoptable: {why}; "
                               f"creating a new key. If nothing uses {md['KeyId']}, schedule its deletion "
                               f"(aws kms schedule-key-deletion --key-id {md['KeyId']})")
        return None

    def preview_outputs(self, inputs: dict) -> dict:
        """Outputs during preview: inputs as given, computed outputs unknown."""
        # Outputs left out are unknown to the engine during a preview.
        return {k: v for k, v in inputs.items() if not self.spec.prop(k).output}

    def handed_over(self, kms, name: str, resource_id: str, urn: str, inputs: dict) -> None:
        """Once the engine has received a Create's answer: a key's tag stops saying ``creating``."""
        if self.makes_keys:
            confirm_urn_tag(kms, name, resource_id, urn, inputs.get("tags"))

    def replacement_note(self, state: dict) -> str | None:
        """What replacing this resource does to the old one, shown in the preview."""
        return None
