"""KMS008: a disabled key."""

from __future__ import annotations

from kms_iac.rules.applicability import customer_managed_na
from kms_iac.rules.registry import failed, not_applicable, passed, rule


@rule("KMS008", severity="LOW",
      title="Key is enabled",
      rationale="A disabled key refuses all cryptographic use: data under it cannot be read until it is "
                "enabled again; a key kept disabled is often one meant for deletion.",
      remediation="Enable the key (EnableKey / is_enabled=True), or schedule its deletion if it is unused.")
def check(view, config):
    na = customer_managed_na(view)
    if na:
        return na
    state = view.key_state
    if view.pending_deletion or state == "PendingDeletion":
        return not_applicable("key is pending deletion (KMS003)")
    if state in ("PendingImport", "Creating", "Unavailable", "PendingReplicaDeletion", "Updating"):
        return not_applicable(f"key is {state}, neither enabled nor disabled")
    if state == "Disabled" or (state is None and view.enabled is False):
        return failed("key is disabled")
    if state is None and view.enabled is None:
        return not_applicable("key state unknown from this source")
    return passed("key is enabled")
