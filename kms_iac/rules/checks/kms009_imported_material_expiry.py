"""KMS009: imported key material that expires or has expired."""

from __future__ import annotations

from kms_iac.rules.applicability import customer_managed_na
from kms_iac.rules.registry import failed, not_applicable, passed, rule


@rule("KMS009", severity="MEDIUM",
      title="Imported key material does not expire",
      rationale="When imported material expires KMS deletes it and the key becomes unusable until the same "
                "material is imported again.",
      remediation="Import the material with ExpirationModel KEY_MATERIAL_DOES_NOT_EXPIRE (no valid_to), or "
                  "re-import it before it expires and track the date.")
def check(view, config):
    na = customer_managed_na(view)
    if na:
        return na
    if view.origin != "EXTERNAL":
        return not_applicable("key material is not imported")
    if view.material_expired:
        return failed("imported key material has expired; the key is unusable until it is imported again")
    if view.valid_to is not None:
        return failed(f"imported key material expires on {view.valid_to:%Y-%m-%d %H:%M} UTC")
    return passed("imported key material does not expire")
