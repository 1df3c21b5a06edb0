"""CPU-heavy operations off the server's event loop, and the cache of parsed private keys.

An RSA or ML-DSA operation takes milliseconds (seconds to generate an RSA_4096 key). The
server answers such a request on a thread pool, so every other connection of that worker
keeps being answered meanwhile; requests pipelined behind it on its own connection are
answered after it, in order. These tests hold the heavy step on an event to make "meanwhile"
deterministic, through a real server (an in-process :class:`KmsServer` on a loopback port).

The dispatcher runs an offloaded request once more on the pool thread: the audit log still
has exactly one record of it, with the request id of the answer the client got.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kms_iac.backend import keypairs
from kms_iac.backend.audit import read_events
from kms_iac.backend.core import Backend
from kms_iac.backend.embedded import embedded_client
from kms_iac.backend.server import KmsServer, bind_socket

MESSAGE = b"a message to sign"


class InProcessServer:
    """A KmsServer on its own event loop thread (what ``local serve`` runs in each worker)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        sock = bind_socket("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.server = KmsServer(backend, "127.0.0.1", self.port, sock=sock)
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while self.backend.offload_from is None:  # serve() sets it once it listens
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.server.serve(ready_line=False))
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(lambda: self.task.cancel() if self.task else None)
        self.thread.join(30)
        if self.server.pool is not None:
            self.server.pool.shutdown(wait=True)
        self.backend.offload_from = None

    def request(self, operation: str, params: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
                           for k, v in params.items()}).encode()
        req = AWSRequest("POST", f"http://127.0.0.1:{self.port}/", data=body,
                         headers={"X-Amz-Target": f"TrentService.{operation}",
                                  "Content-Type": "application/x-amz-json-1.1"})
        SigV4Auth(Credentials("AKIDTEST", "secret"), "kms", "us-east-1").add_auth(req)
        return body, {"Host": f"127.0.0.1:{self.port}", **dict(req.headers.items())}

    def call(self, operation: str, params: dict[str, Any], timeout: float = 60) -> tuple[int, dict]:
        body, headers = self.request(operation, params)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", "/", body, headers)
            resp = conn.getresponse()
            return resp.status, {**json.loads(resp.read()), "_request_id": resp.getheader("x-amzn-RequestId")}
        finally:
            conn.close()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    b = Backend(tmp_path / "data")
    yield b
    b.close()


@pytest.fixture
def server(backend: Backend) -> Iterator[InProcessServer]:
    s = InProcessServer(backend)
    yield s
    s.stop()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, threading.Event]]:
    """Hold RSA signing and key generation until released; ``entered`` is set once one waits."""
    events = {"entered": threading.Event(), "release": threading.Event()}
    real_sign, real_generate = keypairs.sign, keypairs.generate_material

    def held(real):
        def run(*args):
            events["entered"].set()
            assert events["release"].wait(60), "the test never released the heavy step"
            return real(*args)
        return run

    monkeypatch.setattr(keypairs, "sign", held(real_sign))
    monkeypatch.setattr(keypairs, "generate_material", held(real_generate))
    yield events
    events["release"].set()


def _key(server: InProcessServer, **params: Any) -> str:
    status, doc = server.call("CreateKey", params)
    assert status == 200, doc
    return doc["KeyMetadata"]["KeyId"]


def test_other_connections_are_answered_while_an_rsa_sign_runs(server, gate):
    gate["release"].set()  # keys first, unheld
    rsa_key = _key(server, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    aes_key = _key(server)
    gate["release"].clear()
    gate["entered"].clear()
    result: dict[str, Any] = {}
    signer = threading.Thread(target=lambda: result.update(sign=server.call(
        "Sign", {"KeyId": rsa_key, "Message": MESSAGE, "SigningAlgorithm": "RSASSA_PSS_SHA_256"})))
    signer.start()
    assert gate["entered"].wait(30), "the Sign never reached its signing step"
    # the sign is held on the pool: the event loop still answers another connection
    status, doc = server.call("Encrypt", {"KeyId": aes_key, "Plaintext": b"x"}, timeout=10)
    assert status == 200, doc
    assert signer.is_alive()
    gate["release"].set()
    signer.join(60)
    status, doc = result["sign"]
    assert status == 200, doc
    assert doc["SigningAlgorithm"] == "RSASSA_PSS_SHA_256" and doc["Signature"]
    # one audit record for the Sign (the dispatcher ran it twice: once on the loop, refused, then on the pool)
    signs = [e for e in read_events(server.backend.data_dir) if e["eventName"] == "Sign"]
    assert [e["requestID"] for e in signs] == [doc["_request_id"]]
    assert signs[0].get("errorCode") is None


def test_pipelined_requests_behind_a_heavy_one_keep_their_order(server, gate):
    gate["release"].set()
    rsa_key = _key(server, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    aes_key = _key(server)
    gate["release"].clear()
    gate["entered"].clear()
    sign_body, sign_headers = server.request(
        "Sign", {"KeyId": rsa_key, "Message": MESSAGE, "SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256"})
    enc_body, enc_headers = server.request("DescribeKey", {"KeyId": aes_key})

    def raw(body: bytes, headers: dict[str, str]) -> bytes:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return f"POST / HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(raw(sign_body, sign_headers) + raw(enc_body, enc_headers))  # one write: pipelined
        assert gate["entered"].wait(30)
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):  # nothing may overtake the held Sign
            sock.recv(65536)
        sock.settimeout(30)
        gate["release"].set()
        data = b""
        while data.count(b"HTTP/1.1 200 OK") < 2 or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed early: {data!r}"
            data += chunk
    first, second = data.split(b"HTTP/1.1 200 OK")[1:3]
    assert b'"Signature"' in first and b'"KeyMetadata"' in second


def test_rsa_key_generation_runs_off_the_loop(server, gate):
    aes_key = _key(server)
    gate["entered"].clear()
    result: dict[str, Any] = {}
    creator = threading.Thread(target=lambda: result.update(create=server.call(
        "CreateKey", {"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"})))
    creator.start()
    assert gate["entered"].wait(30), "CreateKey never reached key generation"
    status, doc = server.call("Encrypt", {"KeyId": aes_key, "Plaintext": b"x"}, timeout=10)
    assert status == 200, doc
    status, doc = server.call("ListKeys", {}, timeout=10)  # the store is usable meanwhile: no write lock held
    assert status == 200 and len(doc["Keys"]) == 1
    gate["release"].set()
    creator.join(60)
    status, doc = result["create"]
    assert status == 200, doc
    assert doc["KeyMetadata"]["KeySpec"] == "RSA_2048"
    status, doc = server.call("ListKeys", {})
    assert len(doc["Keys"]) == 2
    creates = [e for e in read_events(server.backend.data_dir) if e["eventName"] == "CreateKey"]
    assert len(creates) == 2  # the offloaded one recorded once


def test_parsed_private_keys_are_cached_and_dropped_with_the_material(backend, monkeypatch):
    kms = embedded_client(backend=backend)
    key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    parses: list[bool] = []
    real = keypairs.load_private_key

    def counting(spec: str, der: bytes, *, trusted: bool = False) -> Any:
        parses.append(trusted)
        return real(spec, der, trusted=trusted)

    monkeypatch.setattr(keypairs, "load_private_key", counting)
    for _ in range(3):
        kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert parses == [True]  # parsed once, without re-validating material the backend generated
    public = kms.get_public_key(KeyId=key_id)["PublicKey"]
    assert parses == [True]
    # another process's write drops the store's caches; the parsed key survives, checked by its DER
    other = Backend(backend.data_dir)
    try:
        embedded_client(backend=other).tag_resource(KeyId=key_id, Tags=[{"TagKey": "k", "TagValue": "v"}])
    finally:
        other.close()
    signature = kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    assert parses == [True]
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    serialization.load_der_public_key(public).verify(
        signature, MESSAGE, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    backend.forget_material(key_id, "us-east-1")
    assert len(backend.parsed_keys) == 0
    kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="RSASSA_PSS_SHA_256")
    assert parses == [True, True]


def test_parsed_key_cache_is_bounded_and_checks_the_material():
    cache = keypairs.ParsedKeys(capacity=2)
    ders = [keypairs.generate_material("ECC_NIST_P256") for _ in range(3)]
    for i, der in enumerate(ders):
        cache.get(("k", "r", i), "ECC_NIST_P256", der, trusted=True)
    assert len(cache) == 2
    first = cache.get(("k", "r", 1), "ECC_NIST_P256", ders[1], trusted=True)
    assert cache.get(("k", "r", 1), "ECC_NIST_P256", ders[1], trusted=True) is first
    # the same version with other material (e.g. imported again) is parsed afresh, never served stale
    other = cache.get(("k", "r", 1), "ECC_NIST_P256", ders[0], trusted=False)
    assert other is not first
    assert keypairs.public_key_der(other) == keypairs.public_key_der(keypairs.load_private_key("ECC_NIST_P256", ders[0]))


def test_imported_rsa_material_is_parsed_with_validation(backend, monkeypatch):
    """Only material the backend generated skips RSA's key validation; imported material keeps it."""
    from tests.test_imported_material import wrap

    kms = embedded_client(backend=backend)
    key_id = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    material = keypairs.generate_material("RSA_2048")
    kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"], ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
                            EncryptedKeyMaterial=wrap(params, material, "RSA_AES_KEY_WRAP_SHA_256"))
    parses: list[bool] = []
    real = keypairs.load_private_key
    monkeypatch.setattr(keypairs, "load_private_key",
                        lambda spec, der, *, trusted=False: parses.append(trusted) or real(spec, der, trusted=trusted))
    for _ in range(2):
        kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
    assert parses == [False]


def test_untrusted_parsing_refuses_an_inconsistent_rsa_key():
    """What ``trusted=False`` keeps: cryptography's RSA consistency checks."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = keypairs.load_private_key("RSA_2048", keypairs.generate_material("RSA_2048")).private_numbers()
    broken = rsa.RSAPrivateNumbers(numbers.p, numbers.q, numbers.d, numbers.dmp1 + 2, numbers.dmq1, numbers.iqmp,
                                   numbers.public_numbers).private_key(unsafe_skip_rsa_key_validation=True)
    der = broken.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    with pytest.raises(ValueError):
        keypairs.load_private_key("RSA_2048", der)
    assert keypairs.load_private_key("RSA_2048", der, trusted=True) is not None
