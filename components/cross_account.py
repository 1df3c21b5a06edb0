"""``CrossAccountKeyAccess``: share a key you do not own the policy of, through grants."""

from __future__ import annotations

import re
from typing import Mapping, Optional, Sequence

import pulumi

from ._inputs import ComponentInputError, string_list
from kms_iac import resources as kms

# Operations that take an encryption context, so constraints can apply to every one of them.
DEFAULT_OPERATIONS = ("Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext")
_NAME = re.compile(r"[^A-Za-z0-9_-]")


class CrossAccountKeyAccess(pulumi.ComponentResource):
    """A grant per grantee principal on an existing key, with encryption-context constraints.

    Grants need no change to the key policy, so this works for keys whose policy the
    caller does not own, and each grant is revoked when the component is removed."""

    grant_ids: pulumi.Output[dict]

    def __init__(self, name: str, *, key_id: pulumi.Input[str], grantee_principals: Sequence[str],
                 operations: Sequence[str] = DEFAULT_OPERATIONS,
                 encryption_context_subset: Optional[Mapping[str, str]] = None,
                 encryption_context_equals: Optional[Mapping[str, str]] = None,
                 retiring_principal: Optional[str] = None,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        principals = string_list(grantee_principals, "CrossAccountKeyAccess.grantee_principals")
        if not principals:
            raise ComponentInputError("CrossAccountKeyAccess.grantee_principals: name at least one principal ARN")
        for p in principals:
            if isinstance(p, str) and not re.match(r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:", p):
                raise ComponentInputError(f"CrossAccountKeyAccess.grantee_principals: {p!r} is not a principal ARN")
        if encryption_context_subset and encryption_context_equals:
            raise ComponentInputError("CrossAccountKeyAccess: give encryption_context_subset or "
                                      "encryption_context_equals, not both")
        ops = string_list(operations, "CrossAccountKeyAccess.operations")
        super().__init__("kms-iac:index:CrossAccountKeyAccess", name, None, opts)
        grants = {}
        for p in principals:
            label = _NAME.sub("-", p.split(":", 4)[-1]) if isinstance(p, str) else str(len(grants))
            grant = kms.Grant(f"{name}-{label}", key_id=key_id, grantee_principal=p, operations=ops,
                              name=f"{name}-{label}"[:256], retiring_principal=retiring_principal,
                              encryption_context_subset=encryption_context_subset,
                              encryption_context_equals=encryption_context_equals,
                              opts=pulumi.ResourceOptions(parent=self))
            grants[p if isinstance(p, str) else label] = grant.grant_id
        self.grant_ids = pulumi.Output.from_input(grants)
        self.register_outputs({"grant_ids": self.grant_ids})
