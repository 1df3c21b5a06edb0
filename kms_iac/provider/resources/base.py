"""What every resource handler provides, and how KMS errors become Pulumi errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from botocore.exceptions import ClientError

from kms_iac.provider.spec import ResourceSpec


class ProviderError(Exception):
    """A failure the engine shows against the resource, naming it and the KMS error.

    The SDK's provider server appends the Python traceback of any exception to the
    message the user sees; for an expected KMS refusal that is noise, so this error
    reports no traceback.
    """

    @property
    def __traceback__(self):  # type: ignore[override]
        return None

    @__traceback__.setter
    def __traceback__(self, value) -> None:
        pass


def kms_error(resource: str, action: str, exc: ClientError) -> ProviderError:
    err = exc.response.get("Error", {})
    return ProviderError(f"{resource}: KMS {action} failed: {err.get('Code', 'Error')}: {err.get('Message', '')}".rstrip(": "))


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


def read_tags(kms, key_id: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for page in kms.get_paginator("list_resource_tags").paginate(KeyId=key_id):
        tags.update({t["TagKey"]: t["TagValue"] for t in page.get("Tags", [])})
    return tags


def read_policy(kms, name: str, key_id: str, state: dict) -> str:
    """The key policy, in the program's own spelling when it means the same (so no diff appears)."""
    from kms_iac.policy.normalize import policies_equal

    policy = kms_call(name, "GetKeyPolicy", kms.get_key_policy, KeyId=key_id, PolicyName="default")["Policy"]
    given = state.get("policy")
    return given if isinstance(given, str) and policies_equal(given, policy) else policy


class ResourceHandler(ABC):
    spec: ResourceSpec

    def regional(self, region: str):
        """A client of the same target in another Region (set by the provider when it is configured)."""
        raise RuntimeError("the provider is not configured")

    def validate(self, inputs: dict) -> list[tuple[str, str]]:
        """KMS's own rules for the inputs, so preview fails fast before any call."""
        return []

    @abstractmethod
    def create(self, kms, name: str, inputs: dict) -> tuple[str, dict]: ...

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
            raise ProviderError(f"{name}: {self.spec.name} {resource_id} no longer exists right after it was written")
        return found

    def preview_outputs(self, inputs: dict) -> dict:
        """Outputs during preview: inputs as given, computed outputs unknown."""
        # Outputs left out are unknown to the engine during a preview.
        return {k: v for k, v in inputs.items() if not self.spec.prop(k).output}

    def replacement_note(self, state: dict) -> str | None:
        """What replacing this resource does to the old one, shown in the preview."""
        return None
