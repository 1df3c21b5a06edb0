"""KMS007: deletion window at least the configured minimum."""

from __future__ import annotations

from kms_iac.rules.applicability import customer_managed_na
from kms_iac.rules.registry import failed, not_applicable, passed, rule


@rule("KMS007", severity="LOW",
      title="Deletion window is at least the configured minimum",
      rationale="The waiting period is the only time in which a mistaken deletion can be cancelled.",
      remediation="Set the deletion window (PendingWindowInDays / deletion_window_in_days) to at least the "
                  "configured minimum (30 days by default, the most KMS allows).")
def check(view, config):
    na = customer_managed_na(view)
    if na:
        return na
    if view.deletion_window_days is None:
        return not_applicable("no deletion window is set or known for this key")
    minimum = config.min_deletion_window_days
    if view.deletion_window_days < minimum:
        return failed(f"deletion window is {view.deletion_window_days} days, below the minimum of {minimum}")
    return passed(f"deletion window is {view.deletion_window_days} days")
