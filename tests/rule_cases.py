"""The rule fixtures every front door runs: one named case per verdict.

Each case is a key described once, in the provider's argument names; each front door
renders it in its own form (a CloudFormation template, a Terraform plan, a Pulumi
program, a key created in a live backend) and must give the verdicts in ``expect``.
The agreement test runs every case through every door and compares all verdicts.
A case's name says its rule and verdict, as checkov's fixture files do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACCOUNT = "111122223333"
PARTNER = "444455556666"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/KeyAdmin"
USER = f"arn:aws:iam::{ACCOUNT}:role/App"
PARTNER_ROLE = f"arn:aws:iam::{PARTNER}:role/Consumer"

ADMIN_ACTIONS = ["kms:CreateAlias", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                 "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource",
                 "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"]
USER_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]

# Which doors can see what: a live key does not remember whether its creator bypassed the
# lockout check or which deletion window it will be given; a template has no key state.
DOORS = ("cloudformation", "terraform", "pulumi", "live")
UNOBSERVABLE = {"live": {"KMS011", "KMS007"}}


def stmt(sid: str, principal: Any, actions: Any, condition: dict | None = None, effect: str = "Allow") -> dict:
    st = {"Sid": sid, "Effect": effect, "Principal": principal, "Action": actions, "Resource": "*"}
    if condition:
        st["Condition"] = condition
    return st


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


ROOT_STMT = stmt("EnableRoot", {"AWS": ROOT}, "kms:*")
ADMIN_STMT = stmt("KeyAdministrators", {"AWS": ADMIN}, ADMIN_ACTIONS)
USER_STMT = stmt("KeyUsers", {"AWS": USER}, USER_ACTIONS)
GOOD_POLICY = policy(ROOT_STMT, ADMIN_STMT, USER_STMT)


@dataclass
class Case:
    name: str
    key: dict[str, Any]
    expect: dict[str, str]
    alias: str | None = "alias/tenants/{case}"
    doors: tuple[str, ...] = DOORS

    def key_args(self) -> dict[str, Any]:
        """The key's arguments with the defaults a well-governed key has."""
        base = {"description": self.name, "policy": GOOD_POLICY, "enable_key_rotation": True,
                "rotation_period_in_days": 365, "deletion_window_in_days": 30,
                "tags": {"tenant": self.name}}
        return {**base, **self.key}


def _c(name, expect, doors=DOORS, alias="alias/tenants/{case}", **key) -> Case:
    return Case(name, key, expect, alias, doors)


NO_ROT = {"enable_key_rotation": False, "rotation_period_in_days": None}

CASES: list[Case] = [
    _c("compliant-baseline", {r: "PASS" for r in ("KMS001", "KMS002", "KMS004", "KMS005", "KMS006", "KMS007",
                                                  "KMS008", "KMS010", "KMS012", "KMS013", "KMS015")}),
    # KMS001: the account root, however it is written, and what cancels it
    _c("KMS001-PASS-bare-account-id", {"KMS001": "PASS"},
       policy=policy(stmt("Root", {"AWS": ACCOUNT}, "kms:*"), ADMIN_STMT, USER_STMT)),
    _c("KMS001-PASS-root-in-list", {"KMS001": "PASS"},
       policy=policy(stmt("Root", {"AWS": [ADMIN, ROOT]}, "kms:*"), USER_STMT)),
    _c("KMS001-FAIL-no-root", {"KMS001": "FAIL"}, policy=policy(ADMIN_STMT, USER_STMT)),
    _c("KMS001-FAIL-root-denied", {"KMS001": "FAIL"},
       policy=policy(ROOT_STMT, ADMIN_STMT, stmt("NoPolicyChanges", "*", "kms:PutKeyPolicy", effect="Deny"))),
    _c("KMS001-FAIL-root-unreachable-condition", {"KMS001": "FAIL"},
       policy=policy(stmt("Root", {"AWS": ROOT}, "kms:*", {"StringEquals": {"aws:PrincipalOrgID": "o-exampleorg"}}),
                     ADMIN_STMT, USER_STMT)),
    # KMS002: rotation, and the keys it does not apply to
    _c("KMS002-FAIL-rotation-off", {"KMS002": "FAIL", "KMS010": "NOT_APPLICABLE"}, **NO_ROT),
    _c("KMS002-NA-hmac", {"KMS002": "NOT_APPLICABLE", "KMS010": "NOT_APPLICABLE"},
       key_spec="HMAC_256", key_usage="GENERATE_VERIFY_MAC", **NO_ROT),
    _c("KMS002-NA-asymmetric", {"KMS002": "NOT_APPLICABLE", "KMS014": "NOT_APPLICABLE"},
       key_spec="ECC_NIST_P256", key_usage="SIGN_VERIFY", **NO_ROT),
    _c("KMS002-NA-imported", {"KMS002": "NOT_APPLICABLE", "KMS009": "PASS"}, origin="EXTERNAL", **NO_ROT),
    # KMS003: live only (a template declares a key; the gates have their own tests)
    _c("KMS003-FAIL-scheduled", {"KMS003": "FAIL"}, doors=("live",), scheduled_for_deletion=True),
    # KMS004: wildcards, narrowed or not
    _c("KMS004-FAIL-wildcard", {"KMS004": "FAIL"},
       policy=policy(ROOT_STMT, stmt("Everyone", "*", ["kms:Decrypt", "kms:DescribeKey"]))),
    _c("KMS004-PASS-wildcard-caller-account", {"KMS004": "PASS"},
       policy=policy(ROOT_STMT, stmt("ViaS3", {"AWS": "*"}, USER_ACTIONS, {"StringEquals": {
           "kms:CallerAccount": ACCOUNT, "kms:ViaService": "s3.us-east-1.amazonaws.com"}}))),
    _c("KMS004-FAIL-wildcard-forallvalues-empty-context", {"KMS004": "FAIL"},
       policy=policy(ROOT_STMT, stmt("Ctx", "*", ["kms:Decrypt"], {
           "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["tenant"]}}))),
    # KMS005: other accounts
    _c("KMS005-FAIL-partner-unconditioned", {"KMS005": "FAIL"},
       policy=policy(ROOT_STMT, stmt("Partner", {"AWS": f"arn:aws:iam::{PARTNER}:root"}, USER_ACTIONS))),
    _c("KMS005-PASS-partner-via-service", {"KMS005": "PASS"},
       policy=policy(ROOT_STMT, stmt("Partner", {"AWS": PARTNER_ROLE}, USER_ACTIONS, {
           "StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}))),
    _c("KMS005-PASS-partner-caller-account", {"KMS005": "PASS"},
       policy=policy(ROOT_STMT, stmt("Partner", {"AWS": PARTNER_ROLE}, USER_ACTIONS, {
           "StringEquals": {"kms:CallerAccount": PARTNER}}))),
    _c("KMS005-PASS-partner-encryption-context", {"KMS005": "PASS"},
       policy=policy(ROOT_STMT, stmt("Partner", {"AWS": PARTNER}, USER_ACTIONS, {
           "StringEquals": {"kms:EncryptionContext:tenant": "acme"}}))),
    # KMS006: separation of duties
    _c("KMS006-FAIL-admin-also-user", {"KMS006": "FAIL"},
       policy=policy(ROOT_STMT, stmt("Admin", {"AWS": ADMIN}, ADMIN_ACTIONS + USER_ACTIONS))),
    _c("KMS007-FAIL-window-7-days", {"KMS007": "FAIL"}, deletion_window_in_days=7),
    _c("KMS008-FAIL-disabled", {"KMS008": "FAIL"}, is_enabled=False),
    _c("KMS010-FAIL-period-730", {"KMS010": "FAIL", "KMS002": "PASS"}, rotation_period_in_days=730),
    _c("KMS011-FAIL-bypass", {"KMS011": "FAIL"}, bypass_policy_lockout_safety_check=True),
    _c("KMS012-FAIL-no-alias-no-tag", {"KMS012": "FAIL"}, alias=None, tags={}),
    _c("KMS013-FAIL-grant-unrestricted", {"KMS013": "FAIL"},
       policy=policy(ROOT_STMT, stmt("Grants", {"AWS": USER}, ["kms:CreateGrant", "kms:ListGrants"]))),
    _c("KMS013-PASS-grant-for-aws-resource", {"KMS013": "PASS"},
       policy=policy(ROOT_STMT, stmt("Grants", {"AWS": USER}, ["kms:CreateGrant", "kms:ListGrants"], {
           "Bool": {"kms:GrantIsForAWSResource": "true"}}))),
    _c("KMS014-FAIL-rsa2048-encryption", {"KMS014": "FAIL", "KMS002": "NOT_APPLICABLE"},
       key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT", **NO_ROT),
    _c("KMS014-PASS-rsa3072-encryption", {"KMS014": "PASS"}, key_spec="RSA_3072", key_usage="ENCRYPT_DECRYPT", **NO_ROT),
    _c("KMS015-FAIL-multi-region", {"KMS015": "FAIL"}, multi_region=True),
]


@dataclass
class IdentityCase:
    name: str
    document: dict
    expect: str  # KMS016's verdict
    doors: tuple[str, ...] = ("cloudformation", "terraform", "pulumi", "live")


IDENTITY_CASES = [
    IdentityCase("KMS016-FAIL-decrypt-all-keys", policy({"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": "*"}), "FAIL"),
    IdentityCase("KMS016-FAIL-star-action-all-kms-keys", policy({"Effect": "Allow", "Action": "kms:*",
                                                                 "Resource": "arn:aws:kms:*:*:key/*"}), "FAIL"),
    IdentityCase("KMS016-PASS-decrypt-one-key", policy({"Effect": "Allow", "Action": ["kms:Decrypt"],
                                                        "Resource": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"}), "PASS"),
    IdentityCase("KMS016-PASS-encrypt-only", policy({"Effect": "Allow", "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
                                                     "Resource": "*"}), "PASS"),
]


def by_name(name: str) -> Case:
    return next(c for c in CASES if c.name == name)
