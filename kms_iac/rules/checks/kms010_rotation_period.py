"""KMS010: rotation period no longer than the configured maximum."""

from __future__ import annotations

from kms_iac.rules.applicability import rotation_na
from kms_iac.rules.registry import failed, not_applicable, passed, rule


@rule("KMS010", severity="LOW",
      title="Rotation period is at most the configured maximum",
      rationale="A long rotation period lets one material version protect more data for longer.",
      remediation="Set RotationPeriodInDays (rotation_period_in_days) to at most the configured maximum "
                  "(365 days by default).")
def check(view, config):
    na = rotation_na(view)
    if na:
        return na
    if not view.rotation_enabled:
        return not_applicable("automatic rotation is not enabled (KMS002)")
    period = view.rotation_period_days or 365  # KMS's default period
    maximum = config.max_rotation_period_days
    if period > maximum:
        return failed(f"rotation period is {period} days, above the maximum of {maximum}")
    return passed(f"rotation period is {period} days")
