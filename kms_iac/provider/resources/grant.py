"""``kms-iac:index:Grant``: scoped, revocable use of a key without editing its policy.

Grants are immutable in KMS, so every input replaces the grant. Deleting it revokes it
(or retires it, with ``retireOnDelete``). The id is ``<key id>:<grant id>``.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from kms_iac.provider.resources.base import ResourceHandler, is_not_found, kms_call, kms_error
from kms_iac.provider.spec import Prop, ResourceSpec

GRANT_OPERATIONS = (
    "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo",
    "Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac", "DeriveSharedSecret",
)
CONTEXT_OPERATIONS = {"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
                      "ReEncryptTo", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "CreateGrant",
                      "RetireGrant"}


def _same_key(a: str, b: str) -> bool:
    return a.rsplit("/", 1)[-1] == b.rsplit("/", 1)[-1]


SPEC = ResourceSpec(
    "Grant",
    "A grant: the grantee may use the key for the listed operations, within the constraints.",
    (
        Prop("keyId", "string", "Key id or ARN of the key.", replaces=True, required=True, equal=_same_key),
        Prop("granteePrincipal", "string", "Principal (ARN or service principal) receiving the grant.", replaces=True, required=True),
        Prop("operations", "array", "Grant operations (Decrypt, Encrypt, GenerateDataKey, ...).", replaces=True, required=True,
             equal=lambda a, b: sorted(a or []) == sorted(b or [])),
        Prop("retiringPrincipal", "string", "Principal that may retire the grant.", replaces=True),
        Prop("name", "string", "Grant name (makes CreateGrant idempotent).", replaces=True),
        Prop("encryptionContextEquals", "map", "Allow only requests with exactly this encryption context.", replaces=True),
        Prop("encryptionContextSubset", "map", "Allow only requests whose encryption context includes these pairs.", replaces=True),
        Prop("retireOnDelete", "boolean", "Retire instead of revoke when the grant is deleted.", default=False),
        Prop("grantId", "string", "The grant id.", output=True),
        Prop("grantToken", "string", "A grant token, usable at once before the grant is eventually consistent.",
             output=True, secret=True),
    ),
)


class GrantHandler(ResourceHandler):
    spec = SPEC

    def validate(self, inputs: dict) -> list[tuple[str, str]]:
        fails: list[tuple[str, str]] = []
        ops = inputs.get("operations")
        if isinstance(ops, list):
            if not ops:
                fails.append(("operations", "a grant needs at least one operation"))
            bad = [o for o in ops if o not in GRANT_OPERATIONS]
            if bad:
                fails.append(("operations", f"not grant operations: {', '.join(map(str, bad))}"))
            if (inputs.get("encryptionContextEquals") or inputs.get("encryptionContextSubset")) and \
                    not set(ops) <= CONTEXT_OPERATIONS:
                fails.append(("operations", "encryption context constraints need operations that take an encryption "
                                            f"context ({', '.join(sorted(CONTEXT_OPERATIONS))})"))
        if inputs.get("encryptionContextEquals") and inputs.get("encryptionContextSubset"):
            fails.append(("encryptionContextSubset", "use encryptionContextEquals or encryptionContextSubset, not both"))
        return fails

    def create(self, kms, name: str, inputs: dict, urn: str = "") -> tuple[str, dict]:
        params: dict = {"KeyId": inputs["keyId"], "GranteePrincipal": inputs["granteePrincipal"],
                        "Operations": list(inputs["operations"])}
        for prop, arg in (("retiringPrincipal", "RetiringPrincipal"), ("name", "Name")):
            if inputs.get(prop):
                params[arg] = inputs[prop]
        if inputs.get("encryptionContextEquals"):
            params["Constraints"] = {"EncryptionContextEquals": inputs["encryptionContextEquals"]}
        elif inputs.get("encryptionContextSubset"):
            params["Constraints"] = {"EncryptionContextSubset": inputs["encryptionContextSubset"]}
        out = kms_call(name, "CreateGrant", kms.create_grant, **params)
        key_id = kms_call(name, "DescribeKey", kms.describe_key, KeyId=inputs["keyId"])["KeyMetadata"]["KeyId"]
        resource_id = f"{key_id}:{out['GrantId']}"
        state = self.read_back(kms, name, resource_id, {**inputs, "grantToken": out.get("GrantToken")})
        return resource_id, state

    def read(self, kms, name: str, resource_id: str, state: dict) -> dict | None:
        key_id, _, grant_id = resource_id.partition(":")
        try:
            pages = kms.get_paginator("list_grants").paginate(KeyId=key_id)
            grant = next((g for page in pages for g in page.get("Grants", []) if g["GrantId"] == grant_id), None)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        if grant is None:
            return None
        constraints = grant.get("Constraints") or {}
        out = {
            "keyId": state.get("keyId") if _same_key(str(state.get("keyId", "")), key_id) else key_id,
            "granteePrincipal": grant.get("GranteePrincipal"), "operations": grant.get("Operations", []),
            "retiringPrincipal": grant.get("RetiringPrincipal"), "name": grant.get("Name") or state.get("name"),
            "encryptionContextEquals": constraints.get("EncryptionContextEquals"),
            "encryptionContextSubset": constraints.get("EncryptionContextSubset"),
            "retireOnDelete": bool(state.get("retireOnDelete", False)),
            "grantId": grant_id, "grantToken": state.get("grantToken"),
        }
        return {k: v for k, v in out.items() if v not in (None, "")}

    def update(self, kms, name: str, resource_id: str, olds: dict, news: dict, changes: list[str]) -> dict:
        state = self.read_back(kms, name, resource_id, {**olds, **news})  # only retireOnDelete can change in place
        return {**state, "retireOnDelete": bool(news.get("retireOnDelete", False))}

    def delete(self, kms, name: str, resource_id: str, state: dict) -> None:
        key_id, _, grant_id = resource_id.partition(":")
        try:
            if state.get("retireOnDelete"):
                kms.retire_grant(KeyId=key_id, GrantId=grant_id)
            else:
                kms.revoke_grant(KeyId=key_id, GrantId=grant_id)
        except ClientError as exc:
            if not is_not_found(exc):
                raise kms_error(name, "RetireGrant" if state.get("retireOnDelete") else "RevokeGrant", exc) from None
