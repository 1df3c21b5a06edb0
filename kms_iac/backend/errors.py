"""KMS error types, named and shaped as AWS KMS sends them.

Clients (boto3, the AWS CLI, the Encryption SDK) branch on ``__type`` and tests match
on ``message``, so every failure the backend can produce is one of these classes.
"""

from __future__ import annotations


class KMSError(Exception):
    """A KMS error answered as HTTP ``status`` with ``{"__type": code, "message": ...}``."""

    code = "KMSInternalException"
    status = 400

    def __init__(self, message: str | None = None) -> None:
        """``None`` (the default) sends no ``message`` member at all, as AWS does for errors it
        answers without one (KMSInvalidSignatureException, KMSInvalidMacException,
        InvalidCiphertextException): botocore then shows an empty Error.Message and no
        top-level ``message``."""
        super().__init__(message or "")
        self.message = message

    def to_body(self) -> dict:
        body: dict = {"__type": self.code}
        if self.message is not None:
            body["message"] = self.message
        return body


def _error(name: str, status: int = 400) -> type[KMSError]:
    return type(name, (KMSError,), {"code": name, "status": status, "__doc__": f"AWS KMS {name}."})


NotFoundException = _error("NotFoundException")
DisabledException = _error("DisabledException")
KMSInvalidStateException = _error("KMSInvalidStateException")
InvalidCiphertextException = _error("InvalidCiphertextException")
IncorrectKeyException = _error("IncorrectKeyException")
ValidationException = _error("ValidationException")
AlreadyExistsException = _error("AlreadyExistsException")
InvalidAliasNameException = _error("InvalidAliasNameException")
MalformedPolicyDocumentException = _error("MalformedPolicyDocumentException")
LimitExceededException = _error("LimitExceededException")
UnsupportedOperationException = _error("UnsupportedOperationException")
InvalidKeyUsageException = _error("InvalidKeyUsageException")
InvalidArnException = _error("InvalidArnException")
InvalidMarkerException = _error("InvalidMarkerException")
InvalidGrantTokenException = _error("InvalidGrantTokenException")
InvalidGrantIdException = _error("InvalidGrantIdException")
TagException = _error("TagException")
AccessDeniedException = _error("AccessDeniedException")
NotAuthorizedException = _error("NotAuthorizedException")
DryRunOperationException = _error("DryRunOperationException")
ThrottlingException = _error("ThrottlingException")
SerializationException = _error("SerializationException")
UnknownOperationException = _error("UnknownOperationException")
UnrecognizedClientException = _error("UnrecognizedClientException")
InvalidSignatureException = _error("InvalidSignatureException")
IncompleteSignature = _error("IncompleteSignature")
MissingAuthenticationTokenException = _error("MissingAuthenticationTokenException")
RequestEntityTooLargeException = _error("RequestEntityTooLargeException", 413)
KMSInternalException = _error("KMSInternalException", 500)
InvalidImportTokenException = _error("InvalidImportTokenException")
ExpiredImportTokenException = _error("ExpiredImportTokenException")
IncorrectKeyMaterialException = _error("IncorrectKeyMaterialException")
CustomKeyStoreNotFoundException = _error("CustomKeyStoreNotFoundException")
CustomKeyStoreNameInUseException = _error("CustomKeyStoreNameInUseException")
CustomKeyStoreInvalidStateException = _error("CustomKeyStoreInvalidStateException")
CustomKeyStoreHasCMKsException = _error("CustomKeyStoreHasCMKsException")
CloudHsmClusterNotFoundException = _error("CloudHsmClusterNotFoundException")
CloudHsmClusterInUseException = _error("CloudHsmClusterInUseException")
CloudHsmClusterNotRelatedException = _error("CloudHsmClusterNotRelatedException")
CloudHsmClusterNotActiveException = _error("CloudHsmClusterNotActiveException")
CloudHsmClusterInvalidConfigurationException = _error("CloudHsmClusterInvalidConfigurationException")
IncorrectTrustAnchorException = _error("IncorrectTrustAnchorException")
KMSInvalidSignatureException = _error("KMSInvalidSignatureException")
KMSInvalidMacException = _error("KMSInvalidMacException")
