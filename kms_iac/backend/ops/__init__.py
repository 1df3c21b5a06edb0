"""The KMS operations: one function per operation, grouped by topic.

Each module registers its functions with :func:`operation`. The dispatcher in
``kms_iac.backend.core`` does the cross-cutting work once (validation against the
service model, KeyId resolution, the key-state table, authorization, audit) before an
operation function runs, so these functions hold only what is particular to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

Handler = Callable[..., dict]


# Operations whose key member the API reference documents as "the key ID or key ARN" only
# (and GetKeyLastUsage: "Alias names are not supported"; RetireGrant: "the key ARN"). AWS
# refuses an alias name or alias ARN there, before looking anything up, with
# InvalidArnException "Key Aliases are not supported for this operation." Every other
# operation that names a key (DescribeKey, GetPublicKey and the cryptographic operations)
# also takes an alias name or alias ARN. tests/test_aws_answers.py checks this table against
# each operation's KeyId documentation in botocore's service model.
KEY_ID_OR_ARN_ONLY = frozenset({
    "CancelKeyDeletion", "CreateAlias", "CreateGrant", "DeleteImportedKeyMaterial", "DisableKey",
    "DisableKeyRotation", "EnableKey", "EnableKeyRotation", "GetKeyLastUsage", "GetKeyPolicy",
    "GetKeyRotationStatus", "GetParametersForImport", "ImportKeyMaterial", "ListAliases", "ListGrants",
    "ListKeyPolicies", "ListKeyRotations", "ListResourceTags", "PutKeyPolicy", "ReplicateKey", "RetireGrant",
    "RevokeGrant", "RotateKeyOnDemand", "ScheduleKeyDeletion", "TagResource", "UntagResource",
    "UpdateAlias", "UpdateKeyDescription", "UpdatePrimaryRegion",
})


def accepts_alias(operation_name: str) -> bool:
    """Whether ``operation_name`` takes an alias name or alias ARN where it names a key."""
    return operation_name not in KEY_ID_OR_ARN_ONLY


@dataclass(frozen=True)
class OpSpec:
    name: str
    handler: Handler
    key_param: str | None  # request member naming the key the dispatcher resolves, if any
    mutates: bool
    aliases: bool = True  # key_param may be an alias name or alias ARN (see KEY_ID_OR_ARN_ONLY)


OPERATIONS: dict[str, OpSpec] = {}


def operation(name: str, key: str | None = None, mutates: bool = False) -> Callable[[Handler], Handler]:
    """Register ``handler`` as KMS operation ``name``.

    With ``key="KeyId"`` the dispatcher resolves that member (id or ARN, and alias name or
    alias ARN where :data:`KEY_ID_OR_ARN_ONLY` allows), applies the key-state table and
    authorization, and passes the key record as the handler's ``key`` argument.
    ``mutates`` runs the handler in a write transaction.
    """

    def register(handler: Handler) -> Handler:
        OPERATIONS[name] = OpSpec(name, handler, key, mutates, accepts_alias(name))
        return handler

    return register


def load_all() -> dict[str, OpSpec]:
    from kms_iac.backend.ops import (  # noqa: F401
        aliases, asymmetric, custom_key_stores, data_key_pairs, encryption, grants, imports, keys, policies, random,
        replication, rotation, shared_secrets, tags, usage,
    )

    return OPERATIONS
