"""GenerateRandom: random bytes from the operating system's CSPRNG."""

from __future__ import annotations

import os

from kms_iac.backend.core import Call
from kms_iac.backend.errors import UnsupportedOperationException, ValidationException
from kms_iac.backend.ops import operation


@operation("GenerateRandom")
def generate_random(call: Call, params: dict) -> dict:
    if params.get("CustomKeyStoreId"):
        raise UnsupportedOperationException("Custom key stores are not supported by the kms-iac local backend yet.")
    n = params.get("NumberOfBytes")
    if n is None:
        raise ValidationException("NumberOfBytes is required.")
    return {"Plaintext": os.urandom(n)}
