"""Key policies built from roles, as careful teams write them by hand.

The role names follow terraform-aws-modules/kms, which is what platform teams already
think in (key administrators, key users, key service users, ...). What differs is that
every default here passes kms-iac's own rules:

* the account-root statement is always there (KMS001); leaving it out takes an option
  whose name says what it risks;
* administrators get management actions only, never cryptographic use, and no
  ``kms:Create*`` (which would include ``kms:CreateGrant``) (KMS006, KMS013);
* grant-capable users may create grants only for AWS resources (KMS013);
* every cross-account consumer is narrowed by ``kms:CallerAccount`` = its own account
  by default, plus optional ``kms:ViaService`` and encryption-context conditions (KMS005);
* no wildcard principal is ever generated (KMS004).

The output is deterministic: statements in a fixed order with stable Sids, principal
lists sorted, so a program that builds the same roles gets byte-identical JSON and
Pulumi shows no diff.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from kms_iac.policy.document import as_list, parse_policy, statements

MAX_POLICY_BYTES = 32768

ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:Delete*", "kms:Describe*", "kms:Disable*", "kms:Enable*",
    "kms:Get*", "kms:ImportKeyMaterial", "kms:List*", "kms:Put*", "kms:ReplicateKey", "kms:Revoke*",
    "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UntagResource", "kms:Update*",
]
USER_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
GRANT_ACTIONS = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]
SIGN_ACTIONS = ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"]
VERIFY_ACTIONS = ["kms:DescribeKey", "kms:GetPublicKey", "kms:Verify"]
MAC_ACTIONS = ["kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"]
PUBLIC_ENCRYPTION_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GetPublicKey", "kms:ReEncrypt*"]

_ACCOUNT = re.compile(r"^\d{12}$")
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::\d{12}:(root|(user|role|group|assumed-role|federated-user)/.+)$")
_SID = re.compile(r"[^A-Za-z0-9]")


class PolicyBuildError(ValueError):
    """The roles given cannot make a valid key policy; the message names the field."""


@dataclass(frozen=True)
class CrossAccountPrincipal:
    """A principal of another account that may use the key.

    ``caller_account`` defaults to the principal's own account (so the statement holds
    only for calls made from that account); ``via_services`` (e.g.
    ``s3.us-east-1.amazonaws.com``) and ``encryption_context`` narrow it further.
    """

    arn: str
    actions: tuple[str, ...] = tuple(USER_ACTIONS)
    caller_account: str | None = None
    via_services: tuple[str, ...] = ()
    encryption_context: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, value: "str | Mapping[str, Any] | CrossAccountPrincipal", where: str) -> "CrossAccountPrincipal":
        if isinstance(value, CrossAccountPrincipal):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            unknown = set(value) - {"arn", "actions", "caller_account", "via_services", "encryption_context"}
            if unknown:
                raise PolicyBuildError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
            if "arn" not in value:
                raise PolicyBuildError(f"{where}: needs an arn")
            return cls(value["arn"], tuple(value.get("actions") or USER_ACTIONS), value.get("caller_account"),
                       tuple(as_list(value.get("via_services"))), dict(value.get("encryption_context") or {}))
        raise PolicyBuildError(f"{where}: expected an ARN or a mapping with arn, got {type(value).__name__}")


def account_of(arn: str) -> str:
    return arn.split(":")[4]


def _principal(arn: str, where: str) -> str:
    if not isinstance(arn, str):
        raise PolicyBuildError(f"{where}: expected a principal ARN, got {type(arn).__name__}")
    if _ACCOUNT.match(arn):
        raise PolicyBuildError(f"{where}: '{arn}' is an account id; write the principal as an ARN "
                               f"(arn:aws:iam::{arn}:root for the whole account)")
    if not _PRINCIPAL_ARN.match(arn):
        raise PolicyBuildError(f"{where}: '{arn}' is not an IAM principal ARN (arn:aws:iam::ACCOUNT:role/NAME, ...)")
    return arn


def _principals(arns: Iterable[str], where: str) -> list[str]:
    return sorted({_principal(a, f"{where}[{i}]") for i, a in enumerate(arns)})


def _statement(sid: str, principals: Sequence[str], actions: Sequence[str],
               condition: Mapping[str, Any] | None = None) -> dict:
    st: dict[str, Any] = {
        "Sid": sid, "Effect": "Allow",
        "Principal": {"AWS": principals[0] if len(principals) == 1 else list(principals)},
        "Action": sorted(actions), "Resource": "*",
    }
    if condition:
        st["Condition"] = condition
    return st


def _sid(*parts: str) -> str:
    """A Sid from words: letters and digits only, each word capitalised."""
    return "".join(_SID.sub("", p[:1].upper() + p[1:]) for p in parts)


def build_key_policy(
    account: str,
    *,
    key_administrators: Sequence[str] = (),
    key_users: Sequence[str] = (),
    key_service_users: Sequence[str] = (),
    service_users: Mapping[str, Sequence[str]] | None = None,
    key_signers: Sequence[str] = (),
    key_verifiers: Sequence[str] = (),
    key_mac_users: Sequence[str] = (),
    key_public_encryption_users: Sequence[str] = (),
    cross_account_principals: Sequence["str | Mapping[str, Any] | CrossAccountPrincipal"] = (),
    extra_statements: Sequence[Mapping[str, Any]] = (),
    source_policy_documents: Sequence[str | Mapping[str, Any]] = (),
    partition: str = "aws",
    disable_account_root_access_and_risk_lockout: bool = False,
) -> dict:
    """A key policy document (a dict; :func:`to_json` gives its canonical text).

    ``service_users`` maps a principal ARN to the services (``kms:ViaService`` values such
    as ``s3.us-east-1.amazonaws.com``) through which alone it may use the key.
    ``source_policy_documents`` are merged first; a builder statement with the same Sid
    replaces theirs, and ``extra_statements`` come last (their Sids must be new).
    """
    if not isinstance(account, str) or not _ACCOUNT.match(account):
        raise PolicyBuildError(f"account: expected a 12-digit AWS account id, got {account!r}")
    stmts: list[dict] = []
    if not disable_account_root_access_and_risk_lockout:
        stmts.append(_statement("AccountRoot", [f"arn:{partition}:iam::{account}:root"], ["kms:*"]))
    for sid, arns, actions, field_name, condition in (
        ("KeyAdministrators", key_administrators, ADMIN_ACTIONS, "key_administrators", None),
        ("KeyUsers", key_users, USER_ACTIONS, "key_users", None),
        ("KeyServiceUsers", key_service_users, GRANT_ACTIONS, "key_service_users",
         {"Bool": {"kms:GrantIsForAWSResource": "true"}}),
        ("KeySigners", key_signers, SIGN_ACTIONS, "key_signers", None),
        ("KeyVerifiers", key_verifiers, VERIFY_ACTIONS, "key_verifiers", None),
        ("KeyMacUsers", key_mac_users, MAC_ACTIONS, "key_mac_users", None),
        ("KeyPublicEncryptionUsers", key_public_encryption_users, PUBLIC_ENCRYPTION_ACTIONS,
         "key_public_encryption_users", None),
    ):
        if isinstance(arns, str):
            raise PolicyBuildError(f"{field_name}: expected a list of principal ARNs, got one string")
        principals = _principals(arns, field_name)
        if principals:
            stmts.append(_statement(sid, principals, actions, condition))
    for i, (arn, services) in enumerate(sorted((service_users or {}).items())):
        principal = _principal(arn, f"service_users[{i}]")
        services = sorted(set(as_list(services)))
        if not services or not all(isinstance(s, str) and s.endswith(".amazonaws.com") for s in services):
            raise PolicyBuildError(f"service_users['{arn}']: list the services as kms:ViaService values, "
                                   "e.g. s3.us-east-1.amazonaws.com")
        stmts.append(_statement(_sid("ServiceUser", principal.rsplit("/", 1)[-1]), [principal], USER_ACTIONS,
                                {"StringEquals": {"kms:ViaService": services if len(services) > 1 else services[0]}}))
    stmts.extend(_cross_account_statements(account, cross_account_principals))
    merged = _merge(source_policy_documents, stmts, extra_statements)
    doc = {"Version": "2012-10-17", "Statement": merged}
    size = len(to_json(doc).encode())
    if size > MAX_POLICY_BYTES:
        raise PolicyBuildError(f"the key policy is {size} bytes; KMS allows at most {MAX_POLICY_BYTES}")
    return doc


def _cross_account_statements(account: str, consumers: Sequence[Any]) -> list[dict]:
    grouped: dict[tuple, list[str]] = {}
    for i, raw in enumerate(consumers):
        where = f"cross_account_principals[{i}]"
        c = CrossAccountPrincipal.of(raw, where)
        arn = _principal(c.arn, where)
        if account_of(arn) == account:
            raise PolicyBuildError(f"{where}: '{arn}' is in the key's own account {account}; "
                                   "list it under key_users instead")
        caller = c.caller_account or account_of(arn)
        if not _ACCOUNT.match(str(caller)):
            raise PolicyBuildError(f"{where}: caller_account must be a 12-digit account id, got {caller!r}")
        for k, v in c.encryption_context.items():
            if not isinstance(k, str) or not isinstance(v, str) or not k:
                raise PolicyBuildError(f"{where}: encryption_context must map non-empty strings to strings")
        signature = (caller, tuple(sorted(set(c.actions))), tuple(sorted(set(c.via_services))),
                     tuple(sorted(c.encryption_context.items())))
        grouped.setdefault(signature, []).append(arn)
    out = []
    for n, ((caller, actions, services, context), arns) in enumerate(sorted(grouped.items())):
        equals: dict[str, Any] = {"kms:CallerAccount": caller}
        if services:
            equals["kms:ViaService"] = list(services) if len(services) > 1 else services[0]
        for k, v in context:
            equals[f"kms:EncryptionContext:{k}"] = v
        sid = _sid("CrossAccount", caller) + (f"{n}" if sum(1 for s in grouped if s[0] == caller) > 1 else "")
        out.append(_statement(sid, sorted(set(arns)), list(actions), {"StringEquals": equals}))
    return out


def _merge(sources: Sequence[str | Mapping[str, Any]], built: list[dict], extra: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Source documents' statements first (a built statement with the same Sid replaces
    one), then the built ones, then the extra ones, whose Sids must be new."""
    built_sids = {st["Sid"] for st in built}
    merged: list[dict] = []
    seen: set[str] = set()
    for i, src in enumerate(sources):
        try:
            doc = parse_policy(src)
        except ValueError as e:
            raise PolicyBuildError(f"source_policy_documents[{i}]: {e}") from None
        for label, st in statements(doc):
            sid = st.get("Sid")
            if sid in built_sids:
                continue
            if sid and sid in seen:
                raise PolicyBuildError(f"source_policy_documents[{i}]: Sid '{sid}' appears twice")
            if sid:
                seen.add(sid)
            merged.append(dict(st))
    merged.extend(built)
    seen |= built_sids
    for i, st in enumerate(extra):
        if not isinstance(st, Mapping) or st.get("Effect") not in ("Allow", "Deny"):
            raise PolicyBuildError(f"extra_statements[{i}]: a statement needs Effect Allow or Deny")
        sid = st.get("Sid")
        if sid and sid in seen:
            raise PolicyBuildError(f"extra_statements[{i}]: Sid '{sid}' is already used")
        if sid:
            seen.add(sid)
        merged.append(dict(st))
    return merged


def to_json(doc: Mapping[str, Any]) -> str:
    """The canonical text of a built policy: stable key order, compact."""
    return json.dumps(doc, separators=(",", ":"))
