"""Which account a templated key will live in, when the template does not say.

The policy rules compare principals with the key's own account (KMS001 looks for its
root, KMS005 for other accounts). A template deployed with ``${AWS::AccountId}`` takes
the account from the config (``account = ...``) or a placeholder, which is consistent
because every own-account ARN is then written through that same pseudo parameter. A
template or plan that hard-codes its account (or a plan whose policies were rendered
from ``data.aws_caller_identity``) would be misjudged against a placeholder: every
principal would look foreign. For those, the account is inferred as the most frequent
account among the key policy's principals (ties: the first named, which is by
convention the root statement's account).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from kms_iac.policy.analysis import named_principals, principal_account


def principal_accounts(policy: dict | None) -> list[str]:
    """The accounts of the AWS principals a policy's Allow statements name, in order, repeated."""
    if not policy:
        return []
    try:
        arns = named_principals(policy)
    except Exception:  # noqa: BLE001 - a malformed document names no account we can trust
        return []
    return [a for a in (principal_account(arn) for arn in arns) if a]


def most_frequent(accounts: Iterable[str]) -> str | None:
    """The most frequent account (first seen wins a tie), or None for none."""
    counts = Counter(accounts)
    if not counts:
        return None
    return counts.most_common(1)[0][0]  # most_common is stable: insertion order breaks ties
