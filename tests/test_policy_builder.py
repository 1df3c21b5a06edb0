"""The key policy builder: each role gives exactly its documented actions and conditions,
output is deterministic, and what it builds passes kms-iac's own rules."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kms_iac.policy.builder import (
    ADMIN_ACTIONS, GRANT_ACTIONS, MAC_ACTIONS, SIGN_ACTIONS, USER_ACTIONS, CrossAccountPrincipal, PolicyBuildError,
    build_key_policy, to_json,
)
from kms_iac.policy.evaluator import Principal, Request, evaluate
from kms_iac.rules.engine import evaluate as run_rules
from kms_iac.rules.view import KeyView

A = "111122223333"
B = "444455556666"
ADMIN = f"arn:aws:iam::{A}:role/KeyAdmin"
APP = f"arn:aws:iam::{A}:role/App"
PARTNER = f"arn:aws:iam::{B}:role/Consumer"


def by_sid(doc: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in doc["Statement"]}


def verdicts(doc: dict, **view) -> dict[str, str]:
    v = KeyView("k", "test", account=A, policy=doc, rotation_enabled=True, aliases=["alias/t"],
                tags={"tenant": "t"}, deletion_window_days=30, **view)
    return {f.rule: f.status for f in run_rules([v])}


def test_root_only_by_default() -> None:
    doc = build_key_policy(A)
    assert doc["Statement"] == [{"Sid": "AccountRoot", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:root"},
                                 "Action": ["kms:*"], "Resource": "*"}]


def test_each_role_gets_exactly_its_actions_and_conditions() -> None:
    doc = build_key_policy(A, key_administrators=[ADMIN], key_users=[APP], key_service_users=[APP],
                           key_signers=[f"arn:aws:iam::{A}:role/Signer"], key_mac_users=[f"arn:aws:iam::{A}:role/Mac"],
                           service_users={f"arn:aws:iam::{A}:role/Lambda": ["s3.us-east-1.amazonaws.com"]})
    s = by_sid(doc)
    assert list(s) == ["AccountRoot", "KeyAdministrators", "KeyUsers", "KeyServiceUsers", "KeySigners",
                       "KeyMacUsers", "ServiceUserLambda"]
    assert s["KeyAdministrators"]["Action"] == sorted(ADMIN_ACTIONS)
    assert not any(a.startswith(("kms:Encrypt", "kms:Decrypt", "kms:Create*", "kms:CreateGrant", "kms:Sign"))
                   for a in s["KeyAdministrators"]["Action"])
    assert s["KeyUsers"]["Action"] == sorted(USER_ACTIONS) and "Condition" not in s["KeyUsers"]
    assert s["KeyServiceUsers"]["Action"] == sorted(GRANT_ACTIONS)
    assert s["KeyServiceUsers"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert s["KeySigners"]["Action"] == sorted(SIGN_ACTIONS) and s["KeyMacUsers"]["Action"] == sorted(MAC_ACTIONS)
    assert s["ServiceUserLambda"]["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}


def test_administrators_cannot_use_the_key_and_users_cannot_manage_it() -> None:
    doc = build_key_policy(A, key_administrators=[ADMIN], key_users=[APP])
    key = f"arn:aws:kms:us-east-1:{A}:key/k"

    def ok(arn: str, action: str) -> bool:
        return evaluate(doc, Principal(arn, A), Request(action, key, {})).allowed
    assert ok(ADMIN, "kms:PutKeyPolicy") and ok(ADMIN, "kms:ScheduleKeyDeletion") and not ok(ADMIN, "kms:Decrypt")
    assert not ok(ADMIN, "kms:CreateGrant")
    assert ok(APP, "kms:Decrypt") and ok(APP, "kms:GenerateDataKeyWithoutPlaintext") and not ok(APP, "kms:PutKeyPolicy")


def test_cross_account_gets_caller_account_by_default_and_optional_conditions() -> None:
    doc = build_key_policy(A, cross_account_principals=[
        PARTNER,
        {"arn": f"arn:aws:iam::{B}:role/Etl", "via_services": ["s3.us-east-1.amazonaws.com"],
         "encryption_context": {"tenant": "acme"}},
    ])
    cross = [s for s in doc["Statement"] if s["Sid"].startswith("CrossAccount")]
    assert [s["Condition"]["StringEquals"] for s in cross] == [
        {"kms:CallerAccount": B},
        {"kms:CallerAccount": B, "kms:ViaService": "s3.us-east-1.amazonaws.com", "kms:EncryptionContext:tenant": "acme"},
    ]
    assert cross[0]["Principal"] == {"AWS": PARTNER} and len({s["Sid"] for s in cross}) == 2
    key = f"arn:aws:kms:us-east-1:{A}:key/k"
    iam = ({"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]},)
    assert evaluate(doc, Principal(PARTNER, B, iam), Request("kms:Decrypt", key, {})).allowed
    assert not evaluate(doc, Principal(f"arn:aws:iam::{B}:role/Other", B, iam), Request("kms:Decrypt", key, {})).allowed


def test_default_and_full_output_passes_every_rule() -> None:
    for doc in (build_key_policy(A),
                build_key_policy(A, key_administrators=[ADMIN], key_users=[APP], key_service_users=[APP],
                                 cross_account_principals=[PARTNER],
                                 service_users={f"arn:aws:iam::{A}:role/Lambda": ["lambda.us-east-1.amazonaws.com"]})):
        got = verdicts(doc)
        assert [r for r, s in got.items() if s == "FAIL"] == [], got


def test_hmac_and_signing_policies_pass_every_rule() -> None:
    signer = f"arn:aws:iam::{A}:role/Signer"
    assert "FAIL" not in verdicts(build_key_policy(A, key_administrators=[ADMIN], key_signers=[signer]),
                                  key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY").values()
    assert "FAIL" not in verdicts(build_key_policy(A, key_administrators=[ADMIN], key_mac_users=[signer]),
                                  key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC").values()


def test_disabling_root_is_loud_and_fails_kms001() -> None:
    doc = build_key_policy(A, key_administrators=[ADMIN], disable_account_root_access_and_risk_lockout=True)
    assert "AccountRoot" not in by_sid(doc)
    assert verdicts(doc)["KMS001"] == "FAIL"


def test_merging_source_documents_and_extra_statements() -> None:
    source = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "AccountRoot", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "Audit", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:role/Audit"},
         "Action": "kms:DescribeKey", "Resource": "*"}]})
    deny = {"Sid": "NoDeletion", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:ScheduleKeyDeletion",
            "Resource": "*", "Condition": {"StringNotEquals": {"aws:PrincipalArn": ADMIN}}}
    doc = build_key_policy(A, key_users=[APP], source_policy_documents=[source], extra_statements=[deny])
    assert [s["Sid"] for s in doc["Statement"]] == ["Audit", "AccountRoot", "KeyUsers", "NoDeletion"]
    assert by_sid(doc)["AccountRoot"]["Principal"] == {"AWS": f"arn:aws:iam::{A}:root"}  # the builder's wins
    with pytest.raises(PolicyBuildError, match="Sid 'KeyUsers' is already used"):
        build_key_policy(A, key_users=[APP], extra_statements=[{**deny, "Sid": "KeyUsers"}])


@pytest.mark.parametrize("kwargs,message", [
    ({"key_users": [A]}, r"key_users\[0\]: '111122223333' is an account id"),
    ({"key_users": "arn:aws:iam::111122223333:role/App"}, "expected a list"),
    ({"key_administrators": ["bob"]}, "not an IAM principal ARN"),
    ({"cross_account_principals": [APP]}, "in the key's own account"),
    ({"cross_account_principals": [{"arn": PARTNER, "caller": B}]}, "unknown field"),
    ({"service_users": {APP: ["s3"]}}, "kms:ViaService values"),
])
def test_bad_roles_are_named(kwargs, message) -> None:
    with pytest.raises(PolicyBuildError, match=message):
        build_key_policy(A, **kwargs)


def test_size_limit() -> None:
    many = [f"arn:aws:iam::{A}:role/user-{i:04d}-{'x' * 40}" for i in range(600)]
    with pytest.raises(PolicyBuildError, match="KMS allows at most 32768"):
        build_key_policy(A, key_users=many)


roles = st.lists(st.integers(0, 30).map(lambda i: f"arn:aws:iam::{A}:role/r{i}"), max_size=6)


@settings(max_examples=60, deadline=None)
@given(users=roles, admins=roles, partners=st.lists(st.sampled_from([PARTNER, f"arn:aws:iam::{B}:root"]), max_size=2))
def test_deterministic_whatever_the_input_order(users, admins, partners) -> None:
    a = to_json(build_key_policy(A, key_users=users, key_administrators=admins, cross_account_principals=partners))
    b = to_json(build_key_policy(A, key_users=list(reversed(users)), key_administrators=list(reversed(admins)),
                                 cross_account_principals=list(reversed(partners))))
    assert a == b
    assert CrossAccountPrincipal.of(PARTNER, "x").arn == PARTNER
