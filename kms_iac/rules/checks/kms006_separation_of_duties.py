"""KMS006: no principal both administers and uses the key."""

from __future__ import annotations

from kms_iac.policy.analysis import ADMIN_ACTIONS, first_allowed, named_principals, principal_account, root_arn, use_actions_for
from kms_iac.rules.applicability import account, key_policy
from kms_iac.rules.registry import failed, passed, rule


@rule("KMS006", severity="MEDIUM",
      title="Separation of duties between key administrators and key users",
      rationale="A principal that can both change the key (policy, state, deletion) and use it for "
                "cryptography can grant itself anything and erase the trail; the roles belong to different people.",
      remediation="Give key administrators management actions only and key users cryptographic actions only.")
def check(view, config):
    doc, na = key_policy(view)
    if na:
        return na
    own = account(view)
    both = []
    for arn in named_principals(doc):
        if arn == root_arn(own) or arn.endswith(":root"):
            continue  # the account root stands for IAM delegation, not a person (KMS001)
        foreign = principal_account(arn) != own
        admin = first_allowed(doc, arn, ADMIN_ACTIONS, view.key_arn, iam_allow_all=foreign)
        use = first_allowed(doc, arn, use_actions_for(view.key_usage), view.key_arn,
                            iam_allow_all=foreign) if admin else None
        if admin and use:
            both.append(f"{arn} ({admin} and {use})")
    if both:
        return failed("principals both administer and use the key: " + "; ".join(both))
    return passed("no principal named in the policy both administers and uses the key")
