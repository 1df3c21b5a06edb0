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


def key_facts(key: KeyRecord, aliases: list[str]) -> dict[str, Any]:
    """The condition keys that describe the key itself."""
    out: dict[str, Any] = {"kms:KeySpec": key.key_spec, "kms:KeyUsage": key.key_usage, "kms:KeyOrigin": key.origin,
                           "kms:MultiRegion": bool(key.multi_region), "kms:ResourceAliases": aliases}
    if key.multi_region:
        out["kms:MultiRegionKeyType"] = key.multi_region_role or "PRIMARY"
    return out


def condition_keys(*, principal_arn: str, principal_account: str, principal_type: str, region: str, now: float,
                   operation: str, params: dict, key_facts: dict[str, Any] | None = None, via_service: str | None = None,
                   source_vpce: str | None = None, source_ip: str | None = None) -> dict[str, Any]:
    """The global and KMS condition keys of one request (shared by the backend and the simulator)."""
    out: dict[str, Any] = {
        "aws:PrincipalArn": principal_arn,
        "aws:PrincipalAccount": principal_account,
        "aws:PrincipalType": principal_type,
        "aws:RequestedRegion": region,
        "aws:CurrentTime": datetime.fromtimestamp(now, timezone.utc),
        "aws:EpochTime": int(now),
        "aws:SourceIp": source_ip,
        "kms:CallerAccount": principal_account,
        "kms:ViaService": via_service,
        "aws:SourceVpce": source_vpce,
        **(key_facts or {}),
    }
    context_param = {"ReEncryptFrom": "SourceEncryptionContext", "ReEncryptTo": "DestinationEncryptionContext"}.get(
        operation, "EncryptionContext")
    context = params.get(context_param)
    if context is not None:
        out["kms:EncryptionContextKeys"] = sorted(context)
        for k, v in context.items():
            out[f"kms:EncryptionContext:{k}"] = v
    for param in ("KeyId", "SourceKeyId", "DestinationKeyId", "TargetKeyId"):
        ref = params.get(param)
        if isinstance(ref, str) and "alias/" in ref:
            out["kms:RequestAlias"] = ref[ref.index("alias/"):]
    if operation == "CreateGrant":
        out["kms:GrantOperations"] = list(params.get("Operations") or [])
        out["kms:GranteePrincipal"] = params.get("GranteePrincipal")
        out["kms:RetiringPrincipal"] = params.get("RetiringPrincipal")
        out["kms:GrantIsForAWSResource"] = bool(via_service)
        for kind in ("EncryptionContextEquals", "EncryptionContextSubset"):
            if (params.get("Constraints") or {}).get(kind):
                out["kms:GrantConstraintType"] = kind
    if operation == "EnableKeyRotation":
        out["kms:RotationPeriodInDays"] = params.get("RotationPeriodInDays")
    if operation == "ScheduleKeyDeletion":
        out["kms:ScheduleKeyDeletionPendingWindowInDays"] = params.get("PendingWindowInDays") or 30
    if operation in ("CreateKey", "PutKeyPolicy"):
        out["kms:BypassPolicyLockoutSafetyCheck"] = bool(params.get("BypassPolicyLockoutSafetyCheck"))
    if operation in ("Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo"):
        out["kms:EncryptionAlgorithm"] = params.get("EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
    return {k: v for k, v in out.items() if v is not None}


def request_context(call, key: KeyRecord | None, operation: str) -> dict[str, Any]:
    ctx = call.ctx
    facts = key_facts(key, call.store.aliases_of(key.key_id, key.region)) if key is not None else None
    return condition_keys(principal_arn=ctx.principal_arn, principal_account=ctx.account,
                          principal_type=ctx.principal_type, region=ctx.region, now=call.now, operation=operation,
                          params=getattr(call, "params", None) or {}, key_facts=facts, via_service=ctx.via_service,
                          source_vpce=ctx.source_vpce, source_ip=ctx.source_ip)


def _grants(call, key: KeyRecord) -> list[GrantInfo]:
    from kms_iac.backend.ops.grants import active_grants

    return grant_infos(active_grants(call.store, key))


def grant_infos(grants: list[dict]) -> list[GrantInfo]:
    """GrantInfo from grant records or ListGrants entries."""
    return [GrantInfo(g["GrantId"], g["GranteePrincipal"], tuple(g["Operations"]), g.get("Constraints") or None)
            for g in grants]


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
