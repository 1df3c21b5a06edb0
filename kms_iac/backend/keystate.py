"""AWS's key-state table, in one place.

For each operation that uses an existing key: which key states refuse it and with
which error. (AWS developer guide, "Key states of AWS KMS keys".) States not listed
for an operation allow it.
"""

from __future__ import annotations

from typing import Callable

from kms_iac.backend.errors import DisabledException, KMSError, KMSInvalidStateException, UnsupportedOperationException
from kms_iac.backend.store import KeyRecord

ENABLED = "Enabled"
DISABLED = "Disabled"
PENDING_DELETION = "PendingDeletion"
PENDING_IMPORT = "PendingImport"
UNAVAILABLE = "Unavailable"

Refusal = Callable[[KeyRecord], KMSError]


def _disabled(k: KeyRecord) -> KMSError:
    return DisabledException(f"{k.arn} is disabled.")


def _pending_deletion(k: KeyRecord) -> KMSError:
    return KMSInvalidStateException(f"{k.arn} is pending deletion.")


def _pending_import(k: KeyRecord) -> KMSError:
    return KMSInvalidStateException(f"{k.arn} is pending import.")


def _unavailable(k: KeyRecord) -> KMSError:
    return KMSInvalidStateException(f"{k.arn} is unavailable.")


def _origin_external(k: KeyRecord) -> KMSError:
    return UnsupportedOperationException(f"{k.arn} origin is EXTERNAL which is not valid for this operation.")


def _not_pending_deletion(k: KeyRecord) -> KMSError:
    return KMSInvalidStateException(f"{k.arn} is not pending deletion.")


_CRYPTO = {DISABLED: _disabled, PENDING_IMPORT: _pending_import, PENDING_DELETION: _pending_deletion, UNAVAILABLE: _unavailable}
_ENABLEMENT = {PENDING_IMPORT: _pending_import, PENDING_DELETION: _pending_deletion}
_ROTATION = {DISABLED: _disabled, PENDING_IMPORT: _origin_external, PENDING_DELETION: _pending_deletion, UNAVAILABLE: _unavailable}
_NOT_WHILE_DELETING = {PENDING_DELETION: _pending_deletion}
_ANY: dict[str, Refusal] = {}

TABLE: dict[str, dict[str, Refusal]] = {
    # cryptographic use
    "Encrypt": _CRYPTO,
    "Decrypt": _CRYPTO,
    "ReEncrypt": _CRYPTO,
    "ReEncryptFrom": _CRYPTO,
    "ReEncryptTo": _CRYPTO,
    "GenerateDataKey": _CRYPTO,
    "GenerateDataKeyWithoutPlaintext": _CRYPTO,
    "GenerateDataKeyPair": _CRYPTO,
    "GenerateDataKeyPairWithoutPlaintext": _CRYPTO,
    "GenerateMac": _CRYPTO,
    "VerifyMac": _CRYPTO,
    "Sign": _CRYPTO,
    "Verify": _CRYPTO,
    "GetPublicKey": _CRYPTO,
    "DeriveSharedSecret": _CRYPTO,
    "Encapsulate": _CRYPTO,
    "Decapsulate": _CRYPTO,
    "CreateGrant": {DISABLED: _disabled, PENDING_IMPORT: _pending_import, PENDING_DELETION: _pending_deletion},
    # management
    "EnableKey": _ENABLEMENT,
    "DisableKey": _ENABLEMENT,
    "EnableKeyRotation": _ROTATION,
    "DisableKeyRotation": _ROTATION,
    "RotateKeyOnDemand": _ROTATION,
    "GetKeyRotationStatus": {PENDING_IMPORT: _origin_external, UNAVAILABLE: _unavailable},
    "ScheduleKeyDeletion": {PENDING_DELETION: _pending_deletion},
    "CancelKeyDeletion": {ENABLED: _not_pending_deletion, DISABLED: _not_pending_deletion,
                          PENDING_IMPORT: _not_pending_deletion, UNAVAILABLE: _not_pending_deletion},
    "CreateAlias": _NOT_WHILE_DELETING,
    "UpdateAlias": _NOT_WHILE_DELETING,
    "TagResource": _NOT_WHILE_DELETING,
    "UntagResource": _NOT_WHILE_DELETING,
    "UpdateKeyDescription": _NOT_WHILE_DELETING,
    "ReplicateKey": _NOT_WHILE_DELETING,
    "ImportKeyMaterial": _NOT_WHILE_DELETING,
    "GetParametersForImport": _NOT_WHILE_DELETING,
    "DeleteImportedKeyMaterial": _NOT_WHILE_DELETING,
}


def check(operation: str, key: KeyRecord) -> None:
    """Raise the error AWS answers when ``operation`` meets ``key`` in its current state."""
    refusal = TABLE.get(operation, _ANY).get(key.state)
    if refusal is not None:
        raise refusal(key)
