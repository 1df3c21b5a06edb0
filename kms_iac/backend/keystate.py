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
CREATING = "Creating"  # a new multi-Region replica, for a few seconds (see transitions.py)
UPDATING = "Updating"  # both keys of an UpdatePrimaryRegion, for a few seconds

Refusal = Callable[[KeyRecord], KMSError]


def _disabled(k: KeyRecord) -> KMSError:
    return DisabledException(f"{k.arn} is disabled.")


def _pending_deletion(k: KeyRecord) -> KMSError:
    return KMSInvalidStateException(f"{k.arn} is pending deletion.")


def _pending_import(k: KeyRecord) -> KMSError:
    return KMSInvalidStateException(f"{k.arn} is pending import.")


def _unavailable(k: KeyRecord) -> KMSError:
    return KMSInvalidStateException(f"{k.arn} is unavailable.")


def _creating(k: KeyRecord) -> KMSError:
    return KMSInvalidStateException(f"{k.arn} is creating.")


def _updating(k: KeyRecord) -> KMSError:
    return KMSInvalidStateException(f"{k.arn} is updating.")


def _origin_external(k: KeyRecord) -> KMSError:
    return UnsupportedOperationException(f"{k.arn} origin is EXTERNAL which is not valid for this operation.")


def _not_pending_deletion(k: KeyRecord) -> KMSError:
    return KMSInvalidStateException(f"{k.arn} is not pending deletion.")


# A replica being created can be read but not used or managed; keys being updated
# (UpdatePrimaryRegion) stay usable, but "you cannot replicate the new primary key or perform
# certain management operations, such as enabling or disabling these keys" (API reference).
_CRYPTO = {DISABLED: _disabled, PENDING_IMPORT: _pending_import, PENDING_DELETION: _pending_deletion, UNAVAILABLE: _unavailable,
           CREATING: _creating}
_ENABLEMENT = {PENDING_IMPORT: _pending_import, PENDING_DELETION: _pending_deletion, CREATING: _creating, UPDATING: _updating}
_ROTATION = {DISABLED: _disabled, PENDING_IMPORT: _origin_external, PENDING_DELETION: _pending_deletion, UNAVAILABLE: _unavailable,
             CREATING: _creating, UPDATING: _updating}
_NOT_WHILE_DELETING = {PENDING_DELETION: _pending_deletion, CREATING: _creating}
_MULTI_REGION = {PENDING_DELETION: _pending_deletion, CREATING: _creating, UPDATING: _updating}
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
    "CreateGrant": {DISABLED: _disabled, PENDING_IMPORT: _pending_import, PENDING_DELETION: _pending_deletion,
                    CREATING: _creating},
    # management
    "EnableKey": _ENABLEMENT,
    "DisableKey": _ENABLEMENT,
    "EnableKeyRotation": _ROTATION,
    "DisableKeyRotation": _ROTATION,
    "RotateKeyOnDemand": {**_ROTATION, PENDING_IMPORT: _pending_import},
    "GetKeyRotationStatus": {PENDING_IMPORT: _origin_external, UNAVAILABLE: _unavailable},
    "ScheduleKeyDeletion": {PENDING_DELETION: _pending_deletion, CREATING: _creating, UPDATING: _updating},
    "CancelKeyDeletion": {ENABLED: _not_pending_deletion, DISABLED: _not_pending_deletion,
                          PENDING_IMPORT: _not_pending_deletion, UNAVAILABLE: _not_pending_deletion,
                          CREATING: _not_pending_deletion, UPDATING: _not_pending_deletion},
    "CreateAlias": _NOT_WHILE_DELETING,
    "UpdateAlias": _NOT_WHILE_DELETING,
    "TagResource": _NOT_WHILE_DELETING,
    "UntagResource": _NOT_WHILE_DELETING,
    "UpdateKeyDescription": _NOT_WHILE_DELETING,
    "ReplicateKey": _MULTI_REGION,
    "UpdatePrimaryRegion": _MULTI_REGION,
    "ImportKeyMaterial": _NOT_WHILE_DELETING,
    "GetParametersForImport": _NOT_WHILE_DELETING,
    # "When the specified KMS key is in the PendingDeletion state, this operation does not change
    # the KMS key's state" (API reference): allowed then.
    "DeleteImportedKeyMaterial": {CREATING: _creating},
}


def check(operation: str, key: KeyRecord) -> None:
    """Raise the error AWS answers when ``operation`` meets ``key`` in its current state."""
    refusal = TABLE.get(operation, _ANY).get(key.state)
    if refusal is not None:
        raise refusal(key)
