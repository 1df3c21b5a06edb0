"""Authorization of every backend operation, as AWS KMS documents it.

Installed on a Backend together with authentication from a principals file. For an
operation on a key: the key policy (delegating to the account's IAM policies only
through a statement for the account), the caller's identity policies, the key's
grants, explicit deny first. Operations on no key (CreateKey, ListKeys, ...) need an
IAM allow (the account root always has it). PutKeyPolicy and CreateKey run the policy
lockout safety check unless BypassPolicyLockoutSafetyCheck is true. The evaluator is
``kms_iac.policy.evaluator``, the same one the simulator and the rules use.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from kms_iac.backend.core import ACCOUNT_OPERATIONS  # noqa: F401  (re-exported for the simulator)
from kms_iac.backend.errors import AccessDeniedException, MalformedPolicyDocumentException
from kms_iac.backend.store import KeyRecord
from kms_iac.policy.evaluator import GrantInfo, Principal, Request, access_denied_message, evaluate, lockout_check

LOCKOUT_MESSAGE = "The new key policy will not allow you to update the key policy in the future."


def principal_of(ctx) -> Principal:
    return Principal(arn=ctx.principal_arn, account=ctx.account, identity_policies=tuple(getattr(ctx, "identity_policies", ()) or ()))


def _account_policy(account: str) -> dict:
    """A stand-in key policy that delegates everything to ``account``'s IAM policies."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"}]}


def request_context(call, key: KeyRecord | None, operation: str) -> dict[str, Any]:
    """The global and KMS condition keys of this request."""
    ctx, params = call.ctx, getattr(call, "params", None) or {}
    out: dict[str, Any] = {
        "aws:PrincipalArn": ctx.principal_arn,
        "aws:PrincipalAccount": ctx.account,
        "aws:PrincipalType": ctx.principal_type,
        "aws:RequestedRegion": ctx.region,
        "aws:CurrentTime": datetime.fromtimestamp(call.now, timezone.utc),
        "aws:EpochTime": int(call.now),
        "aws:SourceIp": ctx.source_ip,
        "kms:CallerAccount": ctx.account,
    }
    if ctx.via_service:
        out["kms:ViaService"] = ctx.via_service
    if ctx.source_vpce:
        out["aws:SourceVpce"] = ctx.source_vpce
    context = None
    for name in ("EncryptionContext", "SourceEncryptionContext" if operation == "ReEncryptFrom" else "",
                 "DestinationEncryptionContext" if operation == "ReEncryptTo" else ""):
        if name and params.get(name) is not None:
            context = params[name]
    if context is not None:
        out["kms:EncryptionContextKeys"] = sorted(context)
        for k, v in context.items():
            out[f"kms:EncryptionContext:{k}"] = v
    if key is not None:
        out.update({"kms:KeySpec": key.key_spec, "kms:KeyUsage": key.key_usage, "kms:KeyOrigin": key.origin,
                    "kms:MultiRegion": bool(key.multi_region),
                    "kms:ResourceAliases": call.store.aliases_of(key.key_id, key.region)})
        if key.multi_region:
            out["kms:MultiRegionKeyType"] = key.multi_region_role or "PRIMARY"
    for param in ("KeyId", "SourceKeyId", "DestinationKeyId", "TargetKeyId"):
        ref = params.get(param)
        if isinstance(ref, str) and "alias/" in ref:
            out["kms:RequestAlias"] = ref[ref.index("alias/"):]
    if operation == "CreateGrant":
        out["kms:GrantOperations"] = list(params.get("Operations") or [])
        out["kms:GranteePrincipal"] = params.get("GranteePrincipal")
        if params.get("RetiringPrincipal"):
            out["kms:RetiringPrincipal"] = params["RetiringPrincipal"]
        out["kms:GrantIsForAWSResource"] = bool(ctx.via_service)
        constraints = params.get("Constraints") or {}
        for kind in ("EncryptionContextEquals", "EncryptionContextSubset"):
            if constraints.get(kind):
                out[f"kms:GrantConstraintType"] = kind
    if operation == "EnableKeyRotation" and params.get("RotationPeriodInDays") is not None:
        out["kms:RotationPeriodInDays"] = params["RotationPeriodInDays"]
    if operation == "ScheduleKeyDeletion":
        out["kms:ScheduleKeyDeletionPendingWindowInDays"] = params.get("PendingWindowInDays") or 30
    if operation in ("CreateKey", "PutKeyPolicy"):
        out["kms:BypassPolicyLockoutSafetyCheck"] = bool(params.get("BypassPolicyLockoutSafetyCheck"))
    if operation == "GenerateDataKey" and params.get("KeySpec"):
        out["kms:DataKeyPairSpec"] = params["KeySpec"]
    out["kms:EncryptionAlgorithm"] = params.get("EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
    return {k: v for k, v in out.items() if v is not None}


def _grants(call, key: KeyRecord) -> list[GrantInfo]:
    from kms_iac.backend.ops.grants import active_grants

    return [GrantInfo(g["GrantId"], g["GranteePrincipal"], tuple(g["Operations"]), g.get("Constraints") or None)
            for g in active_grants(call.store, key)]


class Authorizer:
    """Called by the dispatcher as ``authorizer(call, operation, key, params=None)``."""

    def __call__(self, call, operation: str, key: KeyRecord | None, params: dict | None = None) -> None:
        principal = principal_of(call.ctx)
        action = f"kms:{operation}"
        if key is None or operation == "CreateKey":
            self._account_operation(call, operation, principal)
            if operation == "CreateKey" and key is not None and not (params or {}).get("BypassPolicyLockoutSafetyCheck"):
                self.check_lockout(call, key, key.policy)
            return
        params = getattr(call, "params", None) or {}
        context = params.get({"ReEncryptFrom": "SourceEncryptionContext",
                              "ReEncryptTo": "DestinationEncryptionContext"}.get(operation, "EncryptionContext"))
        request = Request(action=action, resource=key.arn, context=request_context(call, key, operation),
                          encryption_context=context or {})
        decision = evaluate(key.policy, principal, request, _grants(call, key))
        if not decision.allowed:
            raise AccessDeniedException(access_denied_message(principal.arn, action, key.arn, decision))

    def _account_operation(self, call, operation: str, principal: Principal) -> None:
        action = f"kms:{operation}"
        request = Request(action=action, resource="*", context=request_context(call, None, operation))
        decision = evaluate(_account_policy(call.ctx.account), principal, request)
        if not decision.allowed:
            raise AccessDeniedException(access_denied_message(principal.arn, action, "*", decision))

    def check_lockout(self, call, key: KeyRecord, policy_text: str) -> None:
        try:
            doc = json.loads(policy_text)
        except json.JSONDecodeError:
            raise MalformedPolicyDocumentException("") from None
        if not lockout_check(doc, principal_of(call.ctx), key.arn):
            raise MalformedPolicyDocumentException(LOCKOUT_MESSAGE)


def install(backend, authenticator) -> None:
    """Turn on authentication and authorization for ``backend``."""
    authorizer = Authorizer()
    backend.authenticator = authenticator
    backend.authorizer = authorizer
    backend.lockout_check = authorizer.check_lockout
