"""Questions the rules ask of a key policy, answered by the evaluator that authorizes
requests in the backend, so a rule reasons about a policy exactly as KMS would.

The central tool is the *probe*: a principal of a given account, with IAM policies that
allow everything (so only the key policy decides), calling with a request context in
which every narrowing condition key is either absent or set to a value that no policy
names (the caller's account, ARN and organization, ``kms:ViaService``, the VPC
endpoint, the encryption context). If a statement still lets the probe in, nothing in
it narrows who can call; if the probe is refused, a condition (or a Deny) does.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from kms_iac.policy.document import statements
from kms_iac.policy.evaluator import (
    ACCOUNT_MATCH, DIRECT_MATCH, Principal, Request, action_matches, arn_account, canonical_aws_principal, evaluate, principal_entries,
    principal_match,
)

ADMIN_ACTIONS = (
    "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:DisableKey", "kms:EnableKey",
    "kms:DisableKeyRotation", "kms:EnableKeyRotation", "kms:UpdateKeyDescription", "kms:TagResource",
    "kms:UntagResource", "kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias", "kms:RevokeGrant",
    "kms:ImportKeyMaterial", "kms:DeleteImportedKeyMaterial", "kms:ReplicateKey", "kms:UpdatePrimaryRegion",
    "kms:RotateKeyOnDemand",
)
USE_ACTIONS = (
    "kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext", "kms:GenerateDataKeyPair", "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:Sign", "kms:Verify", "kms:GenerateMac", "kms:VerifyMac", "kms:DeriveSharedSecret",
)
_USE_BY_USAGE = {
    "ENCRYPT_DECRYPT": ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey",
                        "kms:GenerateDataKeyWithoutPlaintext", "kms:GenerateDataKeyPair",
                        "kms:GenerateDataKeyPairWithoutPlaintext"),
    "SIGN_VERIFY": ("kms:Sign", "kms:Verify"),
    "GENERATE_VERIFY_MAC": ("kms:GenerateMac", "kms:VerifyMac"),
    "KEY_AGREEMENT": ("kms:DeriveSharedSecret",),
}


def use_actions_for(key_usage: str | None) -> tuple[str, ...]:
    """The cryptographic actions a key of this usage answers (all of them when unknown)."""
    return _USE_BY_USAGE.get(key_usage or "", USE_ACTIONS)


READ_ACTIONS = (
    "kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:GetPublicKey", "kms:ListGrants",
    "kms:ListKeyPolicies", "kms:ListKeyRotations", "kms:ListResourceTags", "kms:GetParametersForImport",
)
GRANT_ACTIONS = ("kms:CreateGrant", "kms:RetireGrant")
ALL_ACTIONS = ADMIN_ACTIONS + USE_ACTIONS + READ_ACTIONS + GRANT_ACTIONS

# What no real policy names: the probe's account, organization, endpoint and service.
PROBE_ACCOUNT = "000000000000"
_ALLOW_ALL_IAM = ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},)


def root_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:root"


def default_key_policy(account: str) -> dict:
    """KMS's default key policy (CreateKey without a Policy)."""
    return {"Version": "2012-10-17", "Id": "key-default-1", "Statement": [{
        "Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": root_arn(account)}, "Action": "kms:*", "Resource": "*"}]}


def ambient_context(region: str) -> dict[str, object]:
    """What any caller's request carries and cannot be narrowed on by who the caller is."""
    return {
        "aws:SecureTransport": "true",
        "aws:RequestedRegion": region,
        "aws:CurrentTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(dt.datetime.now(dt.timezone.utc).timestamp())),
        "aws:MultiFactorAuthPresent": "true",
    }


def _probe_context(region: str) -> dict[str, object]:
    ctx = ambient_context(region)
    ctx.update({
        "kms:CallerAccount": PROBE_ACCOUNT,
        "aws:PrincipalAccount": PROBE_ACCOUNT,
        "aws:PrincipalArn": f"arn:aws:iam::{PROBE_ACCOUNT}:role/kms-iac-probe",
    })
    return ctx


def region_of(key_arn: str) -> str:
    parts = key_arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else "us-east-1"


def is_wildcard_statement(st: dict) -> bool:
    """Does the statement name every principal (``*``, or an Allow with NotPrincipal)?"""
    if "NotPrincipal" in st:
        return True
    return any(kind == "AWS" and value.strip() == "*" for kind, value in principal_entries(st.get("Principal")))


def has_allow(doc: dict, predicate) -> bool:
    return any(str(st.get("Effect", "")).lower() == "allow" and predicate(st) for _, st in statements(doc))


def sub_policy(doc: dict, keep_allow) -> dict:
    """The document with only the Allow statements ``keep_allow`` accepts (and every Deny)."""
    kept = [st for _, st in statements(doc)
            if str(st.get("Effect", "")).lower() == "deny" or keep_allow(st)]
    return {**doc, "Statement": kept}


def named_principals(doc: dict, effect: str = "allow") -> list[str]:
    """AWS principals (canonical ARNs; account ids become root ARNs) named by statements of an effect."""
    out: list[str] = []
    for _, st in statements(doc):
        if str(st.get("Effect", "")).lower() != effect:
            continue
        for kind, value in principal_entries(st.get("Principal")):
            arn = canonical_aws_principal(value)
            if kind == "AWS" and arn != "*" and arn not in out:
                out.append(arn)
    return out


def principal_account(arn: str) -> str | None:
    return arn_account(arn)


def _caller_for(arn: str) -> str:
    """A caller that a statement naming ``arn`` lets in: the ARN itself, or for an account
    root, one of the account's roles (the root entry stands for every principal of it)."""
    account = arn_account(arn)
    if arn.endswith(":root") and account:
        return f"arn:aws:iam::{account}:role/kms-iac-probe"
    return arn


def candidate_actions(doc: dict, principal: Principal, actions: Iterable[str]) -> list[str]:
    """The actions some Allow statement naming ``principal`` (itself, its account or ``*``)
    covers: the only ones the evaluator could allow it, since these questions never involve
    grants. A cheap filter before the full evaluation, which still decides (Denies,
    conditions, IAM)."""
    # Without IAM policies only a statement naming the principal itself (or "*") can allow it:
    # one naming its account only delegates to IAM.
    need = ACCOUNT_MATCH if principal.identity_policies else DIRECT_MATCH
    naming = [st for _, st in statements(doc)
              if str(st.get("Effect", "")).lower() == "allow" and principal_match(st, principal) >= need]
    return [a for a in actions if any(action_matches(st, a) for st in naming)]


def first_allowed(doc: dict, principal_arn: str, actions: Iterable[str], key_arn: str, *,
                  iam_allow_all: bool = False) -> str | None:
    """The first of ``actions`` the principal is allowed in the ordinary request context, if any."""
    account = arn_account(principal_arn) or ""
    p = Principal(principal_arn, account, _ALLOW_ALL_IAM if iam_allow_all else ())
    ctx = ambient_context(region_of(key_arn))
    return next((a for a in candidate_actions(doc, p, actions)
                 if evaluate(doc, p, Request(a, key_arn, ctx)).allowed), None)


def allowed(doc: dict, principal_arn: str, action: str, key_arn: str, *, context: dict | None = None,
            iam_allow_all: bool = False) -> bool:
    account = arn_account(principal_arn) or ""
    p = Principal(principal_arn, account, _ALLOW_ALL_IAM if iam_allow_all else ())
    ctx = ambient_context(region_of(key_arn)) if context is None else context
    return evaluate(doc, p, Request(action, key_arn, ctx)).allowed


def root_can_manage(doc: dict, account: str, key_arn: str) -> bool:
    """Can the account root (and, through it, the account's IAM policies) still change the
    key policy? The lockout risk KMS001 is about; any Deny or condition is honoured."""
    return allowed(doc, root_arn(account), "kms:PutKeyPolicy", key_arn)


def unnarrowed_actions(doc: dict, caller_arn: str, key_arn: str, actions: Iterable[str]) -> list[str]:
    """The actions a caller (given IAM that allows everything) still gets when every
    narrowing condition key is absent or unmatched."""
    account = arn_account(caller_arn) or PROBE_ACCOUNT
    p = Principal(_caller_for(caller_arn), account, _ALLOW_ALL_IAM)
    ctx = _probe_context(region_of(key_arn))
    return [a for a in candidate_actions(doc, p, actions) if evaluate(doc, p, Request(a, key_arn, ctx)).allowed]


def outsider_account(doc: dict, key_account: str) -> str:
    """An account that neither the key's account nor the policy names."""
    named = {arn_account(a) for a in named_principals(doc)} | {key_account}
    for candidate in ("999999999999", "999999999998", "999999999997"):
        if candidate not in named:
            return candidate
    return "999999999996"


def statements_naming(doc: dict, arn: str) -> list[str]:
    """Labels of the Allow statements that name ``arn`` (canonically)."""
    out = []
    for label, st in statements(doc):
        if str(st.get("Effect", "")).lower() != "allow":
            continue
        if any(kind == "AWS" and canonical_aws_principal(v) == arn for kind, v in principal_entries(st.get("Principal"))):
            out.append(label)
    return out


def identity_allows_on_any_key(doc: dict, action: str, account: str) -> bool:
    """Does an IAM identity policy allow ``action`` on every key (``Resource: "*"`` or
    equivalent)? Probed with keys of two unrelated ids in two accounts and Regions, under a
    key policy that delegates to IAM, so only the identity policy decides."""
    for key_arn in (f"arn:aws:kms:us-east-1:{account}:key/00000000-kms-iac-probe-0000000000a1",
                    f"arn:aws:kms:eu-west-3:{account}:key/ffffffff-kms-iac-probe-0000000000b2"):
        p = Principal(f"arn:aws:iam::{account}:role/kms-iac-probe", account, (doc,))
        delegating = default_key_policy(account)
        if not evaluate(delegating, p, Request(action, key_arn, ambient_context(region_of(key_arn)))).allowed:
            return False
    return True
