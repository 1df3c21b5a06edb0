"""KMS003: a key scheduled for deletion (live) or a change that would delete one (gate)."""

from __future__ import annotations

from kms_iac.rules.applicability import customer_managed_na
from kms_iac.rules.registry import failed, passed, rule


@rule("KMS003", severity="HIGH", config_rule="kms-cmk-not-scheduled-for-deletion",
      title="Key is not scheduled for deletion",
      rationale="Once the waiting period ends the key material is gone and everything encrypted under it "
                "is unrecoverable.",
      remediation="Cancel the deletion (CancelKeyDeletion) if the key is still needed, or allow the "
                  "deletion explicitly (kms-iac:allowKeyDeletion for the Pulumi gate, a suppression with "
                  "a reason for scans).")
def check(view, config):
    na = customer_managed_na(view)
    if na:
        return na
    if view.pending_deletion:
        when = f" on {view.deletion_date:%Y-%m-%d}" if view.deletion_date else ""
        verb = "is scheduled for deletion" if view.source == "live" else "would be deleted by this change"
        return failed(f"key {verb}{when}")
    return passed("key is not scheduled for deletion")
