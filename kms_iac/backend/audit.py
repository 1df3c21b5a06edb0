"""CloudTrail-format audit log: one JSON object a line, appended to ``audit.log``.

Every call, allowed or refused, is recorded. Plaintext, data keys and ciphertexts are
never written: request and response parameters pass through an allow-list per field.
One ``os.write`` per record on an ``O_APPEND`` descriptor keeps lines whole when a
server and embedded clients append to the same file. A server holds the records of the
requests it answers in one turn of its event loop and writes them with one ``os.write``
(:meth:`AuditLog.hold`, :meth:`AuditLog.flush`) before it sends any of their answers: a
caller never has an answer whose record is not in the file.
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


_MEMBER_NAMES: dict[str, str] = {}  # member name -> CloudTrail's; read inline, a hit costs no call


def _member_name(key: str) -> str:
    name = key[:1].lower() + key[1:]
    if len(_MEMBER_NAMES) < 1024 and len(key) <= 64:  # the API's few hundred names, never a caller's megabyte
        _MEMBER_NAMES[key] = name
    return name


_PLAIN = frozenset({str, int, float, bool, type(None)})  # shown as they are (most members: no call for them)


def _view(value: Any) -> Any:
    """What CloudTrail shows of a request or response: secret and binary members left out, member
    names' first letters lower-cased, and maps of the caller's own keys (encryption contexts)
    shown verbatim. Only serialized, never kept: members are shared, not copied."""
    if isinstance(value, dict):
        names = _MEMBER_NAMES
        return {names.get(k) or _member_name(k): (v if type(v) in _PLAIN or k in _VERBATIM_MAPS else _view(v))
                for k, v in value.items() if k not in _SECRET_FIELDS}
    if isinstance(value, list):
        return [_view(v) for v in value]
    if isinstance(value, bytes):
        return None
    return value


def _identity(ctx: RequestContext) -> dict[str, Any]:
    """CloudTrail's userIdentity. A request refused before its signature was verified is
    ``{"type": "Unknown", "accessKeyId": <the one it presented>}``: who it claimed to be, with no
    account or ARN, since nothing was proven."""
    return _identity_of(ctx.principal_type, ctx.account, ctx.principal_arn, ctx.access_key_id)


@lru_cache(maxsize=1024)
def _identity_of(principal_type: str, account: str, principal_arn: str, access_key_id: str | None) -> dict[str, Any]:
    """One userIdentity per caller, made once (never modified: records only serialize it)."""
    if principal_type == "Unknown":
        return {"type": "Unknown", "accessKeyId": access_key_id}
    return {
        "type": principal_type,
        "principalId": account if principal_type == "Root" else access_key_id,
        "arn": principal_arn,
        "accountId": account,
        "accessKeyId": access_key_id,
    }


@lru_cache(maxsize=256)
def _read_only(operation: str) -> bool:
    return operation.startswith(_READ_ONLY_PREFIXES)


@lru_cache(maxsize=4096)
def _resource(arn: str) -> dict[str, str]:
    return {"accountId": arn.split(":")[4], "type": "AWS::KMS::Key", "ARN": arn}


class AuditLog:
    """Appends CloudTrail records to the data dir's audit log."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / AUDIT_FILE
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lock = threading.Lock()
        self._held: list[bytes] | None = None  # records waiting for flush() (a server's batch)

    def hold(self) -> None:
        """From now on keep records until :meth:`flush` (whoever calls this flushes before answering)."""
        with self._lock:
            if self._held is None:
                self._held = []

    def flush(self) -> None:
        """Write the held records, in the order they were made, with one ``os.write``."""
        with self._lock:
            if self._held:
                lines, self._held = b"".join(self._held), []
                self._write(lines)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # a regular file takes it whole but for a full disk; never drop the rest silently
            view = view[os.write(self._fd, view):]

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
            "requestParameters": _view(request) if request else None,
            "responseElements": None if (error_code or operation in _NULL_RESPONSE or not response) else _view(response),
            "requestID": ctx.request_id,
            "eventID": ctx.event_id,
            "readOnly": _read_only(operation),
            "resources": [_resource(a) for a in resources] if resources else [],
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
            if self._held is not None:
                self._held.append(line)
            else:
                self._write(line)

    def close(self) -> None:
        try:
            self.flush()
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
