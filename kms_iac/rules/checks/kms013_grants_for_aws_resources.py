"""KMS013: CreateGrant only for AWS resources (kms:GrantIsForAWSResource)."""

from __future__ import annotations

from kms_iac.policy.analysis import (
    allowed, ambient_context, is_wildcard_statement, named_principals, outsider_account, principal_account, region_of, sub_policy,
)
from kms_iac.rules.applicability import account, key_policy
from kms_iac.rules.registry import failed, passed, rule


@rule("KMS013", severity="MEDIUM",
      title="Grants can be created only for AWS resources",
      rationale="A principal allowed kms:CreateGrant without kms:GrantIsForAWSResource can hand its access to "
                "any principal, outside the key policy's review.",
      remediation="Add \"Bool\": {\"kms:GrantIsForAWSResource\": \"true\"} to statements that allow kms:CreateGrant.")
def check(view, config):
    doc, na = key_policy(view)
    if na:
        return na
    own = account(view)
    ctx_false = {**ambient_context(region_of(view.key_arn)), "kms:GrantIsForAWSResource": "false"}
    offenders = []
    for arn in named_principals(doc):
        if arn.endswith(":root") and principal_account(arn) == own:
            continue  # IAM delegation (KMS001); what IAM then allows is KMS016's business
        if allowed(doc, arn, "kms:CreateGrant", view.key_arn, context=ctx_false,
                   iam_allow_all=principal_account(arn) != own):
            offenders.append(arn)
    wild = sub_policy(doc, is_wildcard_statement)
    outsider = f"arn:aws:iam::{outsider_account(doc, own)}:role/anyone"
    if allowed(wild, outsider, "kms:CreateGrant", view.key_arn, context=ctx_false, iam_allow_all=True):
        offenders.append("*")
    if offenders:
        return failed("kms:CreateGrant is allowed without kms:GrantIsForAWSResource for " + ", ".join(offenders))
    return passed("grants can be created only for AWS resources")
