"""AWS KMS authorization: key policy + IAM identity policies + grants.

A pure library (no I/O, no clock): given a key policy, the calling principal (with its
IAM identity policies), the request and the key's grants, it answers whether AWS KMS
would allow the request and why.

The logic follows AWS's documentation ("Key policies", "Default key policy", "Allowing
users in other accounts to use a KMS key", "Grants", "Condition keys for AWS KMS", IAM
"Policy evaluation logic" and "Condition operators"):

* An explicit ``Deny`` in the key policy or in the caller's identity policies always wins,
  over any allow and over every grant.
* The key policy is primary. A statement naming the key's own account (``ACCOUNT`` or
  ``arn:aws:iam::ACCOUNT:root``) lets the account root in directly and, for every other
  principal of that account, *delegates* the decision to IAM: the principal is allowed
  only when one of its identity policies allows too. Without such a statement identity
  policies grant nothing.
* A statement naming the principal itself (or ``*``) allows a same-account principal
  without any IAM policy.
* A principal of another account needs both sides: the key policy must allow it (its
  account, itself or ``*``) and its own identity policies must allow the action on the
  key (an account root has implicit permission in its own account).
* A grant for the principal and the operation allows (no IAM needed), subject to its
  encryption-context constraints.
"""

from __future__ import annotations

import base64
import ipaddress
from functools import lru_cache
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable, Mapping, Sequence

from kms_iac.policy.document import PolicyError, as_list, parse_policy, statements

__all__ = [
    "Principal",
    "GrantInfo",
    "Request",
    "Decision",
    "PolicyError",
    "evaluate",
    "access_denied_message",
    "lockout_check",
]

DENY_RESOURCE = "explicit-deny-resource"
DENY_IDENTITY = "explicit-deny-identity"
NO_RESOURCE_POLICY = "no-resource-policy"
NO_IDENTITY_POLICY = "no-identity-policy"


@dataclass(frozen=True)
class Principal:
    arn: str
    account: str
    identity_policies: tuple[dict, ...] = ()


@dataclass(frozen=True)
class GrantInfo:
    grant_id: str
    grantee: str
    operations: tuple[str, ...]
    constraints: dict | None = None


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    context: Mapping[str, Any]
    encryption_context: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    decided_by: tuple[str, ...]
    denial: str | None


# --------------------------------------------------------------------------- helpers

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ROOT_ARN = re.compile(r"^arn:[^:]+:iam::(\d{12}):root$")
_ROLE_ARN = re.compile(r"^arn:([^:]+):iam::(\d{12}):role/(?:.*/)?([^/]+)$")
_SESSION_ARN = re.compile(r"^arn:([^:]+):sts::(\d{12}):assumed-role/([^/]+)/[^/]+$")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")

# Operations that take an encryption context; grant constraints apply only to these.
_EC_OPERATIONS = frozenset(op.lower() for op in (
    "Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
))


_as_list = as_list
_load = parse_policy
_statements = statements


def _effect(st: dict) -> str:
    return str(st.get("Effect", "")).strip().lower()


@lru_cache(maxsize=4096)
def _glob(pattern: str, *, ignore_case: bool = False) -> re.Pattern:
    parts = []
    for ch in pattern:
        parts.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _arn_account(arn: str) -> str | None:
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and _ACCOUNT_ID.match(parts[4]):
        return parts[4]
    return None


def _is_service(arn: str) -> bool:
    return not arn.startswith("arn:") and arn != "*" and not _ACCOUNT_ID.match(arn)


def _role_of_session(arn: str) -> str | None:
    """arn:aws:sts::A:assumed-role/R/S -> arn:aws:iam::A:role/R."""
    m = _SESSION_ARN.match(arn)
    return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}" if m else None


def _principal_account(p: Principal) -> str:
    return p.account or _arn_account(p.arn) or ""


def _same_principal(listed: str, caller: str) -> bool:
    """Does a listed principal ARN name the caller itself (session -> its role)?"""
    if listed == caller:
        return True
    s = _SESSION_ARN.match(caller)
    r = _ROLE_ARN.match(listed)
    if s and r:
        return s.group(2) == r.group(2) and s.group(3) == r.group(3)
    return False


def _canon_aws(value: Any) -> str:
    v = str(value).strip()
    if _ACCOUNT_ID.match(v):
        return f"arn:aws:iam::{v}:root"
    return v


# ------------------------------------------------------------------ request context

class _Context:
    """Condition keys, case-insensitively, with principal keys filled in when absent."""

    def __init__(self, raw: Mapping[str, Any], principal: Principal | None):
        self.values: dict[str, Any] = {}
        if principal is not None and not _is_service(principal.arn):
            account = _principal_account(principal)
            principal_arn = _role_of_session(principal.arn) or principal.arn
            for k, v in (("aws:PrincipalArn", principal_arn), ("aws:PrincipalAccount", account),
                         ("kms:CallerAccount", account)):
                if v:
                    self.values[k.lower()] = v
        for k, v in (raw or {}).items():
            self.values[str(k).lower()] = v

    def get(self, key: str) -> Any:
        v = self.values.get(key.lower())
        if isinstance(v, (list, tuple, set, frozenset)):
            v = list(v)
            return v if v else None
        return v

    def present(self, key: str) -> bool:
        return self.get(key) is not None


# ------------------------------------------------------------------ policy variables

_UNRESOLVED = object()


def _resolve_variables(value: str, ctx: _Context) -> list[tuple[bool, str]] | object:
    """Split a policy value into (is_literal_text, text) pieces, resolving ${...}.

    Text that came from a variable is always literal (its * and ? do not act as
    wildcards). Returns _UNRESOLVED when a variable has no value and no default."""
    pieces: list[tuple[bool, str]] = []
    pos = 0
    for m in _VARIABLE.finditer(value):
        if m.start() > pos:
            pieces.append((False, value[pos:m.start()]))
        body = m.group(1).strip()
        if body in ("*", "?", "$"):
            pieces.append((True, body))
        else:
            name, default = body, None
            dm = re.match(r"^([^,]+?)\s*,\s*'(.*)'$", body)
            if dm:
                name, default = dm.group(1).strip(), dm.group(2)
            v = ctx.get(name)
            if isinstance(v, list) or v is None:
                if default is None:
                    return _UNRESOLVED
                v = default
            pieces.append((True, _str(v)))
        pos = m.end()
    if pos < len(value):
        pieces.append((False, value[pos:]))
    return pieces


def _pattern_from(pieces: list[tuple[bool, str]], *, like: bool, ignore_case: bool) -> re.Pattern:
    return _compiled_pattern(tuple(pieces), like, ignore_case)


@lru_cache(maxsize=4096)
def _compiled_pattern(pieces: tuple[tuple[bool, str], ...], like: bool, ignore_case: bool) -> re.Pattern:
    rx = []
    for literal, text in pieces:
        if literal or not like:
            rx.append(re.escape(text))
        else:
            rx.append(_glob(text).pattern)
    return re.compile("".join(rx), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


# ------------------------------------------------------------------ value conversion

def _str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _date(v: Any) -> datetime | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, datetime):
        d = v
    elif isinstance(v, date):
        d = datetime(v.year, v.month, v.day)
    elif isinstance(v, (int, float)):
        d = datetime.fromtimestamp(v, tz=timezone.utc)
    elif isinstance(v, str):
        s = v.strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", s):
            d = datetime.fromtimestamp(float(s), tz=timezone.utc)
        else:
            if s.endswith(("Z", "z")):
                s = s[:-1] + "+00:00"
            try:
                d = datetime.fromisoformat(s)
            except ValueError:
                return None
    else:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _bool_str(v: Any) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower()
    return None


# ------------------------------------------------------------------ condition operators

# Each matcher answers: does ONE context value match ONE policy value?
Matcher = Callable[[Any, Any, _Context], bool]


def _string_matcher(*, like: bool, ignore_case: bool) -> Matcher:
    def match(actual: Any, expected: Any, ctx: _Context) -> bool:
        pieces = _resolve_variables(_str(expected), ctx)
        if pieces is _UNRESOLVED:
            return False
        return _pattern_from(pieces, like=like, ignore_case=ignore_case).fullmatch(_str(actual)) is not None
    return match


def _numeric_matcher(cmp: Callable[[float, float], bool]) -> Matcher:
    def match(actual: Any, expected: Any, ctx: _Context) -> bool:
        a, e = _num(actual), _num(expected)
        return a is not None and e is not None and cmp(a, e)
    return match


def _date_matcher(cmp: Callable[[datetime, datetime], bool]) -> Matcher:
    def match(actual: Any, expected: Any, ctx: _Context) -> bool:
        a, e = _date(actual), _date(expected)
        return a is not None and e is not None and cmp(a, e)
    return match


def _bool_match(actual: Any, expected: Any, ctx: _Context) -> bool:
    a, e = _bool_str(actual), _bool_str(expected)
    return a is not None and a == e


def _binary_match(actual: Any, expected: Any, ctx: _Context) -> bool:
    return _str(actual) == _str(expected)


def _ip_match(actual: Any, expected: Any, ctx: _Context) -> bool:
    try:
        addr = ipaddress.ip_address(_str(actual).strip())
        net = ipaddress.ip_network(_str(expected).strip(), strict=False)
    except ValueError:
        return False
    return addr.version == net.version and addr in net


def _arn_match(actual: Any, expected: Any, ctx: _Context) -> bool:
    """ArnEquals/ArnLike: each of the six colon-separated ARN parts is matched on its own."""
    pieces = _resolve_variables(_str(expected), ctx)
    if pieces is _UNRESOLVED:
        return False
    if all(not literal for literal, _ in pieces):
        a_parts, e_parts = _str(actual).split(":", 5), _str(expected).split(":", 5)
        if len(a_parts) == 6 and len(e_parts) == 6:
            return all(_glob(e).fullmatch(a) for a, e in zip(a_parts, e_parts))
    return _pattern_from(pieces, like=True, ignore_case=False).fullmatch(_str(actual)) is not None


# name (lower case) -> (matcher, negated)
_OPERATORS: dict[str, tuple[Matcher, bool]] = {
    "stringequals": (_string_matcher(like=False, ignore_case=False), False),
    "stringnotequals": (_string_matcher(like=False, ignore_case=False), True),
    "stringequalsignorecase": (_string_matcher(like=False, ignore_case=True), False),
    "stringnotequalsignorecase": (_string_matcher(like=False, ignore_case=True), True),
    "stringlike": (_string_matcher(like=True, ignore_case=False), False),
    "stringnotlike": (_string_matcher(like=True, ignore_case=False), True),
    "numericequals": (_numeric_matcher(lambda a, e: a == e), False),
    "numericnotequals": (_numeric_matcher(lambda a, e: a == e), True),
    "numericlessthan": (_numeric_matcher(lambda a, e: a < e), False),
    "numericlessthanequals": (_numeric_matcher(lambda a, e: a <= e), False),
    "numericgreaterthan": (_numeric_matcher(lambda a, e: a > e), False),
    "numericgreaterthanequals": (_numeric_matcher(lambda a, e: a >= e), False),
    "dateequals": (_date_matcher(lambda a, e: a == e), False),
    "datenotequals": (_date_matcher(lambda a, e: a == e), True),
    "datelessthan": (_date_matcher(lambda a, e: a < e), False),
    "datelessthanequals": (_date_matcher(lambda a, e: a <= e), False),
    "dategreaterthan": (_date_matcher(lambda a, e: a > e), False),
    "dategreaterthanequals": (_date_matcher(lambda a, e: a >= e), False),
    "bool": (_bool_match, False),
    "binaryequals": (_binary_match, False),
    "ipaddress": (_ip_match, False),
    "notipaddress": (_ip_match, True),
    "arnequals": (_arn_match, False),
    "arnlike": (_arn_match, False),
    "arnnotequals": (_arn_match, True),
    "arnnotlike": (_arn_match, True),
}


def _condition_entry(operator: str, key: str, expected_values: list, ctx: _Context) -> bool:
    """One operator applied to one condition key (its values OR'd, NOR'd when negated)."""
    op = operator.strip()
    qualifier = None
    low = op.lower()
    for prefix in ("forallvalues:", "foranyvalue:"):
        if low.startswith(prefix):
            qualifier = prefix[:-1]
            op = op[len(prefix):]
            low = op.lower()
            break

    if low == "null":
        # "true": the key must be absent; "false": it must be present.
        is_absent = not ctx.present(key)
        wants = [_bool_str(v) for v in expected_values]
        return any((w == "true" and is_absent) or (w == "false" and not is_absent) for w in wants)

    if_exists = low.endswith("ifexists")
    if if_exists:
        low = low[: -len("ifexists")]
    if low not in _OPERATORS:
        return False  # unknown operator: never matches (AWS rejects such policies)
    matcher, negated = _OPERATORS[low]

    actual = ctx.get(key)
    if actual is None:
        if if_exists:
            return True
        if qualifier == "forallvalues":
            return True  # vacuously true for a missing / empty multivalued key
        if qualifier == "foranyvalue":
            return False
        return negated  # a negated operator is true when the key is absent

    def value_ok(v: Any) -> bool:
        hit = any(matcher(v, e, ctx) for e in expected_values)
        return not hit if negated else hit

    values = actual if isinstance(actual, list) else [actual]
    if qualifier == "forallvalues":
        return all(value_ok(v) for v in values)
    if qualifier == "foranyvalue":
        return any(value_ok(v) for v in values)
    # No set operator: a multivalued key matches when any of its values match
    # (for negated operators: when none of them do).
    if negated:
        return all(value_ok(v) for v in values)
    return any(value_ok(v) for v in values)


def _conditions_hold(condition: Any, ctx: _Context) -> bool:
    """All operators and all keys AND'd."""
    if not condition:
        return True
    if not isinstance(condition, dict):
        return False
    for operator, block in condition.items():
        if not isinstance(block, dict):
            return False
        for key, expected in block.items():
            if not _condition_entry(str(operator), str(key), _as_list(expected), ctx):
                return False
    return True


# ------------------------------------------------------------------ statement matching

def _normalize_action(action: str) -> str:
    a = action.strip()
    return a if ":" in a else f"kms:{a}"


def _action_matches(st: dict, action: str) -> bool:
    if "Action" in st:
        return any(_glob(str(p), ignore_case=True).fullmatch(action) for p in _as_list(st["Action"]))
    if "NotAction" in st:
        return not any(_glob(str(p), ignore_case=True).fullmatch(action) for p in _as_list(st["NotAction"]))
    return False


def _resource_pattern_matches(pattern: Any, resource: str, ctx: _Context) -> bool:
    pieces = _resolve_variables(str(pattern), ctx)
    if pieces is _UNRESOLVED:
        return False
    return _pattern_from(pieces, like=True, ignore_case=False).fullmatch(resource) is not None


def _resource_matches(st: dict, resource: str, ctx: _Context) -> bool:
    if "Resource" in st:
        return any(_resource_pattern_matches(p, resource, ctx) for p in _as_list(st["Resource"]))
    if "NotResource" in st:
        return not any(_resource_pattern_matches(p, resource, ctx) for p in _as_list(st["NotResource"]))
    return True  # key policies always say "*"; be lenient with a missing element


def _statement_applies(st: dict, action: str, resource: str, ctx: _Context) -> bool:
    """Action, resource and condition parts of a statement (the principal is separate)."""
    return (_action_matches(st, _normalize_action(action))
            and _resource_matches(st, resource, ctx)
            and _conditions_hold(st.get("Condition"), ctx))


# Principal-element match results.
_NO, _DIRECT, _ACCOUNT = 0, 2, 1


def _principal_entries(element: Any) -> list[tuple[str, str]]:
    """(kind, value) pairs; the bare "*" becomes ("AWS", "*")."""
    if element == "*" or element == ["*"]:
        return [("AWS", "*")]
    if isinstance(element, dict):
        return [(str(kind), str(v)) for kind, vals in element.items() for v in _as_list(vals)]
    if isinstance(element, (str, list)):
        return [("AWS", str(v)) for v in _as_list(element)]
    return []


def _entry_match(kind: str, value: str, p: Principal) -> int:
    """How a single Principal entry names the caller: directly, through its account, or not."""
    caller = p.arn
    if kind == "AWS" and value.strip() == "*":
        return _DIRECT
    if _is_service(caller):
        return _DIRECT if kind == "Service" and value.strip().lower() == caller.lower() else _NO
    if kind != "AWS":
        return _DIRECT if value == caller else _NO
    listed = _canon_aws(value)
    if _same_principal(listed, caller):
        return _DIRECT
    m = _ROOT_ARN.match(listed)
    if m and m.group(1) == _principal_account(p):
        return _DIRECT if _ROOT_ARN.match(caller) else _ACCOUNT
    return _NO


def _principal_match(st: dict, p: Principal) -> int:
    if "Principal" in st:
        return max((_entry_match(k, v, p) for k, v in _principal_entries(st["Principal"])), default=_NO)
    if "NotPrincipal" in st:
        entries = _principal_entries(st["NotPrincipal"])
        # AWS evaluates the caller's account, then (for sessions) its role, then the
        # caller itself; the statement applies unless every one of them is excluded.
        if _is_service(p.arn):
            layers = [p.arn]
        else:
            account = _principal_account(p)
            layers = [f"arn:aws:iam::{account}:root"] if account else []
            if not _ROOT_ARN.match(p.arn):
                layers.append(p.arn)

        def excluded(layer: str) -> bool:
            for kind, value in entries:
                if kind == "AWS" and value.strip() == "*":
                    return True
                if _is_service(layer):
                    if kind == "Service" and value.strip().lower() == layer.lower():
                        return True
                elif kind == "AWS" and _same_principal(_canon_aws(value), layer):
                    return True
            return False

        return _NO if all(excluded(layer) for layer in layers) else _DIRECT
    return _NO


# ------------------------------------------------------------------ grants

def _grant_constraints_ok(constraints: dict | None, operation: str, ec: Mapping[str, str]) -> bool:
    if not constraints or operation.lower() not in _EC_OPERATIONS:
        return True
    # In a grant constraint the key of each pair is not case sensitive; the value is.
    have = {str(k).lower(): str(v) for k, v in ec.items()}
    for kind, pairs in constraints.items():
        want = {str(k).lower(): str(v) for k, v in (pairs or {}).items()}
        if kind == "EncryptionContextEquals":
            if have != want:
                return False
        elif kind == "EncryptionContextSubset":
            if any(have.get(k) != v for k, v in want.items()):
                return False
        else:
            return False  # unknown constraint: fail closed
    return True


def _request_encryption_context(request: Request) -> dict[str, str]:
    if request.encryption_context is not None:
        return dict(request.encryption_context)
    prefix = "kms:encryptioncontext:"
    return {k[len(prefix):]: _str(v) for k, v in (request.context or {}).items()
            if str(k).lower().startswith(prefix)}


def _grant_allows(g: GrantInfo, p: Principal, operation: str, ec: Mapping[str, str]) -> bool:
    if not _same_principal(g.grantee, p.arn):
        return False
    if not any(str(op).lower() == operation.lower() for op in g.operations):
        return False
    return _grant_constraints_ok(g.constraints, operation, ec)


# ------------------------------------------------------------------ evaluation

def _key_account(resource: str, p: Principal) -> str:
    return _arn_account(resource) or _principal_account(p)


def evaluate(key_policy: dict | str, principal: Principal, request: Request,
             grants: Sequence[GrantInfo] = ()) -> Decision:
    doc = _load(key_policy)
    ctx = _Context(request.context, principal)
    action = _normalize_action(request.action)
    resource = request.resource
    key_account = _key_account(resource, principal)
    caller_account = _principal_account(principal)
    is_service = _is_service(principal.arn)
    is_root = bool(_ROOT_ARN.match(principal.arn))
    cross_account = not is_service and caller_account != key_account

    # 1. Key policy.
    resource_allows: list[tuple[str, int]] = []
    for label, st in _statements(doc):
        how = _principal_match(st, principal)
        if how == _NO or not _statement_applies(st, action, resource, ctx):
            continue
        if _effect(st) == "deny":
            return Decision(False, f"explicit deny in key policy statement '{label}'",
                            (f"key-policy:{label}",), DENY_RESOURCE)
        if _effect(st) == "allow":
            resource_allows.append((label, how))

    # 2. Identity policies of the caller.
    identity_allows: list[str] = []
    if not is_service:
        for pi, policy in enumerate(principal.identity_policies):
            for label, st in _statements(_load(policy)):
                if not _statement_applies(st, action, resource, ctx):
                    continue
                if _effect(st) == "deny":
                    return Decision(False, f"explicit deny in IAM policy statement '{label}'",
                                    (f"identity-policy:{pi}:{label}",), DENY_IDENTITY)
                if _effect(st) == "allow":
                    identity_allows.append(f"identity-policy:{pi}:{label}")

    direct = [label for label, how in resource_allows if how == _DIRECT]
    via_account = [label for label, how in resource_allows if how == _ACCOUNT]
    identity_ok = bool(identity_allows) or is_root or is_service

    # 3. Key policy (+ IAM where needed).
    if not cross_account:
        if direct:
            return Decision(True, f"allowed by key policy statement '{direct[0]}'",
                            (f"key-policy:{direct[0]}",), None)
        if via_account and identity_allows:
            return Decision(True, f"allowed by IAM policy (key policy delegates to account {key_account})",
                            (f"key-policy:{via_account[0]}", identity_allows[0]), None)
    elif resource_allows and identity_ok:
        label = (direct or via_account)[0]
        by = (f"key-policy:{label}",) + ((identity_allows[0],) if identity_allows else ())
        return Decision(True, f"allowed by key policy statement '{label}' and IAM policy "
                              f"of account {caller_account} (cross-account)", by, None)

    # 4. Grants (never past an explicit deny, which returned above).
    operation = action.split(":", 1)[1] if action.lower().startswith("kms:") else None
    if operation is not None:
        ec = _request_encryption_context(request)
        for g in grants:
            if _grant_allows(g, principal, operation, ec):
                return Decision(True, f"allowed by grant {g.grant_id}", (f"grant:{g.grant_id}",), None)

    # 5. Implicit deny.
    if cross_account:
        if resource_allows:
            label = (direct or via_account)[0]
            return Decision(False, f"key policy allows account {caller_account} but no IAM policy of "
                                   f"the caller allows {action}", (f"key-policy:{label}",), NO_IDENTITY_POLICY)
        if not identity_ok:
            return Decision(False, f"cross-account: neither the key policy nor an IAM policy of account "
                                   f"{caller_account} allows {action}", (), NO_IDENTITY_POLICY)
        return Decision(False, "no key policy statement allows", tuple(identity_allows[:1]), NO_RESOURCE_POLICY)
    if via_account:
        return Decision(False, f"key policy delegates to account {key_account} but no IAM policy allows "
                               f"{action}", (f"key-policy:{via_account[0]}",), NO_IDENTITY_POLICY)
    return Decision(False, "no key policy statement allows", (), NO_RESOURCE_POLICY)


_DENIAL_WORDS = {
    NO_RESOURCE_POLICY: "because no resource-based policy allows the {action} action",
    NO_IDENTITY_POLICY: "because no identity-based policy allows the {action} action",
    DENY_RESOURCE: "with an explicit deny in a resource-based policy",
    DENY_IDENTITY: "with an explicit deny in an identity-based policy",
}


def access_denied_message(principal_arn: str, action: str, resource: str, decision: Decision) -> str:
    """AWS's AccessDeniedException wording for a denied decision."""
    action = _normalize_action(action)
    base = f"User: {principal_arn} is not authorized to perform: {action} on resource: {resource}"
    tail = _DENIAL_WORDS.get(decision.denial or "")
    return f"{base} {tail.format(action=action)}" if tail else base


def lockout_check(new_policy: dict | str, principal: Principal, key_arn: str) -> bool:
    """True when `new_policy` still lets `principal` call kms:PutKeyPolicy later."""
    return evaluate(new_policy, principal, Request("kms:PutKeyPolicy", key_arn, {})).allowed


# Public names for the policy analyses the rules make with this evaluator.
principal_entries = _principal_entries
canonical_aws_principal = _canon_aws
arn_account = _arn_account
principal_match = _principal_match
action_matches = _action_matches
NO_MATCH, ACCOUNT_MATCH, DIRECT_MATCH = _NO, _ACCOUNT, _DIRECT
