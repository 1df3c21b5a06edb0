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


@dataclass(frozen=True)
class OpSpec:
    name: str
    handler: Handler
    key_param: str | None  # request member naming the key the dispatcher resolves, if any
    mutates: bool


OPERATIONS: dict[str, OpSpec] = {}


def operation(name: str, key: str | None = None, mutates: bool = False) -> Callable[[Handler], Handler]:
    """Register ``handler`` as KMS operation ``name``.

    With ``key="KeyId"`` the dispatcher resolves that member (id, ARN, alias or alias
    ARN), applies the key-state table and authorization, and passes the key record as
    the handler's ``key`` argument. ``mutates`` runs the handler in a write transaction.
    """

    def register(handler: Handler) -> Handler:
        OPERATIONS[name] = OpSpec(name, handler, key, mutates)
        return handler

    return register


def load_all() -> dict[str, OpSpec]:
    from kms_iac.backend.ops import (  # noqa: F401
        aliases, asymmetric, custom_key_stores, data_key_pairs, encryption, grants, imports, keys, policies, random,
        replication, rotation, shared_secrets, tags, usage,
    )

    return OPERATIONS
