"""GenerateRandom: random bytes from the operating system's CSPRNG."""

from __future__ import annotations

from kms_iac.backend.core import Call
from kms_iac.backend.entropy import random_bytes
from kms_iac.backend.errors import ValidationException
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.encryption import refuse_recipient


@operation("GenerateRandom")
def generate_random(call: Call, params: dict) -> dict:
    n = params.get("NumberOfBytes")
    if n is None:
        raise ValidationException("NumberOfBytes is required.")
    refuse_recipient(params)
    if params.get("CustomKeyStoreId"):  # random bytes from the CloudHSM key store's token
        from kms_iac.backend.ops.custom_key_stores import hsm_random

        return {"Plaintext": hsm_random(call, params["CustomKeyStoreId"], n)}
    return {"Plaintext": random_bytes(n)}
