"""Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.

Grants are stored, listed, retired and revoked here; nothing enforces them yet (the
authorization layer will, through :func:`active_grants` and :func:`grant_for_token`).
Grant tokens are secrets: only their SHA-256 is stored, in the grant's row, so a token
stays valid exactly as long as its grant does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets

from kms_iac.backend.core import Call
from kms_iac.backend.errors import (
    InvalidGrantIdException,
    InvalidGrantTokenException,
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.pagination import paginate
from kms_iac.backend.store import KeyRecord, Store

GRANT_ID_RE = re.compile(r"^[0-9a-f]{64}$")
# IAM principals KMS accepts as grantee/retiring principal, or an AWS service principal.
PRINCIPAL_RE = re.compile(
    r"^(?:arn:aws[a-z-]*:iam::\d{12}:(?:root|user/.+|role/.+|federated-user/.+)"
    r"|arn:aws[a-z-]*:sts::\d{12}:(?:assumed-role/.+/.+|federated-user/.+)"
    r"|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?)$"
)

# "Grant operations" (KMS developer guide): what a grant may allow, by the kind of key. Every
# key allows CreateGrant, RetireGrant and DescribeKey; the cryptographic operations are those the
# key can perform (CreateGrant API reference: "the operation must be supported on the KMS key").
_ANY_KEY = ("CreateGrant", "RetireGrant", "DescribeKey")
SYMMETRIC_GRANT_OPERATIONS = (
    "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext", "ReEncryptFrom", "ReEncryptTo", *_ANY_KEY,
)
GRANT_OPERATIONS_BY_USAGE: dict[str, tuple[str, ...]] = {
    "ENCRYPT_DECRYPT": SYMMETRIC_GRANT_OPERATIONS,  # symmetric encryption keys
    "ASYMMETRIC_ENCRYPT_DECRYPT": ("Decrypt", "Encrypt", "ReEncryptFrom", "ReEncryptTo", "GetPublicKey", *_ANY_KEY),
    "SIGN_VERIFY": ("Sign", "Verify", "GetPublicKey", *_ANY_KEY),
    "KEY_AGREEMENT": ("DeriveSharedSecret", "GetPublicKey", *_ANY_KEY),
    "ENCAPSULATE_DECAPSULATE": ("Encapsulate", "Decapsulate", "GetPublicKey", *_ANY_KEY),
    "GENERATE_VERIFY_MAC": ("GenerateMac", "VerifyMac", *_ANY_KEY),
}


def grant_operations_for(key: KeyRecord) -> tuple[str, ...]:
    """The grant operations valid for ``key``: its usage's, an asymmetric ENCRYPT_DECRYPT key's
    lacking the data key operations that need a symmetric key."""
    usage = key.key_usage
    if usage == "ENCRYPT_DECRYPT" and key.key_spec != "SYMMETRIC_DEFAULT":
        usage = "ASYMMETRIC_ENCRYPT_DECRYPT"
    return GRANT_OPERATIONS_BY_USAGE.get(usage, _ANY_KEY)
# Operations that take an encryption context, and those an encryption-context constraint may accompany.
EC_OPERATIONS = frozenset(SYMMETRIC_GRANT_OPERATIONS) - {"CreateGrant", "RetireGrant", "DescribeKey"}
EC_CONSTRAINT_COMPANIONS = frozenset({"CreateGrant", "RetireGrant", "DescribeKey"})
MAX_CONSTRAINT_PAIRS = 8
MAX_CONSTRAINT_VALUE = 384
LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT = 50, 100

_TOKEN_VERSION = b"\x01"
_COLUMNS = "grant_id, key_id, region, name, grantee, retiring, operations, constraints, issuing_account, created, token_hashes"


# -- tokens ---------------------------------------------------------------------------------


def _new_token(grant_id: str) -> str:
    """An opaque token naming its grant, with 64 random bytes no one can guess."""
    raw = _TOKEN_VERSION + bytes.fromhex(grant_id) + secrets.token_bytes(64)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token_grant_id(token: str) -> str:
    """The grant id inside a token, or InvalidGrantTokenException when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 97 or raw[:1] != _TOKEN_VERSION:
        raise InvalidGrantTokenException("Invalid grant token.")
    return raw[1:33].hex()


# -- rows -----------------------------------------------------------------------------------


def _row_dict(row: tuple) -> dict:
    gid, key_id, region, name, grantee, retiring, ops, constraints, issuing, created, hashes = row
    return {
        "GrantId": gid, "KeyId": key_id, "Region": region, "Name": name, "GranteePrincipal": grantee,
        "RetiringPrincipal": retiring, "Operations": json.loads(ops),
        "Constraints": json.loads(constraints) if constraints else None,
        "IssuingAccount": issuing, "CreationDate": created, "TokenHashes": json.loads(hashes),
    }


def _grants_of(store: Store, key_id: str, region: str) -> list[dict]:
    rows = store.execute(f"SELECT {_COLUMNS} FROM grants WHERE key_id=? AND region=?", (key_id, region))
    return [_row_dict(r) for r in rows]


def _grant_by_id(store: Store, grant_id: str) -> dict | None:
    rows = store.execute(f"SELECT {_COLUMNS} FROM grants WHERE grant_id=?", (grant_id,))
    return _row_dict(rows[0]) if rows else None


def active_grants(store: Store, key: KeyRecord) -> list[dict]:
    """The key's grants, for the authorizer: GrantId, GranteePrincipal, RetiringPrincipal,
    Operations, Constraints (None or {EncryptionContextSubset|EncryptionContextEquals|SourceArn}),
    Name, IssuingAccount, CreationDate, and TokenHashes (SHA-256 hex of each token issued)."""
    return _grants_of(store, key.key_id, key.region)


def grant_for_token(store: Store, token: str) -> dict | None:
    """The live grant a grant token was issued for, or None (malformed, forged, or retired)."""
    try:
        grant = _grant_by_id(store, _token_grant_id(token))
    except InvalidGrantTokenException:
        return None
    if grant is None or _token_hash(token) not in grant["TokenHashes"]:
        return None
    return grant


def _entry(key_arn_by_id: dict[tuple[str, str], str], g: dict) -> dict:
    """A GrantListEntry as ListGrants and ListRetirableGrants return it."""
    out: dict = {
        "KeyId": key_arn_by_id[(g["KeyId"], g["Region"])],
        "GrantId": g["GrantId"],
        "CreationDate": g["CreationDate"],
        "GranteePrincipal": g["GranteePrincipal"],
        "IssuingAccount": g["IssuingAccount"],
        "Operations": g["Operations"],
    }
    if g["Name"] is not None:
        out["Name"] = g["Name"]
    if g["RetiringPrincipal"] is not None:
        out["RetiringPrincipal"] = g["RetiringPrincipal"]
    if g["Constraints"]:
        out["Constraints"] = g["Constraints"]
    return out


def _page(grants: list[dict], params: dict) -> tuple[list[dict], dict]:
    capped = dict(params)
    if capped.get("Limit"):
        capped["Limit"] = min(capped["Limit"], LIST_MAX_LIMIT)
    return paginate(grants, capped, sort_key=lambda g: f"{g['CreationDate']:020.6f}:{g['GrantId']}", default_limit=LIST_DEFAULT_LIMIT)


# -- checks ---------------------------------------------------------------------------------


def _check_principal(value: str, member: str) -> None:
    if not PRINCIPAL_RE.match(value):
        raise ValidationException(f"{member} {value} is not a valid principal.")


def _check_operations(key: KeyRecord, operations: list[str]) -> list[str]:
    if not operations:
        raise ValidationException("Operations must contain at least one grant operation.")
    allowed = grant_operations_for(key)
    for op in operations:
        if op not in allowed:
            raise ValidationException(f"Grant operation {op} is not valid for KMS key {key.arn} with KeyUsage {key.key_usage}.")
    return list(dict.fromkeys(operations))  # duplicates dropped, order kept


def _check_grant_id(grant_id: str) -> None:
    if not GRANT_ID_RE.match(grant_id):
        raise InvalidGrantIdException(f"Invalid grant ID {grant_id}.")


def _check_constraints(constraints: dict | None, operations: list[str], symmetric: bool = True) -> dict | None:
    """Encryption context constraints only on grants for operations that take an encryption
    context, which operations with asymmetric keys never do (CreateGrant API reference)."""
    if not constraints:
        return None
    ec = {k: v for k, v in constraints.items() if k in ("EncryptionContextSubset", "EncryptionContextEquals") and v is not None}
    if ec:
        others = [op for op in operations if op not in EC_OPERATIONS and op not in EC_CONSTRAINT_COMPANIONS]
        if not symmetric or others or not any(op in EC_OPERATIONS or op == "CreateGrant" for op in operations):
            raise ValidationException(
                "Encryption context grant constraints are allowed only on grants for cryptographic operations "
                "that take an encryption context."
            )
        for name, pairs in ec.items():
            if len(pairs) > MAX_CONSTRAINT_PAIRS:
                raise ValidationException(f"{name} can include at most {MAX_CONSTRAINT_PAIRS} encryption context pairs.")
            for k, v in pairs.items():
                if len(v) > MAX_CONSTRAINT_VALUE:
                    raise ValidationException(
                        f"The encryption context value for '{k}' in {name} exceeds {MAX_CONSTRAINT_VALUE} characters."
                    )
    out = {k: v for k, v in constraints.items() if v is not None}
    return out or None


# -- operations -----------------------------------------------------------------------------


@operation("CreateGrant", key="KeyId", mutates=True)
def create_grant(call: Call, params: dict, key: KeyRecord) -> dict:
    if params.get("GranteeServicePrincipal") or params.get("RetiringServicePrincipal"):
        raise UnsupportedOperationException(
            "GranteeServicePrincipal and RetiringServicePrincipal are not supported by the kms-iac local backend yet."
        )
    grantee = params.get("GranteePrincipal")
    if grantee is None:
        raise ValidationException("You must specify either GranteePrincipal or GranteeServicePrincipal.")
    _check_principal(grantee, "GranteePrincipal")
    retiring = params.get("RetiringPrincipal")
    if retiring is not None:
        _check_principal(retiring, "RetiringPrincipal")
    operations = _check_operations(key, params["Operations"])
    constraints = _check_constraints(params.get("Constraints"), operations, key.key_spec == "SYMMETRIC_DEFAULT")
    for token in params.get("GrantTokens") or []:
        _token_grant_id(token)
    name = params.get("Name")

    grant_id = None
    if name is not None:  # a retry with the same Name and parameters returns the same grant
        for g in _grants_of(call.store, key.key_id, key.region):
            if (
                g["Name"] == name and g["GranteePrincipal"] == grantee and g["RetiringPrincipal"] == retiring
                and set(g["Operations"]) == set(operations) and (g["Constraints"] or None) == constraints
            ):
                grant_id = g["GrantId"]
                hashes = g["TokenHashes"]
                break
    if grant_id is None:
        grant_id = secrets.token_hex(32)
        token = _new_token(grant_id)
        call.conn.execute(
            f"INSERT INTO grants ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (grant_id, key.key_id, key.region, name, grantee, retiring, json.dumps(operations),
             json.dumps(constraints) if constraints else None, f"arn:aws:iam::{call.ctx.account}:root",
             call.now, json.dumps([_token_hash(token)])),
        )
    else:
        token = _new_token(grant_id)  # AWS: a new token with every request; all are interchangeable
        call.conn.execute(
            "UPDATE grants SET token_hashes=? WHERE grant_id=?", (json.dumps([*hashes, _token_hash(token)]), grant_id)
        )
    return {"GrantToken": token, "GrantId": grant_id}


@operation("ListGrants", key="KeyId")
def list_grants(call: Call, params: dict, key: KeyRecord) -> dict:
    grants = _grants_of(call.store, key.key_id, key.region)
    if params.get("GrantId") is not None:
        _check_grant_id(params["GrantId"])
        grants = [g for g in grants if g["GrantId"] == params["GrantId"]]
    if params.get("GranteePrincipal") is not None:
        grants = [g for g in grants if g["GranteePrincipal"] == params["GranteePrincipal"]]
    if params.get("GranteeServicePrincipal") is not None:
        grants = []  # no grant has a service grantee here (CreateGrant refuses them)
    page, extra = _page(grants, params)
    arns = {(key.key_id, key.region): key.arn}
    return {"Grants": [_entry(arns, g) for g in page], **extra}


@operation("ListRetirableGrants")
def list_retirable_grants(call: Call, params: dict) -> dict:
    principal = params.get("RetiringPrincipal")
    if principal is None and params.get("RetiringServicePrincipal") is None:
        raise ValidationException("You must specify either RetiringPrincipal or RetiringServicePrincipal.")
    rows = call.store.execute(
        f"SELECT {_COLUMNS} FROM grants WHERE region=? AND retiring=?", (call.ctx.region, principal or "")
    ) if principal is not None else []
    grants = [_row_dict(r) for r in rows]
    page, extra = _page(grants, params)
    arns: dict[tuple[str, str], str] = {}
    for g in page:
        k = call.store.get_key(g["KeyId"], g["Region"])
        arns[(g["KeyId"], g["Region"])] = k.arn if k else f"arn:aws:kms:{g['Region']}:{call.ctx.account}:key/{g['KeyId']}"
    return {"Grants": [_entry(arns, g) for g in page], **extra}


def _delete(call: Call, grant_id: str) -> None:
    with call.write() as c:
        c.execute("DELETE FROM grants WHERE grant_id=?", (grant_id,))


@operation("RetireGrant", mutates=True)
def retire_grant(call: Call, params: dict) -> dict:
    token, key_ref, grant_id = params.get("GrantToken"), params.get("KeyId"), params.get("GrantId")
    if token is None and (key_ref is None or grant_id is None):
        raise ValidationException("You must specify either a GrantToken or both KeyId and GrantId.")
    if grant_id is not None:
        _check_grant_id(grant_id)
    key = call.resolve(key_ref, allow_alias=False) if key_ref is not None else None
    if token is not None:
        token_gid = _token_grant_id(token)
        if grant_id is not None and grant_id != token_gid:
            raise InvalidGrantIdException(f"Grant ID {grant_id} does not match the grant token.")
        grant = _grant_by_id(call.store, token_gid)
        if grant is None:
            raise NotFoundException(f"Grant ID {token_gid} not found")
        if _token_hash(token) not in grant["TokenHashes"]:
            raise InvalidGrantTokenException("Invalid grant token.")
    else:
        grant = _grant_by_id(call.store, grant_id)  # type: ignore[arg-type]
        if grant is None:
            raise NotFoundException(f"Grant ID {grant_id} not found")
    if key is not None and (grant["KeyId"], grant["Region"]) != (key.key_id, key.region):
        raise NotFoundException(f"Grant ID {grant['GrantId']} not found")
    if key is None:
        key = call.store.get_key(grant["KeyId"], grant["Region"])
        if key is None:  # the key went with its grants; only a torn store would get here
            raise NotFoundException(f"Grant ID {grant['GrantId']} not found")
    caller = call.ctx.principal_arn
    if caller == grant["RetiringPrincipal"] or (caller == grant["GranteePrincipal"] and "RetireGrant" in grant["Operations"]):
        call.resources.append(key.arn)  # the grant itself gives this caller the right to retire it (AWS)
    else:
        call.admit(key, "RetireGrant")
    _delete(call, grant["GrantId"])
    return {}


@operation("RevokeGrant", key="KeyId", mutates=True)
def revoke_grant(call: Call, params: dict, key: KeyRecord) -> dict:
    grant_id = params["GrantId"]
    _check_grant_id(grant_id)
    grant = _grant_by_id(call.store, grant_id)
    if grant is None or (grant["KeyId"], grant["Region"]) != (key.key_id, key.region):
        raise NotFoundException(f"Grant ID {grant_id} not found")
    _delete(call, grant_id)
    return {}


__all__ = ["active_grants", "grant_for_token", "grant_operations_for", "GRANT_OPERATIONS_BY_USAGE"]
