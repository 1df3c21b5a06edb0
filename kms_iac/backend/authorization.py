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
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from kms_iac.backend.errors import AccessDeniedException, MalformedPolicyDocumentException
from kms_iac.backend.store import KeyRecord
from kms_iac.policy.document import PolicyError, parse_policy
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


@lru_cache(maxsize=8)
def _utc(now_seconds: float) -> datetime:
    return datetime.fromtimestamp(now_seconds, timezone.utc)


def condition_keys(*, principal_arn: str, principal_account: str, principal_type: str, region: str, now: float,
                   operation: str, params: dict, key_facts: dict[str, Any] | None = None, via_service: str | None = None,
                   source_vpce: str | None = None, source_ip: str | None = None) -> dict[str, Any]:
    """The global and KMS condition keys of one request (shared by the backend and the simulator)."""
    out: dict[str, Any] = {
        "aws:PrincipalArn": principal_arn,
        "aws:PrincipalAccount": principal_account,
        "aws:PrincipalType": principal_type,
        "aws:RequestedRegion": region,
        "aws:CurrentTime": _utc(float(int(now))),
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
    out.update(_algorithm_keys(operation, params))
    return {k: v for k, v in out.items() if v is not None}


# The request member each algorithm condition key reads, per operation (AWS KMS condition keys:
# kms:EncryptionAlgorithm, kms:SigningAlgorithm, kms:MessageType, kms:MacAlgorithm,
# kms:KeyAgreementAlgorithm, kms:DataKeyPairSpec), with the value AWS uses when it is omitted.
# ReEncrypt is authorized as ReEncryptFrom (source algorithm) and ReEncryptTo (destination);
# data key operations always encrypt with SYMMETRIC_DEFAULT.
_ALGORITHM_KEYS: dict[str, tuple[tuple[str, str | None, str | None], ...]] = {
    **{op: (("kms:EncryptionAlgorithm", "EncryptionAlgorithm", "SYMMETRIC_DEFAULT"),) for op in ("Encrypt", "Decrypt")},
    "ReEncryptFrom": (("kms:EncryptionAlgorithm", "SourceEncryptionAlgorithm", "SYMMETRIC_DEFAULT"),),
    "ReEncryptTo": (("kms:EncryptionAlgorithm", "DestinationEncryptionAlgorithm", "SYMMETRIC_DEFAULT"),),
    **{op: (("kms:EncryptionAlgorithm", None, "SYMMETRIC_DEFAULT"),)
       for op in ("GenerateDataKey", "GenerateDataKeyWithoutPlaintext")},
    **{op: (("kms:EncryptionAlgorithm", None, "SYMMETRIC_DEFAULT"), ("kms:DataKeyPairSpec", "KeyPairSpec", None))
       for op in ("GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext")},
    **{op: (("kms:SigningAlgorithm", "SigningAlgorithm", None), ("kms:MessageType", "MessageType", "RAW"))
       for op in ("Sign", "Verify")},
    **{op: (("kms:MacAlgorithm", "MacAlgorithm", None),) for op in ("GenerateMac", "VerifyMac")},
    "DeriveSharedSecret": (("kms:KeyAgreementAlgorithm", "KeyAgreementAlgorithm", None),),
}


def _algorithm_keys(operation: str, params: dict) -> dict[str, Any]:
    return {name: (params.get(member) if member else None) or default
            for name, member, default in _ALGORITHM_KEYS.get(operation, ())}


def request_context(call, key: KeyRecord | None, operation: str, want_aliases: bool = True) -> dict[str, Any]:
    ctx = call.ctx
    aliases = call.store.aliases_of(key.key_id, key.region) if key is not None and want_aliases else []
    facts = key_facts(key, aliases) if key is not None else None
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


_CONDITION_KEY = re.compile(r"(?i)\$\{([^}]+)\}")
_TIME_KEYS = {"aws:currenttime", "aws:epochtime"}


def _policy_keys(doc: Any, out: set[str]) -> None:
    """Collect the (lower-cased) condition keys a policy reads, including policy variables."""
    statements = doc.get("Statement") if isinstance(doc, dict) else None
    for st in statements if isinstance(statements, list) else [statements] if statements else []:
        if not isinstance(st, dict):
            continue
        for conds in (st.get("Condition") or {}).values() if isinstance(st.get("Condition"), dict) else []:
            if isinstance(conds, dict):
                out.update(k.lower() for k in conds)
        out.update(m.lower() for m in _CONDITION_KEY.findall(json.dumps(st)))


@lru_cache(maxsize=4096)
def _referenced_keys(policy_text: str, identity_json: str) -> frozenset[str]:
    keys: set[str] = set()
    try:
        _policy_keys(parse_policy(policy_text), keys)
        for doc in json.loads(identity_json):
            _policy_keys(doc, keys)
    except (ValueError, TypeError):
        return frozenset({"*"})  # unreadable: never cache
    return frozenset(keys)


_CONTEXT_MEMBER = {"ReEncryptFrom": "SourceEncryptionContext", "ReEncryptTo": "DestinationEncryptionContext"}


class Authorizer:
    """Called by the dispatcher as ``authorizer(call, operation, key, params=None)``.

    Decisions are memoized on exactly what they depend on: the key policy, the
    caller and its identity policies, the action, the grants (via the store's
    generation, which moves on every write), the encryption context, and the values
    of the condition keys the policies actually read. A policy that reads the time
    (aws:CurrentTime, aws:EpochTime) is evaluated afresh every time.
    """

    def __init__(self) -> None:
        self._decisions: dict = {}  # bounded: let go whole when full (a miss only re-evaluates)
        self._grant_cache: dict = {}
        self._facts: dict[tuple[str, int], tuple[tuple, str, frozenset[str], bool]] = {}
        # Decisions of policies that read no condition key (the usual case), found with one lookup
        # before any of the above. Keyed on the identity policies' object, which the entry holds
        # (its id cannot be reused while the entry lives), and a hit must be that very object.
        self._plain: dict[tuple, tuple[Any, Any]] = {}

    def _policy_facts(self, policy: str, policies: Any) -> tuple[tuple, str, frozenset[str], bool]:
        """What a decision needs from a key policy and a caller's identity policies, worked out once
        per pair (every request reads it): the identity policies as canonical text, the condition
        keys the policies read, and whether decisions may be memoized (not when they read the time)."""
        policies = tuple(policies)
        identity_json = json.dumps(policies, sort_keys=True, default=str)
        wanted = _referenced_keys(policy, identity_json)
        facts = (policies, identity_json, wanted, not (wanted & _TIME_KEYS) and "*" not in wanted)
        if len(self._facts) >= 10_000:
            self._facts.clear()
        self._facts[(policy, id(policies))] = facts
        return facts

    def __call__(self, call, operation: str, key: KeyRecord | None, params: dict | None = None) -> None:
        if key is None or operation == "CreateKey":
            principal = principal_of(call.ctx)
            self._account_operation(call, operation, principal)
            if operation == "CreateKey" and key is not None and not (params or {}).get("BypassPolicyLockoutSafetyCheck"):
                self.check_lockout(call, key, key.policy)
            return
        ctx = call.ctx
        params = getattr(call, "params", None) or {}
        context = params.get(_CONTEXT_MEMBER.get(operation, "EncryptionContext")) or {}
        policies = getattr(ctx, "identity_policies", ()) or ()
        generation = call.store.generation
        context_items = tuple(sorted(context.items())) if context else ()
        plain_key = (key.key_id, key.region, key.policy, ctx.principal_arn, ctx.account, id(policies), operation,
                     generation, context_items)
        plain = self._plain.get(plain_key)
        if plain is not None and plain[0] is policies:
            if not plain[1].allowed:
                self._raise_if_denied(ctx.principal_arn, f"kms:{operation}", key.arn, plain[1])
            return
        action = f"kms:{operation}"
        facts = self._facts.get((key.policy, id(policies)))
        if facts is None or facts[0] is not policies:
            facts = self._policy_facts(key.policy, policies)
        _, identity_json, wanted, memoizable = facts
        conditions = None
        cache_key = None
        if memoizable:
            relevant: tuple = ()
            if wanted:  # only the condition keys the policies read can change the decision
                conditions = request_context(call, key, operation, want_aliases="kms:resourcealiases" in wanted)
                lower = {k.lower(): v for k, v in conditions.items()}
                relevant = tuple((k, repr(lower.get(k))) for k in sorted(wanted))
            cache_key = (key.key_id, key.region, key.policy, ctx.principal_arn, ctx.account, identity_json, action,
                         generation, context_items, relevant)
            decision = self._decisions.get(cache_key)
            if decision is not None:
                if not wanted:
                    self._remember_plain(plain_key, policies, decision)
                if not decision.allowed:
                    self._raise_if_denied(ctx.principal_arn, action, key.arn, decision)
                return
        if conditions is None:
            conditions = request_context(call, key, operation, want_aliases="kms:resourcealiases" in wanted or "*" in wanted)
        principal = principal_of(ctx)
        request = Request(action=action, resource=key.arn, context=conditions, encryption_context=context)
        decision = evaluate(key.policy, principal, request, self._grants(call, key))
        if cache_key is not None:
            if len(self._decisions) >= 10_000:
                self._decisions.clear()
            self._decisions[cache_key] = decision
            if not wanted:
                self._remember_plain(plain_key, policies, decision)
        self._raise_if_denied(principal.arn, action, key.arn, decision)

    def _remember_plain(self, plain_key: tuple, policies: Any, decision: Any) -> None:
        if len(self._plain) >= 10_000:
            self._plain.clear()
        self._plain[plain_key] = (policies, decision)

    @staticmethod
    def _raise_if_denied(principal_arn: str, action: str, resource: str, decision) -> None:
        if not decision.allowed:
            raise AccessDeniedException(access_denied_message(principal_arn, action, resource, decision))

    def _grants(self, call, key: KeyRecord) -> list[GrantInfo]:
        ck = (key.key_id, key.region, call.store.generation)
        grants = self._grant_cache.get(ck)
        if grants is None:
            if len(self._grant_cache) > 10_000:
                self._grant_cache.clear()
            grants = self._grant_cache[ck] = _grants(call, key)
        return grants

    def _account_operation(self, call, operation: str, principal: Principal) -> None:
        action = f"kms:{operation}"
        request = Request(action=action, resource="*", context=request_context(call, None, operation))
        decision = evaluate(_account_policy(call.ctx.account), principal, request)
        if not decision.allowed:
            raise AccessDeniedException(access_denied_message(principal.arn, action, "*", decision))

    def check_lockout(self, call, key: KeyRecord, policy_text: str) -> None:
        try:
            doc = parse_policy(policy_text)
        except PolicyError:
            raise MalformedPolicyDocumentException("") from None
        if not lockout_check(doc, principal_of(call.ctx), key.arn):
            raise MalformedPolicyDocumentException(LOCKOUT_MESSAGE)


def install(backend, authenticator) -> None:
    """Turn on authentication and authorization for ``backend``."""
    authorizer = Authorizer()
    backend.authenticator = authenticator
    backend.authorizer = authorizer
    backend.lockout_check = authorizer.check_lockout
