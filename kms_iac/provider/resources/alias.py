"""``kms-iac:index:Alias``: a friendly name (``alias/...``) for a key."""

from __future__ import annotations

import re

from botocore.exceptions import ClientError

from kms_iac.provider.resources.base import ResourceHandler, describe_or_none, is_not_found, kms_call, kms_error
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

    def create(self, kms, name: str, inputs: dict) -> tuple[str, dict]:
        kms_call(name, "CreateAlias", kms.create_alias, AliasName=inputs["name"], TargetKeyId=inputs["targetKeyId"])
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
        kms_call(name, "UpdateAlias", kms.update_alias, AliasName=resource_id, TargetKeyId=news["targetKeyId"])
        state = self.read_back(kms, name, resource_id, news)
        return state

    def delete(self, kms, name: str, resource_id: str, state: dict) -> None:
        try:
            kms.delete_alias(AliasName=resource_id)
        except ClientError as exc:
            if not is_not_found(exc):
                raise kms_error(name, "DeleteAlias", exc) from None
