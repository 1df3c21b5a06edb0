"""KMS001: the key's own account root must be able to manage the key (lockout risk)."""

from __future__ import annotations

from kms_iac.policy.analysis import root_arn, root_can_manage
from kms_iac.rules.applicability import account, key_policy
from kms_iac.rules.registry import failed, passed, rule


@rule("KMS001", severity="CRITICAL",
      title="Key policy gives the account root access",
      rationale="A statement for arn:aws:iam::ACCOUNT:root delegates access to IAM policies; without it "
                "(or with a Deny or condition that cancels it) nobody may be able to change the policy "
                "again and the key can become unmanageable.",
      remediation="Add a statement allowing kms:* to {\"AWS\": \"arn:aws:iam::ACCOUNT:root\"} with no "
                  "condition, and no Deny that covers it.")
def check(view, config):
    doc, na = key_policy(view)
    if na:
        return na
    acct = account(view)
    if root_can_manage(doc, acct, view.key_arn):
        return passed(f"{root_arn(acct)} can manage the key (kms:PutKeyPolicy is allowed)")
    return failed(f"{root_arn(acct)} cannot call kms:PutKeyPolicy under this policy "
                  "(missing, denied or narrowed by a condition): the key can become unmanageable")
