"""KMS015: multi-Region keys (advisory)."""

from __future__ import annotations

from kms_iac.rules.applicability import customer_managed_na
from kms_iac.rules.registry import failed, not_applicable, passed, rule


@rule("KMS015", severity="INFO",
      title="Key is single-Region",
      rationale="Replicas of a multi-Region key share its material, so the material lives, and can be used, "
                "wherever a replica is; that is sometimes the point, and always worth knowing.",
      remediation="Create single-Region keys unless cross-Region decryption is required; suppress this "
                  "finding with a reason for the keys where it is.")
def check(view, config):
    na = customer_managed_na(view)
    if na:
        return na
    if view.multi_region is None:  # e.g. a Pulumi preview where multiRegion depends on another resource
        return not_applicable("whether the key is multi-Region is not known yet")
    if view.multi_region:
        return failed("multi-Region key: its material is shared with every replica")
    return passed("single-Region key")
