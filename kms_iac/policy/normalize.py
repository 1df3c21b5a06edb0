"""Semantic form of an IAM/KMS policy document.

Two documents that AWS treats alike normalize to the same value: statement order,
a single value versus a one-element list, whitespace, key order inside objects and
the equivalent principal forms (a bare account id and ``arn:aws:iam::ID:root``) make
no difference. The provider compares normalized policies, so a program never shows a
perpetual policy diff.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kms_iac.policy.document import as_list, parse_policy

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_LIST_FIELDS = ("Action", "NotAction", "Resource", "NotResource")


_as_list = as_list


def _principal_value(kind: str, value: str) -> str:
    if kind == "AWS" and isinstance(value, str) and _ACCOUNT_ID.match(value):
        return f"arn:aws:iam::{value}:root"
    return value


def normalize_principal(principal: Any) -> Any:
    if principal == "*":
        return {"AWS": ["*"]}
    if isinstance(principal, dict):
        return {
            kind: sorted({_principal_value(kind, v) for v in _as_list(values)})
            for kind, values in sorted(principal.items())
        }
    return principal


def normalize_statement(st: dict) -> dict:
    out: dict = {}
    for k, v in st.items():
        if k in _LIST_FIELDS:
            out[k] = sorted(set(_as_list(v)))
        elif k in ("Principal", "NotPrincipal"):
            out[k] = normalize_principal(v)
        elif k == "Condition" and isinstance(v, dict):
            out[k] = {
                op: {ck: sorted({str(x) for x in _as_list(cv)}) for ck, cv in sorted(conds.items())}
                if isinstance(conds, dict) else conds
                for op, conds in sorted(v.items())
            }
        else:
            out[k] = v
    return out


def normalize_policy(doc: Any) -> Any:
    """The canonical form of a policy document (dict or JSON text)."""
    doc = parse_policy(doc)
    out = {k: v for k, v in doc.items() if k != "Statement"}
    statements = [normalize_statement(s) if isinstance(s, dict) else s for s in _as_list(doc.get("Statement"))]
    out["Statement"] = sorted(statements, key=lambda s: json.dumps(s, sort_keys=True))
    return out


def policies_equal(a: Any, b: Any) -> bool:
    """True when two policies (dicts or JSON text) mean the same; unparseable text compares as text."""
    try:
        return normalize_policy(a) == normalize_policy(b)
    except (ValueError, TypeError):
        return a == b
