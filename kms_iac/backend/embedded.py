"""The embedded front door: a real boto3 KMS client answered in-process, no server.

botocore's ``before-send`` event lets a handler return the HTTP response instead of
sending the request; the handler passes the signed request's headers and body to the
same :func:`handle_http` the server uses. Everything above the wire (serialization,
signing, error parsing, retries, paginators, waiters) is boto3's own.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.config
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

from kms_iac.backend.core import DEFAULT_ACCOUNT, DEFAULT_REGION, Backend, default_data_dir
from kms_iac.backend.protocol import handle_http

EMBEDDED_ENDPOINT = "http://kms-iac.embedded"
_backends: dict[tuple[str, str], Backend] = {}
_backends_lock = threading.Lock()


class _RawBody(io.BytesIO):
    """The raw stream botocore reads a response body from."""

    def stream(self, **_kw: Any):
        contents = self.read()
        while contents:
            yield contents
            contents = self.read()


def shared_backend(data_dir: Path | str | None = None, account: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION,
                   principals: Any = None) -> Backend:
    """One Backend per data dir and account in this process, shared by its embedded clients.

    ``principals`` (a principals file path, a loaded document or a ``Directory``) makes the
    backend verify SigV4 signatures against it, as ``kms-iac local serve --principals`` does.
    """
    path = Path(data_dir) if data_dir is not None else default_data_dir()
    ck = (str(path.resolve()), account)
    with _backends_lock:
        backend = _backends.get(ck)
        if backend is None:
            backend = Backend(path, account=account, region=region)
            _backends[ck] = backend
        if principals is not None:
            from kms_iac.backend.sigv4 import attach_principals

            attach_principals(backend, principals)
        return backend


class _Responder:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def __call__(self, request: AWSPreparedRequest, **_kw: Any) -> AWSResponse:
        body = request.body or b""
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
        if not any(k.lower() == "host" for k in headers):  # what the HTTP client would send (and botocore signed)
            headers["Host"] = urlsplit(request.url).netloc
        status, rheaders, rbody = handle_http(self.backend, headers, body, "127.0.0.1", request.method or "POST", "/")
        return AWSResponse(request.url, status, rheaders, _RawBody(rbody))


def embedded_client(
    data_dir: Path | str | None = None,
    *,
    region: str = DEFAULT_REGION,
    account: str = DEFAULT_ACCOUNT,
    backend: Backend | None = None,
    session: boto3.session.Session | None = None,
    aws_access_key_id: str = "AKIAKMSIACEMBEDDED01",
    aws_secret_access_key: str = "kms-iac-embedded",
    aws_session_token: str | None = None,
    config: botocore.config.Config | None = None,
    principals: Any = None,
):
    """A boto3 KMS client served by the local backend in this process (no network).

    With ``principals`` (a principals file path, document or ``Directory``) the backend verifies
    signatures against it; pass that principal's ``aws_access_key_id``/``aws_secret_access_key``.
    """
    if backend is None:
        backend = shared_backend(data_dir, account, region, principals=principals)
    elif principals is not None:
        from kms_iac.backend.sigv4 import attach_principals

        attach_principals(backend, principals)
    session = session or boto3.session.Session()
    client = session.client(
        "kms",
        region_name=region,
        endpoint_url=EMBEDDED_ENDPOINT,
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        aws_session_token=aws_session_token,
        config=config or botocore.config.Config(retries={"mode": "standard", "max_attempts": 3}),
    )
    responder = _Responder(backend)
    client.meta.events.register_first("before-send.kms", responder)
    return client


def embedded_session(data_dir: Path | str | None = None, *, account: str = DEFAULT_ACCOUNT,
                     region: str = DEFAULT_REGION) -> botocore.session.Session:
    """A botocore session whose KMS clients are answered by the local backend in-process.

    For libraries that create their own clients from a session (the AWS Encryption SDK's
    key providers take ``botocore_session=``)."""
    import botocore.session

    session = botocore.session.get_session()
    session.set_credentials("AKIAKMSIACEMBEDDED01", "kms-iac-embedded")
    session.set_config_variable("region", region)
    session.get_component("event_emitter").register_first("before-send.kms", _Responder(shared_backend(data_dir, account, region)))
    return session
