"""Key-policy evaluation, case by case from AWS's documentation of KMS authorization.

Each row of CASES is one documented behaviour: the key policy, the caller (ARN + IAM
identity policies), the request (action, condition context, encryption context), the
key's grants, and the expected outcome (allowed, and the denial kind when denied).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from kms_iac.policy.evaluator import (
    Decision,
    GrantInfo,
    Principal,
    Request,
    access_denied_message,
    evaluate,
    lockout_check,
)

A = "111122223333"  # the key's account
B = "444455556666"  # another account
KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY = f"arn:aws:kms:us-east-1:{A}:key/0987dcba-09fe-87dc-65ba-ab0987654321"

ROOT_A = f"arn:aws:iam::{A}:root"
ROOT_B = f"arn:aws:iam::{B}:root"
ADMIN = f"arn:aws:iam::{A}:role/KeyAdmin"
USER_ROLE = f"arn:aws:iam::{A}:role/KeyUser"
SESSION = f"arn:aws:sts::{A}:assumed-role/KeyUser/alice-session"
ALICE = f"arn:aws:iam::{A}:user/alice"
PARTNER = f"arn:aws:iam::{B}:role/Partner"
PARTNER_SESSION = f"arn:aws:sts::{B}:assumed-role/KeyUser/s1"
SERVICE = "dynamodb.amazonaws.com"

ADMIN_ACTIONS = ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                 "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
                 "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"]
USE_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]

NOW_2025 = datetime(2025, 6, 1, tzinfo=timezone.utc)


def st(effect="Allow", principal=None, action="kms:*", resource="*", sid=None, condition=None,
       not_principal=None, not_action=None, not_resource=None):
    s: dict = {"Effect": effect}
    if sid:
        s["Sid"] = sid
    if not_principal is not None:
        s["NotPrincipal"] = not_principal
    elif principal is not None:
        s["Principal"] = principal
    if not_action is not None:
        s["NotAction"] = not_action
    else:
        s["Action"] = action
    if not_resource is not None:
        s["NotResource"] = not_resource
    else:
        s["Resource"] = resource
    if condition:
        s["Condition"] = condition
    return s


def pol(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


ROOT_STMT = st(sid="Enable IAM User Permissions", principal={"AWS": ROOT_A})
DEFAULT = pol(ROOT_STMT)


def iam(effect="Allow", action="kms:*", resource="*", condition=None):
    s = {"Effect": effect, "Action": action, "Resource": resource}
    if condition:
        s["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [s]}


def users(*arns, action=USE_ACTIONS, condition=None):
    return st(sid="Allow use of the key", principal={"AWS": list(arns)}, action=action, condition=condition)


def anyone(condition, action="kms:*", effect="Allow"):
    return st(effect, principal={"AWS": "*"}, action=action, condition=condition)


def ec_cond(op, key, value):
    return {op: {key: value}}


def grant(gid="g1", grantee=USER_ROLE, ops=("Decrypt",), constraints=None):
    return GrantInfo(gid, grantee, tuple(ops), constraints)


def case(id, policy, caller, action, allowed, denial=None, iam_policies=(), ctx=None, grants=(), ec=None,
         resource=KEY):
    assert allowed == (denial is None), id
    return dict(id=id, policy=policy, caller=caller, iam=tuple(iam_policies), action=action, ctx=ctx or {},
                grants=tuple(grants), ec=ec, resource=resource, allowed=allowed, denial=denial)


NRP, NIP, DR, DI = "no-resource-policy", "no-identity-policy", "explicit-deny-resource", "explicit-deny-identity"
MANAGED = pol(st(sid="Allow access through S3 for all principals in the account that are authorized to use S3",
                 principal={"AWS": "*"}, action=USE_ACTIONS + ["kms:CreateGrant"],
                 condition={"StringEquals": {"kms:CallerAccount": A,
                                             "kms:ViaService": "s3.us-east-1.amazonaws.com"}}),
              st(sid="Allow direct access to key metadata to the account", principal={"AWS": ROOT_A},
                 action=["kms:Describe*", "kms:Get*", "kms:List*"]))
EC_A = {"kms:EncryptionContext:tenant": "a", "kms:EncryptionContextKeys": ["tenant"]}

CASES = [
    # ---- default key policy: root delegation to IAM
    case("root-delegation-with-iam-allow", DEFAULT, USER_ROLE, "kms:Decrypt", True, iam_policies=[iam()]),
    case("root-delegation-without-iam", DEFAULT, USER_ROLE, "kms:Decrypt", False, NIP),
    case("root-delegation-root-itself-no-iam", DEFAULT, ROOT_A, "kms:ScheduleKeyDeletion", True),
    case("root-delegation-iam-allows-other-action", DEFAULT, USER_ROLE, "kms:Decrypt", False, NIP,
         iam_policies=[iam(action="kms:Encrypt")]),
    case("root-delegation-bare-account-id", pol(st(principal={"AWS": A})), USER_ROLE, "kms:Decrypt", True,
         iam_policies=[iam(action="kms:Decrypt")]),
    case("root-delegation-bare-account-id-string-principal", pol(st(principal=A)), ALICE, "kms:Encrypt", True,
         iam_policies=[iam(action="kms:Encrypt")]),
    case("root-delegation-iam-other-key", DEFAULT, USER_ROLE, "kms:Decrypt", False, NIP,
         iam_policies=[iam(resource=OTHER_KEY)]),
    case("root-delegation-iam-wildcard-resource", DEFAULT, USER_ROLE, "kms:Decrypt", True,
         iam_policies=[iam(resource=f"arn:aws:kms:*:{A}:key/*")]),
    case("root-delegation-iam-second-policy-allows", DEFAULT, ALICE, "kms:Decrypt", True,
         iam_policies=[iam(action="kms:Encrypt"), iam(action="kms:Decrypt")]),
    case("no-delegation-iam-gives-nothing", pol(users(ADMIN, action="kms:*")), ALICE, "kms:Decrypt", False, NRP,
         iam_policies=[iam()]),
    case("named-role-direct-no-iam-needed", pol(users(ADMIN, action="kms:*")), ADMIN, "kms:Decrypt", True),
    case("key-admin-cannot-decrypt", pol(users(ADMIN, action=ADMIN_ACTIONS)), ADMIN, "kms:Decrypt", False, NRP),
    case("key-admin-put-key-policy", pol(users(ADMIN, action=ADMIN_ACTIONS)), ADMIN, "kms:PutKeyPolicy", True),
    case("key-admin-schedule-deletion", pol(users(ADMIN, action=ADMIN_ACTIONS)), ADMIN,
         "kms:ScheduleKeyDeletion", True),
    case("key-user-generate-data-key-without-plaintext", pol(users(USER_ROLE)), USER_ROLE,
         "kms:GenerateDataKeyWithoutPlaintext", True),
    case("key-user-reencrypt-from", pol(users(USER_ROLE)), USER_ROLE, "kms:ReEncryptFrom", True),
    case("key-user-cannot-schedule-deletion", pol(users(USER_ROLE)), USER_ROLE, "kms:ScheduleKeyDeletion",
         False, NRP),
    case("empty-policy-locks-out-root", pol(), ROOT_A, "kms:Decrypt", False, NRP),
    case("policy-as-json-text", '{"Statement":{"Effect":"Allow","Principal":{"AWS":"%s"},"Action":"kms:*",'
         '"Resource":"*"}}' % ROOT_A, ROOT_A, "kms:Decrypt", True),
    case("statement-as-single-object", {"Statement": ROOT_STMT}, USER_ROLE, "kms:Encrypt", True,
         iam_policies=[iam()]),
    case("action-without-prefix-in-request", DEFAULT, ROOT_A, "Decrypt", True),
    # ---- explicit deny wins
    case("key-policy-deny-over-iam-allow", pol(ROOT_STMT, st("Deny", {"AWS": USER_ROLE}, "kms:Decrypt", sid="NoDecrypt")),
         USER_ROLE, "kms:Decrypt", False, DR, iam_policies=[iam()]),
    case("key-policy-deny-over-direct-allow", pol(users(USER_ROLE), st("Deny", {"AWS": USER_ROLE}, "kms:Decrypt")),
         USER_ROLE, "kms:Decrypt", False, DR),
    case("iam-deny-over-key-policy-allow", pol(users(USER_ROLE)), USER_ROLE, "kms:Decrypt", False, DI,
         iam_policies=[iam("Deny", "kms:Decrypt")]),
    case("iam-deny-in-second-policy", DEFAULT, USER_ROLE, "kms:Decrypt", False, DI,
         iam_policies=[iam(), iam("Deny", "kms:*")]),
    case("deny-secure-transport-false", pol(ROOT_STMT, anyone({"Bool": {"aws:SecureTransport": "false"}},
                                                               effect="Deny")),
         ROOT_A, "kms:Decrypt", False, DR, ctx={"aws:SecureTransport": False}),
    case("deny-secure-transport-true-not-applied", pol(ROOT_STMT, anyone({"Bool": {"aws:SecureTransport": "false"}},
                                                                        effect="Deny")),
         ROOT_A, "kms:Decrypt", True, ctx={"aws:SecureTransport": True}),
    case("deny-for-other-action-not-applied", pol(users(USER_ROLE), st("Deny", {"AWS": USER_ROLE}, "kms:Decrypt")),
         USER_ROLE, "kms:Encrypt", True),
    case("iam-deny-on-other-key-not-applied", pol(users(USER_ROLE)), USER_ROLE, "kms:Decrypt", True,
         iam_policies=[iam("Deny", resource=OTHER_KEY)]),
    case("key-policy-deny-over-grant", pol(st("Deny", {"AWS": USER_ROLE}, "kms:Decrypt")), USER_ROLE, "kms:Decrypt",
         False, DR, grants=[grant()]),
    case("iam-deny-over-grant", pol(), USER_ROLE, "kms:Decrypt", False, DI,
         iam_policies=[iam("Deny", "kms:Decrypt")], grants=[grant()]),
    case("deny-naming-account-applies-to-its-roles", pol(ROOT_STMT, st("Deny", {"AWS": ROOT_A}, "kms:Decrypt")),
         USER_ROLE, "kms:Decrypt", False, DR, iam_policies=[iam()]),
    case("key-and-iam-deny-reports-resource", pol(users(USER_ROLE), st("Deny", "*", "kms:Decrypt")),
         USER_ROLE, "kms:Decrypt", False, DR, iam_policies=[iam("Deny")]),
    case("deny-principal-star-on-root", pol(ROOT_STMT, st("Deny", "*", "kms:ScheduleKeyDeletion")), ROOT_A,
         "kms:ScheduleKeyDeletion", False, DR),
    # ---- cross-account
    case("cross-account-root-and-iam-allow", pol(ROOT_STMT, users(ROOT_B)), PARTNER, "kms:Decrypt", True,
         iam_policies=[iam(action="kms:Decrypt", resource=KEY)]),
    case("cross-account-key-policy-but-no-iam", pol(ROOT_STMT, users(ROOT_B)), PARTNER, "kms:Decrypt", False, NIP),
    case("cross-account-iam-but-no-key-policy", DEFAULT, PARTNER, "kms:Decrypt", False, NRP,
         iam_policies=[iam(resource=KEY)]),
    case("cross-account-named-role-no-iam", pol(users(PARTNER)), PARTNER, "kms:Decrypt", False, NIP),
    case("cross-account-named-role-with-iam", pol(users(PARTNER)), PARTNER, "kms:Decrypt", True,
         iam_policies=[iam()]),
    case("cross-account-star-with-caller-account", pol(anyone({"StringEquals": {"kms:CallerAccount": B}},
                                                              action="kms:Decrypt")),
         PARTNER, "kms:Decrypt", True, iam_policies=[iam()]),
    case("cross-account-iam-on-other-key", pol(users(ROOT_B)), PARTNER, "kms:Decrypt", False, NIP,
         iam_policies=[iam(resource=OTHER_KEY)]),
    case("cross-account-root-caller-needs-no-iam", pol(users(ROOT_B)), ROOT_B, "kms:Decrypt", True),
    case("cross-account-root-caller-not-in-key-policy", DEFAULT, ROOT_B, "kms:Decrypt", False, NRP),
    case("cross-account-key-policy-other-action", pol(users(ROOT_B, action="kms:Decrypt")), PARTNER, "kms:Encrypt",
         False, NRP, iam_policies=[iam()]),
    case("cross-account-neither-side", DEFAULT, PARTNER, "kms:Decrypt", False, NIP),
    case("cross-account-grant-needs-no-iam", DEFAULT, PARTNER, "kms:Decrypt", True,
         grants=[grant(grantee=PARTNER)]),
    case("cross-account-iam-deny", pol(users(ROOT_B)), PARTNER, "kms:Decrypt", False, DI,
         iam_policies=[iam(), iam("Deny", "kms:Decrypt")]),
    case("principal-star-same-account-no-iam", pol(st(principal="*")), USER_ROLE, "kms:Decrypt", True),
    case("principal-star-cross-account-no-iam", pol(st(principal="*")), PARTNER, "kms:Decrypt", False, NIP),
    case("cross-account-session-vs-same-named-role", pol(users(USER_ROLE)), PARTNER_SESSION, "kms:Decrypt", False,
         NRP, iam_policies=[iam()]),
    # ---- encryption context conditions
    case("ec-string-equals-match", pol(users(USER_ROLE, condition=ec_cond("StringEquals", "kms:EncryptionContext:tenant", "a"))),
         USER_ROLE, "kms:Decrypt", True, ctx=EC_A),
    case("ec-string-equals-other-value", pol(users(USER_ROLE, condition=ec_cond("StringEquals", "kms:EncryptionContext:tenant", "a"))),
         USER_ROLE, "kms:Decrypt", False, NRP, ctx={"kms:EncryptionContext:tenant": "b"}),
    case("ec-string-equals-missing", pol(users(USER_ROLE, condition=ec_cond("StringEquals", "kms:EncryptionContext:tenant", "a"))),
         USER_ROLE, "kms:Decrypt", False, NRP),
    case("ec-key-name-case-insensitive", pol(users(USER_ROLE, condition=ec_cond("StringEquals", "kms:EncryptionContext:Tenant", "a"))),
         USER_ROLE, "kms:Decrypt", True, ctx=EC_A),
    case("ec-value-case-sensitive", pol(users(USER_ROLE, condition=ec_cond("StringEquals", "kms:EncryptionContext:tenant", "A"))),
         USER_ROLE, "kms:Decrypt", False, NRP, ctx=EC_A),
    case("ec-string-equals-ignore-case", pol(users(USER_ROLE, condition=ec_cond("StringEqualsIgnoreCase", "kms:EncryptionContext:tenant", "A"))),
         USER_ROLE, "kms:Decrypt", True, ctx=EC_A),
    case("ec-string-like", pol(users(USER_ROLE, condition=ec_cond("StringLike", "kms:EncryptionContext:project", "proj-*"))),
         USER_ROLE, "kms:Decrypt", True, ctx={"kms:EncryptionContext:project": "proj-42"}),
    case("ec-string-like-no-match", pol(users(USER_ROLE, condition=ec_cond("StringLike", "kms:EncryptionContext:project", "proj-?"))),
         USER_ROLE, "kms:Decrypt", False, NRP, ctx={"kms:EncryptionContext:project": "proj-42"}),
    case("ec-string-not-equals-missing-key-is-true", pol(users(USER_ROLE, condition=ec_cond("StringNotEquals", "kms:EncryptionContext:stage", "prod"))),
         USER_ROLE, "kms:Decrypt", True),
    case("ec-string-not-equals-present-value", pol(users(USER_ROLE, condition=ec_cond("StringNotEquals", "kms:EncryptionContext:stage", "prod"))),
         USER_ROLE, "kms:Decrypt", False, NRP, ctx={"kms:EncryptionContext:stage": "prod"}),
    case("ec-string-not-like-multiple-values-nor", pol(users(USER_ROLE, condition=ec_cond("StringNotLike", "kms:EncryptionContext:stage", ["prod*", "stag*"]))),
         USER_ROLE, "kms:Decrypt", False, NRP, ctx={"kms:EncryptionContext:stage": "staging"}),
    case("ec-keys-forallvalues-subset", pol(users(USER_ROLE, condition=ec_cond("ForAllValues:StringEquals", "kms:EncryptionContextKeys", ["tenant", "app"]))),
         USER_ROLE, "kms:Decrypt", True, ctx=EC_A),
    case("ec-keys-forallvalues-extra-key", pol(users(USER_ROLE, condition=ec_cond("ForAllValues:StringEquals", "kms:EncryptionContextKeys", ["tenant", "app"]))),
         USER_ROLE, "kms:Decrypt", False, NRP, ctx={"kms:EncryptionContextKeys": ["tenant", "extra"]}),
    case("ec-keys-forallvalues-missing-is-true", pol(users(USER_ROLE, condition=ec_cond("ForAllValues:StringEquals", "kms:EncryptionContextKeys", ["tenant"]))),
         USER_ROLE, "kms:Decrypt", True),
    case("ec-pair-and-only-keys-no-context", pol(users(USER_ROLE, condition={
        "StringEquals": {"kms:EncryptionContext:tenant": "a"},
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["tenant"]}})),
         USER_ROLE, "kms:GenerateDataKey", False, NRP),
    case("ec-pair-and-only-keys-exact", pol(users(USER_ROLE, condition={
        "StringEquals": {"kms:EncryptionContext:tenant": "a"},
        "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["tenant"]}})),
         USER_ROLE, "kms:GenerateDataKey", True, ctx=EC_A),
    case("ec-keys-foranyvalue-missing-is-false", pol(users(USER_ROLE, condition=ec_cond("ForAnyValue:StringEquals", "kms:EncryptionContextKeys", "tenant"))),
         USER_ROLE, "kms:Decrypt", False, NRP),
    case("ec-keys-foranyvalue-hit", pol(users(USER_ROLE, condition=ec_cond("ForAnyValue:StringEquals", "kms:EncryptionContextKeys", "tenant"))),
         USER_ROLE, "kms:Decrypt", True, ctx={"kms:EncryptionContextKeys": ["x", "tenant"]}),
    case("ec-null-false-requires-context", pol(users(USER_ROLE, condition=ec_cond("Null", "kms:EncryptionContextKeys", "false"))),
         USER_ROLE, "kms:Encrypt", True, ctx=EC_A),
    case("ec-null-false-without-context", pol(users(USER_ROLE, condition=ec_cond("Null", "kms:EncryptionContextKeys", "false"))),
         USER_ROLE, "kms:Encrypt", False, NRP),
    case("ec-null-false-empty-list-is-absent", pol(users(USER_ROLE, condition=ec_cond("Null", "kms:EncryptionContextKeys", False))),
         USER_ROLE, "kms:Encrypt", False, NRP, ctx={"kms:EncryptionContextKeys": []}),
    case("ec-null-true-key-absent", pol(users(USER_ROLE, condition=ec_cond("Null", "kms:EncryptionContext:tenant", "true"))),
         USER_ROLE, "kms:Encrypt", True),
    case("ec-multiple-values-or", pol(users(USER_ROLE, condition=ec_cond("StringEquals", "kms:EncryptionContext:tenant", ["x", "a"]))),
         USER_ROLE, "kms:Decrypt", True, ctx=EC_A),
    case("ec-multiple-keys-and", pol(users(USER_ROLE, condition={"StringEquals": {"kms:EncryptionContext:tenant": "a",
                                                                                 "kms:EncryptionContext:app": "x"}})),
         USER_ROLE, "kms:Decrypt", False, NRP, ctx={"kms:EncryptionContext:tenant": "a", "kms:EncryptionContext:app": "y"}),
    case("ec-deny-restricted-stage", pol(users(USER_ROLE), st("Deny", {"AWS": USER_ROLE}, "kms:GenerateDataKey",
                                                                condition=ec_cond("StringEquals", "kms:EncryptionContext:Stage", "Restricted"))),
         USER_ROLE, "kms:GenerateDataKey", False, DR, ctx={"kms:EncryptionContext:Stage": "Restricted"}),
    case("ec-deny-restricted-stage-other-value", pol(users(USER_ROLE), st("Deny", {"AWS": USER_ROLE}, "kms:GenerateDataKey",
                                                                            condition=ec_cond("StringEquals", "kms:EncryptionContext:Stage", "Restricted"))),
         USER_ROLE, "kms:GenerateDataKey", True, ctx={"kms:EncryptionContext:Stage": "Test"}),
    case("deny-string-not-equals-missing-key-applies", pol(ROOT_STMT, anyone({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}, effect="Deny")),
         ROOT_A, "kms:Decrypt", False, DR),
    case("deny-string-not-equals-matching-vpce", pol(ROOT_STMT, anyone({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}}, effect="Deny")),
         ROOT_A, "kms:Decrypt", True, ctx={"aws:SourceVpce": "vpce-1"}),
    # ---- IfExists
    case("if-exists-missing-key", pol(users(USER_ROLE, condition={"StringEqualsIfExists": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}})),
         USER_ROLE, "kms:Decrypt", True),
    case("if-exists-present-mismatch", pol(users(USER_ROLE, condition={"StringEqualsIfExists": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}})),
         USER_ROLE, "kms:Decrypt", False, NRP, ctx={"kms:ViaService": "ec2.us-east-1.amazonaws.com"}),
    case("if-exists-present-match", pol(users(USER_ROLE, condition={"StringEqualsIfExists": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}})),
         USER_ROLE, "kms:Decrypt", True, ctx={"kms:ViaService": "s3.us-east-1.amazonaws.com"}),
    case("numeric-if-exists-missing", pol(users(ADMIN, action="kms:*", condition={"NumericLessThanEqualsIfExists": {"kms:RotationPeriodInDays": 365}})),
         ADMIN, "kms:EnableKeyRotation", True),
    # ---- AWS managed key style: kms:CallerAccount + kms:ViaService
    case("managed-key-via-s3", MANAGED, USER_ROLE, "kms:Decrypt", True,
         ctx={"kms:ViaService": "s3.us-east-1.amazonaws.com", "kms:CallerAccount": A}),
    case("managed-key-caller-account-filled-from-principal", MANAGED, USER_ROLE, "kms:GenerateDataKey", True,
         ctx={"kms:ViaService": "s3.us-east-1.amazonaws.com"}),
    case("managed-key-direct-call", MANAGED, USER_ROLE, "kms:Decrypt", False, NRP, iam_policies=[iam()]),
    case("managed-key-other-service", MANAGED, USER_ROLE, "kms:Decrypt", False, NRP,
         ctx={"kms:ViaService": "ec2.us-east-1.amazonaws.com"}),
    case("managed-key-other-account", MANAGED, PARTNER, "kms:Decrypt", False, NRP, iam_policies=[iam()],
         ctx={"kms:ViaService": "s3.us-east-1.amazonaws.com"}),
    case("managed-key-describe-delegated", MANAGED, USER_ROLE, "kms:DescribeKey", True, iam_policies=[iam()]),
    case("managed-key-describe-delegated-no-iam", MANAGED, USER_ROLE, "kms:DescribeKey", False, NIP),
    case("via-service-string-like", pol(anyone({"StringLike": {"kms:ViaService": "*.amazonaws.com"}})), USER_ROLE,
         "kms:Decrypt", True, ctx={"kms:ViaService": "rds.us-east-1.amazonaws.com"}),
    case("condition-key-name-case-insensitive", pol(anyone({"StringEquals": {"KMS:VIASERVICE": "s3.us-east-1.amazonaws.com"}})),
         USER_ROLE, "kms:Decrypt", True, ctx={"kms:ViaService": "s3.us-east-1.amazonaws.com"}),
    # ---- grants
    case("grant-allows-without-policy", pol(), USER_ROLE, "kms:Decrypt", True, grants=[grant()]),
    case("grant-wrong-operation", pol(), USER_ROLE, "kms:Decrypt", False, NRP, grants=[grant(ops=("Encrypt",))]),
    case("grant-other-grantee", pol(), ALICE, "kms:Decrypt", False, NRP, grants=[grant()]),
    case("grant-equals-exact", pol(), USER_ROLE, "kms:Decrypt", True, ec={"tenant": "a"},
         grants=[grant(constraints={"EncryptionContextEquals": {"tenant": "a"}})]),
    case("grant-equals-extra-pair", pol(), USER_ROLE, "kms:Decrypt", False, NRP, ec={"tenant": "a", "x": "1"},
         grants=[grant(constraints={"EncryptionContextEquals": {"tenant": "a"}})]),
    case("grant-equals-missing-context", pol(), USER_ROLE, "kms:Decrypt", False, NRP,
         grants=[grant(constraints={"EncryptionContextEquals": {"tenant": "a"}})]),
    case("grant-subset-extra-pair-ok", pol(), USER_ROLE, "kms:Decrypt", True, ec={"tenant": "a", "x": "1"},
         grants=[grant(constraints={"EncryptionContextSubset": {"tenant": "a"}})]),
    case("grant-subset-wrong-value", pol(), USER_ROLE, "kms:Decrypt", False, NRP, ec={"tenant": "b"},
         grants=[grant(constraints={"EncryptionContextSubset": {"tenant": "a"}})]),
    case("grant-subset-no-context", pol(), USER_ROLE, "kms:Decrypt", False, NRP,
         grants=[grant(constraints={"EncryptionContextSubset": {"tenant": "a"}})]),
    case("grant-constraint-key-case-insensitive", pol(), USER_ROLE, "kms:Decrypt", True, ec={"tenant": "a"},
         grants=[grant(constraints={"EncryptionContextEquals": {"Tenant": "a"}})]),
    case("grant-constraint-value-case-sensitive", pol(), USER_ROLE, "kms:Decrypt", False, NRP, ec={"tenant": "A"},
         grants=[grant(constraints={"EncryptionContextEquals": {"tenant": "a"}})]),
    case("grant-constraint-not-applied-to-describe-key", pol(), USER_ROLE, "kms:DescribeKey", True,
         grants=[grant(ops=("DescribeKey",), constraints={"EncryptionContextEquals": {"tenant": "a"}})]),
    case("grant-to-role-used-by-session", pol(), SESSION, "kms:Decrypt", True, grants=[grant()]),
    case("grant-reencrypt-from-is-not-to", pol(), USER_ROLE, "kms:ReEncryptTo", False, NRP,
         grants=[grant(ops=("ReEncryptFrom",))]),
    case("grant-reencrypt-to", pol(), USER_ROLE, "kms:ReEncryptTo", True, grants=[grant(ops=("ReEncryptTo",))]),
    case("grant-ec-from-condition-context", pol(), USER_ROLE, "kms:Encrypt", True, ctx=EC_A,
         grants=[grant(ops=("Encrypt",), constraints={"EncryptionContextSubset": {"tenant": "a"}})]),
    case("grant-second-of-several", pol(), USER_ROLE, "kms:GenerateDataKey", True,
         grants=[grant("g1", ops=("Decrypt",)), grant("g2", ops=("GenerateDataKey",))]),
    case("grant-to-service-principal", pol(), SERVICE, "kms:Decrypt", True, grants=[grant(grantee=SERVICE)]),
    # ---- NotPrincipal with Deny
    case("not-principal-deny-others", pol(ROOT_STMT, st("Deny", not_principal={"AWS": [ADMIN, ROOT_A]},
                                                         action="kms:PutKeyPolicy")),
         ALICE, "kms:PutKeyPolicy", False, DR, iam_policies=[iam()]),
    case("not-principal-excluded-admin", pol(ROOT_STMT, st("Deny", not_principal={"AWS": [ADMIN, ROOT_A]},
                                                            action="kms:PutKeyPolicy")),
         ADMIN, "kms:PutKeyPolicy", True, iam_policies=[iam()]),
    case("not-principal-without-account-denies-admin-too",
         pol(ROOT_STMT, st("Deny", not_principal={"AWS": [ADMIN]}, action="kms:PutKeyPolicy")),
         ADMIN, "kms:PutKeyPolicy", False, DR, iam_policies=[iam()]),
    case("not-principal-role-excludes-its-session", pol(ROOT_STMT, st("Deny", not_principal={"AWS": [USER_ROLE, ROOT_A]})),
         SESSION, "kms:Decrypt", True, iam_policies=[iam()]),
    case("not-principal-root-excluded", pol(ROOT_STMT, st("Deny", not_principal={"AWS": ROOT_A})),
         ROOT_A, "kms:Decrypt", True),
    # ---- NotAction / NotResource
    case("not-action-allow", pol(st(principal={"AWS": USER_ROLE}, not_action="kms:ScheduleKeyDeletion")),
         USER_ROLE, "kms:Decrypt", True),
    case("not-action-excluded", pol(st(principal={"AWS": USER_ROLE}, not_action="kms:ScheduleKeyDeletion")),
         USER_ROLE, "kms:ScheduleKeyDeletion", False, NRP),
    case("not-action-deny-everything-else", pol(users(USER_ROLE, action="kms:*"),
                                                st("Deny", "*", not_action=["kms:Decrypt", "kms:DescribeKey"])),
         USER_ROLE, "kms:Encrypt", False, DR),
    case("not-action-deny-spares-listed", pol(users(USER_ROLE, action="kms:*"),
                                              st("Deny", "*", not_action=["kms:Decrypt", "kms:DescribeKey"])),
         USER_ROLE, "kms:Decrypt", True),
    case("not-action-wildcard-in-iam", DEFAULT, USER_ROLE, "kms:Decrypt", False, NIP,
         iam_policies=[{"Statement": [{"Effect": "Allow", "NotAction": "kms:*", "Resource": "*"}]}]),
    case("not-resource-in-iam", DEFAULT, USER_ROLE, "kms:Decrypt", True,
         iam_policies=[{"Statement": [{"Effect": "Allow", "Action": "kms:*", "NotResource": OTHER_KEY}]}]),
    case("resource-other-key-in-key-policy", pol(users(USER_ROLE, action="kms:*") | {"Resource": OTHER_KEY}),
         USER_ROLE, "kms:Decrypt", False, NRP),
    case("resource-key-arn-in-key-policy", pol(users(USER_ROLE, action="kms:*") | {"Resource": KEY}),
         USER_ROLE, "kms:Decrypt", True),
    # ---- wildcard actions
    case("wildcard-generate-star", pol(users(USER_ROLE)), USER_ROLE, "kms:GenerateDataKeyPair", True),
    case("wildcard-generate-star-not-decrypt", pol(users(USER_ROLE, action="kms:Generate*")), USER_ROLE,
         "kms:Decrypt", False, NRP),
    case("wildcard-star-action", pol(st(principal={"AWS": USER_ROLE}, action="*")), USER_ROLE, "kms:Sign", True),
    case("action-case-insensitive", pol(users(USER_ROLE, action="KMS:decrypt")), USER_ROLE, "kms:Decrypt", True),
    case("wildcard-reencrypt-to", pol(users(USER_ROLE)), USER_ROLE, "kms:ReEncryptTo", True),
    case("wildcard-question-mark", pol(users(USER_ROLE, action="kms:?ecrypt")), USER_ROLE, "kms:Decrypt", True),
    case("wildcard-question-mark-one-char-only", pol(users(USER_ROLE, action="kms:?crypt")), USER_ROLE,
         "kms:Decrypt", False, NRP),
    # ---- assumed-role sessions
    case("session-matches-role", pol(users(USER_ROLE)), SESSION, "kms:Decrypt", True),
    case("session-matches-role-with-path", pol(users(f"arn:aws:iam::{A}:role/app/KeyUser")), SESSION,
         "kms:Decrypt", True),
    case("session-other-role", pol(users(ADMIN)), SESSION, "kms:Decrypt", False, NRP),
    case("session-arn-named-exactly", pol(users(SESSION)), SESSION, "kms:Decrypt", True),
    case("session-delegated-needs-iam", DEFAULT, SESSION, "kms:Decrypt", False, NIP),
    # ---- Bool on kms:GrantIsForAWSResource
    case("grant-for-aws-resource-true", pol(users(USER_ROLE, action="kms:CreateGrant",
                                                  condition={"Bool": {"kms:GrantIsForAWSResource": "true"}})),
         USER_ROLE, "kms:CreateGrant", True, ctx={"kms:GrantIsForAWSResource": True}),
    case("grant-for-aws-resource-false", pol(users(USER_ROLE, action="kms:CreateGrant",
                                                   condition={"Bool": {"kms:GrantIsForAWSResource": True}})),
         USER_ROLE, "kms:CreateGrant", False, NRP, ctx={"kms:GrantIsForAWSResource": False}),
    case("grant-for-aws-resource-missing", pol(users(USER_ROLE, action="kms:CreateGrant",
                                                     condition={"Bool": {"kms:GrantIsForAWSResource": "true"}})),
         USER_ROLE, "kms:CreateGrant", False, NRP),
    case("grant-for-aws-resource-string-value", pol(users(USER_ROLE, action="kms:CreateGrant",
                                                          condition={"Bool": {"kms:GrantIsForAWSResource": "true"}})),
         USER_ROLE, "kms:CreateGrant", True, ctx={"kms:GrantIsForAWSResource": "true"}),
    case("grant-operations-forallvalues", pol(users(USER_ROLE, action="kms:CreateGrant", condition={
        "ForAllValues:StringEquals": {"kms:GrantOperations": ["Encrypt", "Decrypt"]}})),
         USER_ROLE, "kms:CreateGrant", False, NRP, ctx={"kms:GrantOperations": ["Decrypt", "RetireGrant"]}),
    # ---- numeric conditions
    case("rotation-period-less-than", pol(users(ADMIN, action="kms:EnableKeyRotation",
                                                condition={"NumericLessThan": {"kms:RotationPeriodInDays": "366"}})),
         ADMIN, "kms:EnableKeyRotation", True, ctx={"kms:RotationPeriodInDays": 365}),
    case("rotation-period-too-long", pol(users(ADMIN, action="kms:EnableKeyRotation",
                                               condition={"NumericLessThan": {"kms:RotationPeriodInDays": "366"}})),
         ADMIN, "kms:EnableKeyRotation", False, NRP, ctx={"kms:RotationPeriodInDays": 400}),
    case("pending-window-deny-short", pol(users(ADMIN, action="kms:*"), st("Deny", "*", "kms:ScheduleKeyDeletion",
                                          condition={"NumericLessThan": {"kms:ScheduleKeyDeletionPendingWindowInDays": 30}})),
         ADMIN, "kms:ScheduleKeyDeletion", False, DR, ctx={"kms:ScheduleKeyDeletionPendingWindowInDays": 7}),
    case("pending-window-deny-not-applied", pol(users(ADMIN, action="kms:*"), st("Deny", "*", "kms:ScheduleKeyDeletion",
                                                condition={"NumericLessThan": {"kms:ScheduleKeyDeletionPendingWindowInDays": 30}})),
         ADMIN, "kms:ScheduleKeyDeletion", True, ctx={"kms:ScheduleKeyDeletionPendingWindowInDays": 30}),
    case("numeric-greater-than-equals-string", pol(users(ADMIN, action="kms:*", condition={
        "NumericGreaterThanEquals": {"kms:ScheduleKeyDeletionPendingWindowInDays": "14"}})),
         ADMIN, "kms:ScheduleKeyDeletion", True, ctx={"kms:ScheduleKeyDeletionPendingWindowInDays": "14"}),
    # ---- date conditions
    case("date-greater-than-iso", pol(users(USER_ROLE, condition={"DateGreaterThan": {"aws:CurrentTime": "2024-01-01T00:00:00Z"}})),
         USER_ROLE, "kms:Decrypt", True, ctx={"aws:CurrentTime": NOW_2025}),
    case("date-greater-than-too-early", pol(users(USER_ROLE, condition={"DateGreaterThan": {"aws:CurrentTime": "2024-01-01T00:00:00Z"}})),
         USER_ROLE, "kms:Decrypt", False, NRP, ctx={"aws:CurrentTime": "2023-12-31T23:59:59Z"}),
    case("date-less-than-epoch", pol(users(USER_ROLE, condition={"DateLessThan": {"aws:EpochTime": "1893456000"}})),
         USER_ROLE, "kms:Decrypt", True, ctx={"aws:EpochTime": 1748736000}),
    case("date-deny-missing-key-not-applied", pol(users(USER_ROLE), st("Deny", "*", condition={
        "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}})),
         USER_ROLE, "kms:Decrypt", True),
    # ---- ARN conditions
    case("arn-like-principal-arn", pol(anyone({"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{A}:role/Key*"}})),
         USER_ROLE, "kms:Decrypt", True),
    case("arn-like-principal-arn-no-match", pol(anyone({"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{A}:role/App*"}})),
         USER_ROLE, "kms:Decrypt", False, NRP),
    case("arn-like-session-uses-role-arn", pol(anyone({"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{A}:role/KeyUser"}})),
         SESSION, "kms:Decrypt", True),
    case("arn-not-equals-deny", pol(ROOT_STMT, st("Deny", "*", "kms:PutKeyPolicy",
                                                  condition={"ArnNotEquals": {"aws:PrincipalArn": ADMIN}})),
         ALICE, "kms:PutKeyPolicy", False, DR, iam_policies=[iam()]),
    case("arn-not-equals-deny-spares-admin", pol(ROOT_STMT, st("Deny", "*", "kms:PutKeyPolicy",
                                                               condition={"ArnNotEquals": {"aws:PrincipalArn": ADMIN}})),
         ADMIN, "kms:PutKeyPolicy", True, iam_policies=[iam()]),
    case("arn-like-account-wildcard-component", pol(anyone({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/KeyUser"}})),
         USER_ROLE, "kms:Decrypt", True),
    # ---- other operators, variables, principal kinds
    case("ip-address", pol(users(USER_ROLE, condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
         USER_ROLE, "kms:Decrypt", True, ctx={"aws:SourceIp": "10.1.2.3"}),
    case("not-ip-address-deny", pol(users(USER_ROLE), st("Deny", "*", condition={"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.0/24"]}})),
         USER_ROLE, "kms:Decrypt", False, DR, ctx={"aws:SourceIp": "203.0.113.9"}),
    case("binary-equals", pol(users(USER_ROLE, condition={"BinaryEquals": {"kms:RecipientAttestation:ImageSha384": "QUJD"}})),
         USER_ROLE, "kms:Decrypt", True, ctx={"kms:RecipientAttestation:ImageSha384": b"ABC"}),
    case("policy-variable-principal-account", pol(anyone({"StringEquals": {"kms:CallerAccount": "${aws:PrincipalAccount}"}})),
         USER_ROLE, "kms:Decrypt", True),
    case("policy-variable-missing-no-match", pol(users(USER_ROLE, condition={"StringEquals": {"kms:EncryptionContext:owner": "${aws:username}"}})),
         USER_ROLE, "kms:Decrypt", False, NRP, ctx={"kms:EncryptionContext:owner": "alice"}),
    case("policy-variable-username", pol(users(ALICE, condition={"StringEquals": {"kms:EncryptionContext:owner": "${aws:username}"}})),
         ALICE, "kms:Decrypt", True, ctx={"kms:EncryptionContext:owner": "alice", "aws:username": "alice"}),
    case("service-principal-matches-service", pol(st(principal={"Service": SERVICE}, action="kms:Decrypt")),
         SERVICE, "kms:Decrypt", True),
    case("service-principal-never-matches-role", pol(st(principal={"Service": SERVICE}, action="kms:Decrypt")),
         USER_ROLE, "kms:Decrypt", False, NRP, iam_policies=[iam()]),
    case("key-spec-condition", pol(users(ADMIN, action="kms:*", condition={"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}})),
         ADMIN, "kms:DescribeKey", False, NRP, ctx={"kms:KeySpec": "RSA_2048"}),
    case("resource-aliases-foranyvalue", pol(users(USER_ROLE, condition={"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/finance-*"}})),
         USER_ROLE, "kms:Decrypt", True, ctx={"kms:ResourceAliases": ["alias/app", "alias/finance-key"]}),
    case("requested-region-condition", pol(users(USER_ROLE, condition={"StringEquals": {"aws:RequestedRegion": "us-east-1"}})),
         USER_ROLE, "kms:Decrypt", False, NRP, ctx={"aws:RequestedRegion": "eu-west-1"}),
    case("unknown-operator-never-matches", pol(users(USER_ROLE, condition={"StringSortOf": {"kms:ViaService": "x"}})),
         USER_ROLE, "kms:Decrypt", False, NRP, ctx={"kms:ViaService": "x"}),
]


def _account(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else ""


@pytest.mark.parametrize("c", CASES, ids=[c["id"] for c in CASES])
def test_evaluate(c):
    principal = Principal(c["caller"], _account(c["caller"]), c["iam"])
    request = Request(c["action"], c["resource"], c["ctx"], c["ec"])
    d = evaluate(c["policy"], principal, request, c["grants"])
    assert isinstance(d, Decision)
    assert (d.allowed, d.denial) == (c["allowed"], c["denial"]), d
    assert d.reason
    if d.allowed:
        assert d.decided_by


def test_table_is_large_and_ids_unique():
    assert len(CASES) >= 90
    assert len({c["id"] for c in CASES}) == len(CASES)


def test_decided_by_labels():
    p = Principal(USER_ROLE, A, (iam(),))
    d = evaluate(DEFAULT, p, Request("kms:Decrypt", KEY, {}))
    assert d.decided_by == ("key-policy:Enable IAM User Permissions", "identity-policy:0:#0")
    assert "delegates" in d.reason and A in d.reason
    d = evaluate(pol(users(USER_ROLE)), p, Request("kms:Decrypt", KEY, {}))
    assert d.decided_by == ("key-policy:Allow use of the key",)
    assert d.reason == "allowed by key policy statement 'Allow use of the key'"
    d = evaluate(pol(), p, Request("kms:Decrypt", KEY, {}), [grant("abc")])
    assert d.decided_by == ("grant:abc",) and d.reason == "allowed by grant abc"
    d = evaluate(pol(users(USER_ROLE), st("Deny", "*", "kms:Decrypt")), p, Request("kms:Decrypt", KEY, {}))
    assert d.decided_by == ("key-policy:#1",) and "explicit deny" in d.reason


# ---- lockout check: can the principal still call kms:PutKeyPolicy under the new policy?
LOCKOUT = [
    ("policy-without-caller-locks-out", pol(users(USER_ROLE)), ADMIN, (), False),
    ("root-delegation-no-lockout-for-root", DEFAULT, ROOT_A, (), True),
    ("root-delegation-role-with-iam", DEFAULT, ADMIN, (iam(),), True),
    ("root-delegation-role-without-iam", DEFAULT, ADMIN, (), False),
    ("admin-statement-put-star", pol(users(ADMIN, action=ADMIN_ACTIONS)), ADMIN, (), True),
    ("admin-without-put", pol(users(ADMIN, action=["kms:Describe*", "kms:Get*"])), ROOT_A, (), False),
    ("deny-put-key-policy", pol(ROOT_STMT, st("Deny", "*", "kms:PutKeyPolicy")), ROOT_A, (), False),
    ("json-text-policy", '{"Statement":[{"Effect":"Allow","Principal":{"AWS":"%s"},"Action":"kms:*","Resource":"*"}]}' % A,
     ROOT_A, (), True),
    ("bypass-null-condition", pol(users(ADMIN, action="kms:PutKeyPolicy",
                                        condition={"Null": {"kms:BypassPolicyLockoutSafetyCheck": "true"}})), ADMIN, (), True),
]


@pytest.mark.parametrize("name,policy,caller,iam_policies,expected", LOCKOUT, ids=[c[0] for c in LOCKOUT])
def test_lockout_check(name, policy, caller, iam_policies, expected):
    assert lockout_check(policy, Principal(caller, _account(caller), iam_policies), KEY) is expected


# ---- AccessDeniedException wording
MESSAGES = [
    ("no-resource-policy", pol(), USER_ROLE, (),
     "because no resource-based policy allows the kms:Decrypt action"),
    ("no-identity-policy", DEFAULT, USER_ROLE, (),
     "because no identity-based policy allows the kms:Decrypt action"),
    ("explicit-deny-resource", pol(st("Deny", "*")), USER_ROLE, (), "with an explicit deny in a resource-based policy"),
    ("explicit-deny-identity", DEFAULT, USER_ROLE, (iam("Deny"),), "with an explicit deny in an identity-based policy"),
]


@pytest.mark.parametrize("kind,policy,caller,iam_policies,tail", MESSAGES, ids=[m[0] for m in MESSAGES])
def test_access_denied_message(kind, policy, caller, iam_policies, tail):
    d = evaluate(policy, Principal(caller, A, iam_policies), Request("kms:Decrypt", KEY, {}))
    assert d.denial == kind
    msg = access_denied_message(caller, "kms:Decrypt", KEY, d)
    assert msg == f"User: {caller} is not authorized to perform: kms:Decrypt on resource: {KEY} {tail}"


def test_evaluate_is_pure_and_inputs_untouched():
    policy = pol(users(USER_ROLE, condition=ec_cond("StringEquals", "kms:EncryptionContext:tenant", "a")))
    before = repr(policy)
    ctx = dict(EC_A)
    p = Principal(USER_ROLE, A)
    r = Request("kms:Decrypt", KEY, ctx)
    assert evaluate(policy, p, r) == evaluate(policy, p, r)
    assert repr(policy) == before and ctx == EC_A
