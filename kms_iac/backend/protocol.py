"""The KMS JSON 1.1 wire protocol, shared by the HTTP server and the embedded client.

Both front doors hand raw headers and body bytes to :func:`handle_http`, so a request
gets the same answer, byte for byte, whichever door it came through.
"""

from __future__ import annotations

import binascii
import logging
import threading

import orjson
from typing import Mapping

from kms_iac.backend.core import Backend, Offload
from kms_iac.backend.signature import AUTHENTICATION_ERRORS, unauthenticated
from kms_iac.backend.errors import (
    KMSError,
    KMSInternalException,
    SerializationException,
    UnknownOperationException,
    ValidationException,
)

log = logging.getLogger("kms_iac.backend")
TARGET_PREFIX = "TrentService."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 1024 * 1024


def _json_default(value: object) -> str:
    """Blobs as base64 text, as the JSON protocol sends them (binascii: no base64 module wrapper)."""
    if isinstance(value, (bytes, bytearray)):
        return binascii.b2a_base64(value, newline=False).decode("ascii")
    raise TypeError(type(value).__name__)


def encode(doc: dict) -> bytes:
    return orjson.dumps(doc, default=_json_default)


def error_response(err: KMSError, request_id: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id}
    return err.status, headers, encode(err.to_body())


def lower_headers(headers: Mapping[str, str] | list[tuple[str, str]]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k.lower(): v for k, v in items}


def handle_http(
    backend: Backend,
    headers: Mapping[str, str],
    body: bytes,
    source_ip: str = "127.0.0.1",
    method: str = "POST",
    path: str = "/",
) -> tuple[int, dict[str, str], bytes]:
    """Answer one HTTP request: (status, headers, body). Never raises (but see :func:`answer`)."""
    return answer(backend, lower_headers(headers), body, source_ip, method, path)


def answer(
    backend: Backend,
    h: dict[str, str],
    body: bytes,
    source_ip: str = "127.0.0.1",
    method: str = "POST",
    path: str = "/",
    heavy: set | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """:func:`handle_http` with the header names already lower-cased (the server's fast path).

    Raises :class:`~kms_iac.backend.core.Offload` only where the backend has an event loop to
    keep free (``backend.offload_from``): the server then calls it again on a pool thread.
    ``heavy``: the server's set of (operation, KeyId) that went to the pool before; such a
    request is sent there straight after its JSON is read, skipping a first run that would
    only end in Offload."""
    ctx = backend.request_context(source_ip, h.get("user-agent", ""), h.get("x-kms-iac-source-vpce"))
    operation = ""
    doc: dict = {}
    try:
        if method != "POST":
            raise UnknownOperationException(None)
        if len(body) > MAX_BODY_BYTES:
            raise ValidationException(f"Request body of {len(body)} bytes exceeds the maximum of {MAX_BODY_BYTES} bytes.")
        target = h.get("x-amz-target", "")
        if not target.startswith(TARGET_PREFIX):
            raise UnknownOperationException(None)
        operation = target[len(TARGET_PREFIX):]
        try:
            ctx = backend.authenticate(ctx, h, method, path, body)
        except KMSError as err:  # refused before dispatch: still a call the audit log must show
            if err.code in AUTHENTICATION_ERRORS:  # as the caller it claimed to be (not a bad via-service header)
                ctx = unauthenticated(ctx, h)
            backend.audit.record(ctx, operation, backend.clock.now(), None, None, err.code, err.message)
            raise
        try:
            doc = orjson.loads(body) if body.strip() else {}
        except (orjson.JSONDecodeError, RecursionError):
            raise SerializationException("Malformed JSON: the request body could not be parsed.") from None
        if not isinstance(doc, dict):
            raise SerializationException("Expected a JSON object as the request body.")
        if heavy and isinstance(doc.get("KeyId"), str) and (operation, doc["KeyId"]) in heavy \
                and threading.get_ident() == backend.offload_from:
            raise Offload()
        result = backend.handle(operation, doc, ctx)
        return 200, {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": ctx.request_id}, encode(result)
    except KMSError as err:
        return error_response(err, ctx.request_id)
    except Offload:
        if heavy is not None:
            if len(heavy) >= 4096:
                heavy.clear()
            key_id = doc.get("KeyId")
            if isinstance(key_id, str):
                heavy.add((operation, key_id))
        raise
    except Exception:  # a failure outside the dispatcher's own net (e.g. the audit log): still a KMS answer
        log.exception("internal error answering %s", h.get("x-amz-target", ""))
        return error_response(KMSInternalException("An internal error has occurred."), ctx.request_id)
