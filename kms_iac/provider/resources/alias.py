"""``kms-iac:index:Alias``: a friendly name (``alias/...``) for a key.

A new target updates the alias in place (UpdateAlias). KMS refuses to move an alias to a
key of another key usage or key spec, which is exactly what replacing a key for a new
``key_spec``/``key_usage`` asks for; then the alias is recreated (DeleteAlias, CreateAlias)
on the new key, so the replacement goes through instead of leaving the stack half-updated.
"""

from __future__ import annotations

import re

from botocore.exceptions import ClientError

from kms_iac.provider.resources.base import (
    ProviderError,
    ResourceHandler,
    describe_or_none,
    is_not_found,
    kms_call,
    kms_error,
)
from kms_iac.provider.spec import Prop, ResourceSpec

_NAME = re.compile(r"^alias/[a-zA-Z0-9/_-]+$")


def _key_id_part(ref: str) -> str:
    return ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref


def _same_target(a: str, b: str) -> bool:
    return _key_id_part(a) == _key_id_part(b)


SPEC = ResourceSpec(
    "Alias",
    "An alias (alias/...) that names a KMS key.",
    (
        Prop("name", "string", "The alias name; must start with alias/ and not alias/aws/.", replaces=True, required=True),
        Prop("targetKeyId", "string", "Key id or key ARN the alias points to.", required=True, equal=_same_target),
        Prop("arn", "string", "The alias ARN.", output=True),
        Prop("targetKeyArn", "string", "ARN of the key the alias points to.", output=True),
    ),
)


class AliasHandler(ResourceHandler):
    spec = SPEC

    def validate(self, inputs: dict) -> list[tuple[str, str]]:
        name = inputs.get("name")
        if isinstance(name, str):
            if not _NAME.match(name) or len(name) > 256:
                return [("name", f"alias name {name!r} must start with alias/ and contain only letters, digits, /, _ and -")]
            if name.startswith("alias/aws/"):
                return [("name", "alias names beginning with alias/aws/ are reserved for AWS managed keys")]
        return []

    def create(self, kms, name: str, inputs: dict, urn: str = "") -> tuple[str, dict]:
        try:
            kms_call(name, "CreateAlias", kms.create_alias, AliasName=inputs["name"], TargetKeyId=inputs["targetKeyId"])
        except ProviderError as exc:
            # An alias that already names the very key requested is what this create would
            # make (typically left by an interrupted deployment whose key was adopted): keep it,
            # where orphans are adopted (not on AWS). Under `pulumi up --replace` of the alias,
            # the provider then keeps it when the engine deletes the old one (same id).
            adoptable = exc.code == "AlreadyExistsException" and self.orphans is not None and bool(urn)
            current = describe_or_none(kms, inputs["name"]) if adoptable else None
            target = describe_or_none(kms, inputs["targetKeyId"]) if current is not None else None
            if target is None or current["KeyId"] != target["KeyId"]:
                raise
            self.log.warn(urn, f"alias {inputs['name']} already named key {target['KeyId']}, as declared; "
                               "adopted it instead of creating it")
        state = self.read_back(kms, name, inputs["name"], inputs)
        return inputs["name"], state

    def read(self, kms, name: str, resource_id: str, state: dict) -> dict | None:
        md = describe_or_none(kms, resource_id)
        if md is None:
            return None
        target = state.get("targetKeyId")
        if not (isinstance(target, str) and _same_target(target, md["KeyId"])):
            target = md["KeyId"]
        region, account = md["Arn"].split(":")[3:5]
        return {"name": resource_id, "targetKeyId": target, "targetKeyArn": md["Arn"],
                "arn": f"arn:aws:kms:{region}:{account}:{resource_id}"}

    def update(self, kms, name: str, resource_id: str, olds: dict, news: dict, changes: list[str]) -> dict:
        target = news["targetKeyId"]
        try:
            kms_call(name, "UpdateAlias", kms.update_alias, AliasName=resource_id, TargetKeyId=target)
        except ProviderError as exc:
            if exc.code != "ValidationException" or not self._types_differ(kms, resource_id, target):
                raise
            self._recreate(kms, name, resource_id, target)
        state = self.read_back(kms, name, resource_id, news)
        return state

    @staticmethod
    def _types_differ(kms, alias: str, target: str) -> bool:
        """Whether UpdateAlias refused because the alias's key and the new one differ in usage or spec."""
        current, new = describe_or_none(kms, alias), describe_or_none(kms, target)
        if current is None or new is None:
            return False
        return any(current.get(f) != new.get(f) for f in ("KeyUsage", "KeySpec"))

    def _recreate(self, kms, name: str, alias: str, target: str) -> None:
        """Move the alias to a key of another type: delete it and create it on the new key.

        The alias is missing between the two calls (KMS has no atomic way); if CreateAlias
        fails, the alias is put back on its old key before the error is reported.
        """
        old_key = describe_or_none(kms, alias)
        kms_call(name, "DeleteAlias", kms.delete_alias, AliasName=alias)
        try:
            kms_call(name, "CreateAlias", kms.create_alias, AliasName=alias, TargetKeyId=target)
        except ProviderError as exc:
            if old_key is not None:
                try:
                    kms.create_alias(AliasName=alias, TargetKeyId=old_key["KeyId"])
                except ClientError as restore:
                    raise ProviderError(f"{exc}; putting {alias} back on {old_key['KeyId']} failed too: {restore}",
                                        exc.code) from None
            raise

    def delete(self, kms, name: str, resource_id: str, state: dict) -> None:
        try:
            kms.delete_alias(AliasName=resource_id)
        except ClientError as exc:
            if not is_not_found(exc):
                raise kms_error(name, "DeleteAlias", exc) from None
