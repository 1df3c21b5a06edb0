"""KMS004: a wildcard principal that no condition narrows."""

from __future__ import annotations

from kms_iac.policy.analysis import ALL_ACTIONS, has_allow, is_wildcard_statement, outsider_account, sub_policy, unnarrowed_actions
from kms_iac.rules.applicability import account, key_policy
from kms_iac.rules.registry import failed, passed, rule


@rule("KMS004", severity="CRITICAL",
      title="No wildcard principal without a narrowing condition",
      rationale="\"Principal\": \"*\" lets every AWS account in unless a condition (kms:CallerAccount, "
                "aws:PrincipalOrgID, kms:ViaService, an encryption context, a VPC endpoint) narrows it.",
      remediation="Name the principals, or add a condition such as kms:CallerAccount or aws:PrincipalOrgID "
                  "to the wildcard statement.")
def check(view, config):
    doc, na = key_policy(view)
    if na:
        return na
    if not has_allow(doc, is_wildcard_statement):
        return passed("no statement allows a wildcard principal")
    wild = sub_policy(doc, is_wildcard_statement)
    outsider = f"arn:aws:iam::{outsider_account(doc, account(view))}:role/anyone"
    open_actions = unnarrowed_actions(wild, outsider, view.key_arn, ALL_ACTIONS)
    if open_actions:
        shown = ", ".join(open_actions[:4]) + (f" and {len(open_actions) - 4} more" if len(open_actions) > 4 else "")
        return failed(f"a wildcard principal is allowed {shown} with no narrowing condition: any AWS account can call them")
    return passed("wildcard principals are narrowed by conditions")
