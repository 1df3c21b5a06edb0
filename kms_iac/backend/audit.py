"""CloudTrail-format audit log: one JSON object a line, appended to ``audit.log``.

Every call, allowed or refused, is recorded. Plaintext, data keys and ciphertexts are
never written: request and response parameters pass through an allow-list per field.
One ``os.write`` per record on an ``O_APPEND`` descriptor keeps lines whole when a
server and embedded clients append to the same file.
"""

from __future__ import annotations

import os
from functools import lru_cache

import orjson
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from kms_iac.backend.context import RequestContext

AUDIT_FILE = "audit.log"

# Fields that may hold secrets or bulky binary: never logged.
_SECRET_FIELDS = {
    "Plaintext", "CiphertextBlob", "CiphertextForRecipient", "Recipient", "KeyMaterial", "ImportToken",
    "PublicKey", "PrivateKeyPlaintext", "PrivateKeyCiphertextBlob", "Message", "Signature", "Mac",
    "KeyStorePassword", "TrustAnchorCertificate", "XksProxyAuthenticationCredential", "SharedSecret",
    "SharedSecretCiphertextBlob",
    "GrantToken", "GrantTokens",
}
# Operations whose responseElements CloudTrail records as null (data-plane calls).
_NULL_RESPONSE = {
    "Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateRandom",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "Sign", "Verify", "GenerateMac", "VerifyMac",
    "DescribeKey", "GetKeyPolicy", "GetKeyRotationStatus", "ListKeys", "ListAliases", "ListKeyPolicies",
    "ListResourceTags", "ListGrants", "ListRetirableGrants", "ListKeyRotations", "GetKeyLastUsage", "GetPublicKey",
    "DeriveSharedSecret", "Encapsulate", "Decapsulate",
}
_READ_ONLY_PREFIXES = ("Describe", "Get", "List", "Encrypt", "Decrypt", "ReEncrypt", "Generate", "Sign", "Verify",
                       "DeriveSharedSecret", "Encapsulate", "Decapsulate")


def scrub(value: Any) -> Any:
    """Copy of a request/response document with secret fields removed and timestamps as ISO text."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in _SECRET_FIELDS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, bytes):
        return None
    return value


def iso(epoch: float) -> str:
    return _iso_second(int(epoch))


@lru_cache(maxsize=64)
def _iso_second(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# Maps whose keys are the caller's own data: CloudTrail logs them verbatim.
_VERBATIM_MAPS = {
    "EncryptionContext", "SourceEncryptionContext", "DestinationEncryptionContext",
    "EncryptionContextSubset", "EncryptionContextEquals",
}


def _lower_first(d: Any) -> Any:
    if isinstance(d, dict):
        return {(k[:1].lower() + k[1:]): (v if k in _VERBATIM_MAPS else _lower_first(v)) for k, v in d.items()}
    if isinstance(d, list):
        return [_lower_first(v) for v in d]
    return d


def _identity(ctx: RequestContext) -> dict[str, Any]:
    """CloudTrail's userIdentity. A request refused before its signature was verified is
    ``{"type": "Unknown", "accessKeyId": <the one it presented>}``: who it claimed to be, with no
    account or ARN, since nothing was proven."""
    if ctx.principal_type == "Unknown":
        return {"type": "Unknown", "accessKeyId": ctx.access_key_id}
    return {
        "type": ctx.principal_type,
        "principalId": ctx.account if ctx.principal_type == "Root" else ctx.access_key_id,
        "arn": ctx.principal_arn,
        "accountId": ctx.account,
        "accessKeyId": ctx.access_key_id,
    }


class AuditLog:
    """Appends CloudTrail records to the data dir's audit log."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / AUDIT_FILE
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()

    def record(
        self,
        ctx: RequestContext,
        operation: str,
        when: float,
        request: dict | None,
        response: dict | None,
        error_code: str | None = None,
        error_message: str | None = None,
        resources: list[str] | None = None,
    ) -> None:
        event: dict[str, Any] = {
            "eventVersion": "1.08",
            "userIdentity": _identity(ctx),
            "eventTime": iso(when),
            "eventSource": "kms.amazonaws.com",
            "eventName": operation,
            "awsRegion": ctx.region,
            "sourceIPAddress": ctx.source_ip,
            "userAgent": ctx.user_agent,
            "requestParameters": _lower_first(scrub(request)) if request else None,
            "responseElements": None if (error_code or operation in _NULL_RESPONSE or not response) else _lower_first(scrub(response)),
            "requestID": ctx.request_id,
            "eventID": ctx.event_id,
            "readOnly": operation.startswith(_READ_ONLY_PREFIXES),
            "resources": [{"accountId": a.split(":")[4], "type": "AWS::KMS::Key", "ARN": a} for a in (resources or [])],
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": ctx.account,
            "eventCategory": "Management",
        }
        if error_code:
            event["errorCode"] = error_code
            event["errorMessage"] = error_message or ""
        line = orjson.dumps(event, default=str) + b"\n"
        with self._lock:
            os.write(self._fd, line)

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass


def read_events(data_dir: Path, skipped: list[int] | None = None) -> Iterator[dict]:
    """The audit log's records, oldest first. A line that is not a JSON object (torn by a crash
    mid-write, or not written by kms-iac at all: not even UTF-8) is skipped; its line number is
    appended to ``skipped`` when given, so a reader can say how much it could not show."""
    path = data_dir / AUDIT_FILE
    if not path.exists():
        return
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                event = None
            if isinstance(event, dict):
                yield event
            elif skipped is not None:
                skipped.append(number)
