"""The one parser of policy documents.

Key policies and IAM policies reach kms-iac as JSON text (the KMS API, templates,
Pulumi inputs) or as already-decoded objects (YAML principals files, CloudFormation
templates). Every consumer (the backend's validation, the evaluator, the diff
normaliser, the policy builder and the rules) reads them through :func:`parse_policy`,
so they all agree on what a document is, and the text of a hot key policy is decoded
once however many requests and rules read it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

__all__ = ["PolicyError", "PolicyNotObject", "parse_policy", "statements", "as_list"]


class PolicyError(ValueError):
    """The policy document cannot be read at all (not JSON, not an object)."""


class PolicyNotObject(PolicyError):
    """Valid JSON, but not an object."""


@lru_cache(maxsize=4096)
def _parse_text(text: str | bytes) -> dict:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise PolicyError(f"policy is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PolicyNotObject("policy must be a JSON object")
    return doc


def parse_policy(doc: Any) -> dict:
    """The decoded document (a dict) of JSON text or a dict; ``None`` is the empty policy.

    The result is shared with every other reader of the same text: callers never mutate it.
    """
    if doc is None:
        return {}
    if isinstance(doc, (str, bytes)):
        return _parse_text(doc)
    if not isinstance(doc, dict):
        raise PolicyNotObject("policy must be a JSON object")
    return doc


def as_list(value: Any) -> list:
    """A policy element that may be one value or a list, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def statements(doc: dict) -> list[tuple[str, dict]]:
    """(label, statement) pairs of a parsed document; the label is the Sid or '#index'."""
    out = []
    for i, st in enumerate(as_list(doc.get("Statement"))):
        if not isinstance(st, dict):
            continue
        sid = st.get("Sid")
        out.append((str(sid) if sid not in (None, "") else f"#{i}", st))
    return out
