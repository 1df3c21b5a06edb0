"""KMS002: automatic rotation on symmetric, KMS-generated customer managed keys."""

from __future__ import annotations

from kms_iac.rules.applicability import rotation_na
from kms_iac.rules.registry import failed, not_applicable, passed, rule


@rule("KMS002", severity="MEDIUM", config_rule="cmk-backing-key-rotation-enabled",
      title="Automatic key rotation is enabled",
      rationale="Rotation adds new key material on a schedule and keeps the old for decryption, "
                "limiting how much data one material version protects.",
      remediation="Enable automatic rotation (EnableKeyRotation / enable_key_rotation=True).")
def check(view, config):
    na = rotation_na(view)
    if na:
        return na
    if view.pending_deletion:
        return not_applicable("key is pending deletion")
    if view.rotation_enabled:
        return passed("automatic rotation is enabled")
    if view.rotation_enabled is None:
        return not_applicable("rotation status unknown from this source")
    return failed("automatic rotation is disabled on a symmetric customer managed key")
