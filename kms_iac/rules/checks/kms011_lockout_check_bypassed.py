"""KMS011: BypassPolicyLockoutSafetyCheck."""

from __future__ import annotations

from kms_iac.rules.applicability import customer_managed_na
from kms_iac.rules.registry import failed, not_applicable, passed, rule


@rule("KMS011", severity="HIGH",
      title="The policy lockout safety check is not bypassed",
      rationale="The safety check refuses a policy that would stop the caller from changing it again; "
                "bypassing it is how keys become unmanageable.",
      remediation="Remove BypassPolicyLockoutSafetyCheck (bypass_policy_lockout_safety_check) and fix the policy "
                   "so that the check passes.")
def check(view, config):
    na = customer_managed_na(view)
    if na:
        return na
    if view.bypass_lockout is None:
        return not_applicable("whether the check was bypassed is not visible from this source")
    if view.bypass_lockout:
        return failed("BypassPolicyLockoutSafetyCheck is set")
    return passed("the lockout safety check is not bypassed")
