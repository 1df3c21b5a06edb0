"""KMS016: IAM identity policies that allow decryption with every key."""

from __future__ import annotations

from kms_iac.policy.analysis import identity_allows_on_any_key
from kms_iac.rules.registry import failed, not_applicable, passed, rule
from kms_iac.rules.view import PLACEHOLDER_ACCOUNT

ACTIONS = ("kms:Decrypt", "kms:ReEncryptFrom")


@rule("KMS016", severity="HIGH", applies_to="identity-policy",
      title="No identity policy allows kms:Decrypt on all keys",
      rationale="An IAM policy with kms:Decrypt on Resource \"*\" lets its holder decrypt with every key whose "
                "policy delegates to IAM, in every account that trusts it, including keys created later.",
      remediation="List the key ARNs (or use a condition such as kms:ResourceAliases or "
                  "kms:EncryptionContext) instead of Resource \"*\" for kms:Decrypt and kms:ReEncryptFrom.")
def check(view, config):
    if view.policy_unresolved:
        return not_applicable("the policy document could not be resolved from the source")
    if not view.document:
        return not_applicable("no policy document")
    acct = view.account or config.account or PLACEHOLDER_ACCOUNT
    wide = [a for a in ACTIONS if identity_allows_on_any_key(view.document, a, acct)]
    if wide:
        return failed(f"allows {' and '.join(wide)} on every KMS key")
    return passed("kms:Decrypt and kms:ReEncryptFrom are limited to named keys")
