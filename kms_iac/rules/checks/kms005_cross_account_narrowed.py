"""KMS005: another account's use of the key must be narrowed by a condition."""

from __future__ import annotations

from kms_iac.policy.analysis import (
    GRANT_ACTIONS, use_actions_for, is_wildcard_statement, named_principals, principal_account, sub_policy,
    unnarrowed_actions,
)
from kms_iac.rules.applicability import account, key_policy
from kms_iac.rules.registry import failed, passed, rule


@rule("KMS005", severity="HIGH",
      title="Cross-account use is narrowed by a condition",
      rationale="A principal of another account that may use the key with no condition can use it from any "
                "service and with any encryption context; narrowing it (kms:ViaService, kms:CallerAccount, "
                "an encryption context, aws:PrincipalOrgID) limits what a compromise there can do.",
      remediation="Add kms:CallerAccount (the consumer's own account), kms:ViaService or an encryption-context "
                  "condition to the statement that names the other account.")
def check(view, config):
    doc, na = key_policy(view)
    if na:
        return na
    own = account(view)
    named = sub_policy(doc, lambda st: not is_wildcard_statement(st))
    foreign = [p for p in named_principals(named) if principal_account(p) not in (own, None)]
    if not foreign:
        return passed("no other account is named in the key policy")
    loose = {}
    for arn in foreign:
        actions = unnarrowed_actions(named, arn, view.key_arn, use_actions_for(view.key_usage) + GRANT_ACTIONS)
        if actions:
            loose[arn] = actions
    if loose:
        detail = "; ".join(f"{arn}: {', '.join(a[:3])}{' ...' if len(a) > 3 else ''}" for arn, a in loose.items())
        return failed(f"other accounts may use the key with no narrowing condition ({detail})")
    return passed(f"cross-account access ({len(foreign)} principal(s)) is narrowed by conditions")
