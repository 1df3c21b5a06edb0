"""KMS014: RSA encryption keys of at least 3072 bits; asymmetric keys above the minimum."""

from __future__ import annotations

import re

from kms_iac.rules.applicability import customer_managed_na
from kms_iac.rules.registry import failed, not_applicable, passed, rule

_RSA = re.compile(r"^RSA_(\d+)$")
RSA_ENCRYPTION_MINIMUM = 3072


@rule("KMS014", severity="MEDIUM",
      title="Asymmetric keys are strong enough for their use",
      rationale="RSA-2048 used for encryption falls short of the 128-bit security level that NIST SP 800-57 "
                "asks of data protected beyond 2030; RSA sizes below the configured minimum are refused outright.",
      remediation="Use RSA_3072 or RSA_4096 for ENCRYPT_DECRYPT keys, or an ECC key spec for signing.")
def check(view, config):
    na = customer_managed_na(view)
    if na:
        return na
    m = _RSA.match(view.key_spec or "")
    if not m:
        return not_applicable(f"{view.key_spec} is not an RSA key spec")
    bits = int(m.group(1))
    if view.key_usage == "ENCRYPT_DECRYPT" and bits < RSA_ENCRYPTION_MINIMUM:
        return failed(f"{view.key_spec} is used for encryption; use at least RSA_{RSA_ENCRYPTION_MINIMUM}")
    if bits < config.min_rsa_bits:
        return failed(f"{view.key_spec} is below the configured minimum of {config.min_rsa_bits} bits")
    return passed(f"{view.key_spec} for {view.key_usage}")
