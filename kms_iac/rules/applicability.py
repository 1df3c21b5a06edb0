"""Shared "does this rule apply to this key" answers, so every rule says them alike."""

from __future__ import annotations

from kms_iac.policy.analysis import default_key_policy
from kms_iac.rules.registry import Result, not_applicable
from kms_iac.rules.view import PLACEHOLDER_ACCOUNT, SYMMETRIC, KeyView


def key_policy(view: KeyView) -> tuple[dict | None, Result | None]:
    """The policy a policy rule reads (KMS's default when none is given), or why none applies."""
    if not view.customer_managed:
        return None, not_applicable("AWS managed key: AWS owns its policy")
    if view.policy_unresolved:
        return None, not_applicable("the key policy could not be resolved from the source")
    return (view.policy if view.policy is not None else default_key_policy(account(view))), None


def account(view: KeyView) -> str:
    return view.account or PLACEHOLDER_ACCOUNT


def rotation_na(view: KeyView) -> Result | None:
    """Automatic rotation exists only for symmetric, KMS-generated keys outside custom key stores."""
    if not view.customer_managed:
        return not_applicable("AWS managed key: AWS rotates it every year")
    if view.key_spec != SYMMETRIC:
        return not_applicable(f"{view.key_spec} keys cannot be rotated automatically")
    if view.origin == "EXTERNAL":
        return not_applicable("imported key material is never rotated automatically (rotate on demand)")
    if view.custom_key_store_id or view.origin in ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"):
        return not_applicable("keys in a custom key store cannot be rotated automatically")
    return None


def customer_managed_na(view: KeyView) -> Result | None:
    return None if view.customer_managed else not_applicable("AWS managed key")
