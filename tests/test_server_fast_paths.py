"""The server's fast paths give the answers of the slow, general code they stand in for.

- Validation reads botocore's model file directly (start-up without ``botocore.session``):
  every operation's input shape tree equals botocore's own ``ServiceModel``'s.
- Each operation's compiled request checker answers every request as the general
  ``_Checker`` walk does: the same params, or the same exception and message.
- The SigV4 credential scope read with string operations equals the pattern's reading.
- The cross-process cache check sees another process's commit at once (a key disabled
  through one worker is refused by the other on its next call).
- ``local serve`` runs one worker per CPU by default, and workers die with their parent.
- A verified signature is remembered for the identical request only, and its 5-minute window
  is still checked every time.
- A remembered authorization decision follows the key policy, the grants and the caller.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from kms_iac.backend import model
from kms_iac.backend.core import Backend
from kms_iac.backend.embedded import embedded_client
from kms_iac.backend.errors import KMSError
from kms_iac.backend.signature import _CREDENTIAL_RE, _credential
from tests.helpers import ServerProcess


def _tree(shape, depth: int = 0):
    """A shape as plain data: type, checked traits, members (in order), list/map parts."""
    out = {"type": shape.type_name, "meta": {k: shape.metadata[k] for k in model._CHECKED_TRAITS if k in shape.metadata},
           "enum": list(shape.enum) if shape.type_name == "string" else None}
    if depth > 6:
        return out
    if shape.type_name == "structure":
        out["required"] = list(shape.required_members)
        out["members"] = [(n, _tree(m, depth + 1)) for n, m in shape.members.items()]
    elif shape.type_name == "list":
        out["member"] = _tree(shape.member, depth + 1)
    elif shape.type_name == "map":
        out["key"], out["value"] = _tree(shape.key, depth + 1), _tree(shape.value, depth + 1)
    return out


def test_model_file_shapes_equal_botocores_service_model():
    botocore_model = model.service_model()
    assert set(model._model_file()["operations"]) == set(botocore_model.operation_names)
    for name in botocore_model.operation_names:
        theirs = botocore_model.operation_model(name).input_shape
        ours = model.operation(name).input_shape
        assert (ours is None) == (theirs is None), name
        if ours is not None:
            assert _tree(ours) == _tree(theirs), name


def _slow(op: str, body):
    """The general walk (what parse_request did before it was compiled)."""
    shape = model.operation(op).input_shape
    checker = model._Checker()
    if shape is None:
        return {}
    params = checker.structure(shape, body if body is not None else {}, "")
    if checker.violations:
        raise model.validation_error(checker.violations)
    return params


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except KMSError as err:
        return (err.code, err.message)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**7) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30) | st.sampled_from(["AES_256", "AES_128", "SYMMETRIC_DEFAULT", "QUJD", "QUJD=", "====",
                                              "alias/x", "1234abcd-12ab-34cd-56ef-1234567890ab", base64.b64encode(b"x" * 5000).decode()]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
OPS = sorted(model._model_file()["operations"])


@settings(max_examples=600, deadline=None)
@given(op=st.sampled_from(OPS), data=st.data())
def test_compiled_checker_answers_as_the_general_walk(op, data):
    members = list(model.operation(op).input_shape.members) if model.operation(op).input_shape else []
    names = st.sampled_from(members + ["Unknown"]) if members else st.just("Unknown")
    body = data.draw(st.dictionaries(names, JSON_VALUES, max_size=5) | JSON_VALUES)
    assert _outcome(model.parse_request, op, body) == _outcome(_slow, op, body)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["Credential=", "/", "20240101", "2024010", "us-east-1", "kms", "aws4_request", ",",
                                 " ", "\t", "AKID", "é", "\u00a0", "=", "SignedHeaders=host"]), max_size=14))
def test_credential_scope_reading_equals_the_pattern(parts):
    auth = "AWS4-HMAC-SHA256 " + "".join(parts)
    m = _CREDENTIAL_RE.search(auth)
    assert _credential(auth) == (None if m is None else (m.group(1), m.group(3), m.group(4)))


def test_a_commit_by_another_process_is_seen_on_the_next_call(tmp_path: Path):
    """Two backends on one data dir (as two workers): a key disabled through one is refused by the other."""
    a, b = Backend(tmp_path), Backend(tmp_path)
    try:
        kms_a, kms_b = embedded_client(backend=a), embedded_client(backend=b)
        key = kms_a.create_key()["KeyMetadata"]["KeyId"]
        for _ in range(3):  # warm both caches
            kms_b.encrypt(KeyId=key, Plaintext=b"x")
        for _ in range(5):
            kms_a.disable_key(KeyId=key)
            with pytest.raises(ClientError) as err:
                kms_b.encrypt(KeyId=key, Plaintext=b"x")
            assert err.value.response["Error"]["Code"] == "DisabledException"
            kms_a.enable_key(KeyId=key)
            kms_b.encrypt(KeyId=key, Plaintext=b"x")
    finally:
        a.close()
        b.close()


def test_serve_defaults_to_one_worker_per_cpu_and_workers_die_with_it(tmp_path: Path):
    srv = ServerProcess(tmp_path / "data").start()
    try:
        parent = srv.proc.pid
        children = [int(p) for p in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
        assert len(children) == len(os.sched_getaffinity(0))
        kms = srv.client()
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        assert kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"])["Plaintext"] == b"x"
        os.kill(parent, signal.SIGKILL)  # the server "crashes": its workers must not live on
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{c}").exists() and "Z" not in _state(c) for c in children):
            assert time.monotonic() < deadline, "a worker outlived its parent"
            time.sleep(0.05)
    finally:
        srv.kill()


def _established_on(pid: int, port: int) -> int:
    """How many established TCP connections on the server's ``port`` process ``pid`` holds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


def test_connections_are_handed_to_the_workers_in_turn(tmp_path: Path):
    """16 connections opened at once end up 8 and 8 on two workers (a shared listening socket let
    the first worker to wake take them all), and every one is answered."""
    import http.client

    srv = ServerProcess(tmp_path / "data", "--workers", "2").start()
    conns: list[http.client.HTTPConnection] = []
    try:
        parent = srv.proc.pid
        children = [int(p) for p in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
        port = int(srv.url.rsplit(":", 1)[1])
        for _ in range(16):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.connect()
            conns.append(conn)
        for conn in conns:  # answered: the worker holding it has taken it over
            conn.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "TrentService.ListKeys",
                                                          "Content-Type": "application/x-amz-json-1.1"})
            response = conn.getresponse()
            response.read()
            assert response.status == 400  # unsigned: MissingAuthenticationToken, from a worker
        assert sorted(_established_on(c, port) for c in children) == [8, 8]
        assert _established_on(parent, port) == 0  # the parent keeps none it handed over
    finally:
        for conn in conns:
            conn.close()
        srv.stop()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "Z"


def test_workers_one_and_clock_control_still_run_single_process(tmp_path: Path):
    srv = ServerProcess(tmp_path / "data", "--clock-control").start()
    try:
        parent = srv.proc.pid
        assert Path(f"/proc/{parent}/task/{parent}/children").read_text().split() == []
        srv.client().list_keys()
    finally:
        srv.stop()
    out = subprocess.run([sys.executable, "-m", "kms_iac", "local", "serve", "--workers", "2", "--clock-control",
                          "--data-dir", str(tmp_path / "other")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--workers > 1" in out.stderr


def _signed(secret: str = "s3cret-key", body: bytes = b'{"KeyId":"x"}') -> tuple[dict[str, str], bytes]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest("POST", "http://127.0.0.1:4599/", data=body,
                     headers={"X-Amz-Target": "TrentService.DescribeKey", "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials("AKIAKMSIACMEMOTEST01", secret), "kms", "us-east-1").add_auth(req)
    return {k.lower(): v for k, v in req.headers.items()} | {"host": "127.0.0.1:4599"}, body


def test_a_verified_signature_is_remembered_only_for_the_identical_request(monkeypatch):
    from kms_iac.backend import sigv4
    from kms_iac.backend.errors import InvalidSignatureException, UnrecognizedClientException
    from kms_iac.backend.principals import as_directory

    directory = as_directory({"accounts": {"111122223333": {"principals": [{
        "arn": "arn:aws:iam::111122223333:user/memo", "access_key_id": "AKIAKMSIACMEMOTEST01",
        "secret_access_key": "s3cret-key"}]}}})
    computed = []
    real = sigv4.expected_signature
    monkeypatch.setattr(sigv4, "expected_signature", lambda *a, **k: computed.append(1) or real(*a, **k))
    memo = sigv4.VerifiedSignatures()
    headers, body = _signed()
    now = time.time()
    for _ in range(4):
        entry, _auth = sigv4.verify(directory, headers, "POST", "/", body, now, "", memo)
        assert entry.arn.endswith("user/memo")
    assert len(computed) == 2  # verified when first seen and when seen again, then remembered
    # anything signed that differs is verified afresh, and refused
    for changed_body, changed_headers in ((b'{"KeyId":"y"}', headers),
                                          (body, {**headers, "x-amz-target": "TrentService.Decrypt"})):
        with pytest.raises(InvalidSignatureException):
            sigv4.verify(directory, changed_headers, "POST", "/", changed_body, now, "", memo)
    assert len(computed) == 4
    with pytest.raises(InvalidSignatureException):  # same request, other method
        sigv4.verify(directory, headers, "PUT", "/", body, now, "", memo)
    # the 5-minute window is checked on every use, remembered or not
    with pytest.raises(InvalidSignatureException, match="Signature expired"):
        sigv4.verify(directory, headers, "POST", "/", body, now + 301, "", memo)
    with pytest.raises(InvalidSignatureException, match="Signature not yet current"):
        sigv4.verify(directory, headers, "POST", "/", body, now - 301, "", memo)
    assert len(computed) == 5
    # a session token or date header that the remembered request did not have: verified afresh
    with pytest.raises(UnrecognizedClientException):  # a token this principal was not given
        sigv4.verify(directory, {**headers, "x-amz-security-token": "token"}, "POST", "/", body, now, "", memo)
    sigv4.verify(directory, {**headers, "date": "Wed, 02 Dec 2026 10:00:00 GMT"}, "POST", "/", body, now, "", memo)
    assert len(computed) == 6  # (X-Amz-Date, which is signed, still dates the request)


def _raw_request(port: int, operation: str, params: dict, extra: str = "") -> bytes:
    import json as _json

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = _json.dumps(params).encode()
    req = AWSRequest("POST", f"http://127.0.0.1:{port}/", data=body,
                     headers={"X-Amz-Target": f"TrentService.{operation}", "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials("AKIDTEST", "secret"), "kms", "us-east-1").add_auth(req)
    head = "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
    return (f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_every_answer_leaves_after_its_audit_record(tmp_path: Path):
    """The server writes a loop turn's audit records in one write, before any of their answers."""
    import http.client
    import json as _json
    from concurrent.futures import ThreadPoolExecutor

    from kms_iac.backend.audit import read_events

    data = tmp_path / "data"
    srv = ServerProcess(data, "--workers", "1").start()
    try:
        port = int(srv.url.rsplit(":", 1)[1])
        key = srv.client().create_key()["KeyMetadata"]["KeyId"]

        def calls(n: int) -> list[str]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            missing = []
            for _ in range(n):
                raw = _raw_request(port, "Encrypt", {"KeyId": key, "Plaintext": "eA=="})
                body = raw.split(b"\r\n\r\n", 1)[1]
                headers = dict(line.split(": ", 1) for line in raw.split(b"\r\n\r\n")[0].decode().split("\r\n")[1:])
                conn.request("POST", "/", body, headers)
                resp = conn.getresponse()
                resp.read()
                request_id = resp.getheader("x-amzn-RequestId")
                if request_id not in {e["requestID"] for e in read_events(data)}:
                    missing.append(request_id)
            conn.close()
            return missing

        with ThreadPoolExecutor(4) as pool:  # several connections: several answers per loop turn
            assert sum((f.result() for f in [pool.submit(calls, 25) for _ in range(4)]), []) == []
    finally:
        srv.stop()


def test_nothing_is_answered_or_done_after_connection_close(tmp_path: Path):
    import socket

    from kms_iac.backend.audit import read_events

    data = tmp_path / "data"
    srv = ServerProcess(data, "--workers", "1").start()
    try:
        port = int(srv.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(_raw_request(port, "ListKeys", {}, "Connection: close\r\n") + _raw_request(port, "CreateKey", {}))
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        assert received.count(b"HTTP/1.1 ") == 1 and b'"Keys"' in received
        assert srv.client().list_keys()["Keys"] == []
        assert "CreateKey" not in [e["eventName"] for e in read_events(data)]
    finally:
        srv.stop()


def test_handed_over_connections_are_read_one_by_one_over_a_stream_pair_too(monkeypatch):
    """Where AF_UNIX has no SOCK_SEQPACKET (macOS), the pair is a stream: three connections sent
    back to back still arrive as three, each with its own descriptor."""
    import socket as socket_module

    from kms_iac.backend import server as server_module

    real = socket_module.socketpair

    def no_seqpacket(family=socket_module.AF_UNIX, kind=socket_module.SOCK_STREAM, proto=0):
        if kind == socket_module.SOCK_SEQPACKET:
            raise OSError("not supported here")
        return real(family, kind, proto)

    monkeypatch.setattr(server_module.socket, "socketpair", no_seqpacket)
    parent_end, worker_end = server_module._handoff_pair()
    assert worker_end.type == socket_module.SOCK_STREAM
    sent = [socket_module.socket(socket_module.AF_INET, socket_module.SOCK_STREAM) for _ in range(3)]

    class Loop:
        def __init__(self) -> None:
            self.adopted: list = []

        def create_task(self, coroutine):
            self.adopted.append(coroutine.cr_frame.f_locals["conn"])
            coroutine.close()

        def remove_reader(self, fd) -> None:
            pass

    srv = server_module.KmsServer.__new__(server_module.KmsServer)
    srv._loop, srv.handoff = Loop(), worker_end
    worker_end.setblocking(False)
    try:
        for sock in sent:
            socket_module.send_fds(parent_end, [b"c"], [sock.fileno()])
        srv._take_connections()
        assert len(srv._loop.adopted) == 3
        assert [s.family for s in srv._loop.adopted] == [socket_module.AF_INET] * 3
    finally:
        for sock in sent + srv._loop.adopted:
            sock.close()
        parent_end.close()
        worker_end.close()


def test_a_remembered_decision_follows_the_policy_the_grants_and_the_caller(tmp_path, monkeypatch):
    """The authorizer's one-lookup path answers as a fresh evaluation would: a denial stays a
    denial, a grant or a new key policy is seen on the next call, and each caller has its own."""
    import json as _json

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from kms_iac.backend import authorization
    from kms_iac.backend.protocol import answer
    from kms_iac.backend.sigv4 import attach_principals

    account = "111122223333"
    who = {"root": ("AKIAKMSIACDECIDEROOT", "root-secret"), "user": ("AKIAKMSIACDECIDEUSER", "user-secret")}
    backend = Backend(tmp_path / "kms", account=account)
    attach_principals(backend, {"accounts": {account: {"principals": [
        {"arn": f"arn:aws:iam::{account}:root", "access_key_id": who["root"][0], "secret_access_key": who["root"][1]},
        {"arn": f"arn:aws:iam::{account}:user/app", "access_key_id": who["user"][0], "secret_access_key": who["user"][1]},
    ]}}})
    evaluations = []
    real = authorization.evaluate
    monkeypatch.setattr(authorization, "evaluate", lambda *a, **k: evaluations.append(a[2].action) or real(*a, **k))

    def call(caller: str, operation: str, **params) -> tuple[int, dict]:
        req = AWSRequest("POST", "http://127.0.0.1:4599/", data=_json.dumps(params).encode(),
                         headers={"X-Amz-Target": f"TrentService.{operation}",
                                  "Content-Type": "application/x-amz-json-1.1"})
        SigV4Auth(Credentials(*who[caller]), "kms", "us-east-1").add_auth(req)
        headers = {k.lower(): v for k, v in req.headers.items()} | {"host": "127.0.0.1:4599"}
        status, _headers, body = answer(backend, headers, req.body)
        return status, _json.loads(body)

    key = call("root", "CreateKey")[1]["KeyMetadata"]["KeyId"]
    encrypt = {"KeyId": key, "Plaintext": base64.b64encode(b"x").decode(), "EncryptionContext": {"t": "1"}}
    evaluations.clear()
    assert [call("root", "Encrypt", **encrypt)[0] for _ in range(3)] == [200, 200, 200]
    assert evaluations == ["kms:Encrypt"]  # evaluated once, then remembered
    # the key policy delegates to IAM and the user has no IAM policy: refused, every time
    assert [call("user", "Encrypt", **encrypt)[1].get("__type") for _ in range(2)] == ["AccessDeniedException"] * 2
    assert evaluations == ["kms:Encrypt"] * 2
    # another encryption context is another request
    assert call("root", "Encrypt", **{**encrypt, "EncryptionContext": {"t": "2"}})[0] == 200
    assert len(evaluations) == 3
    # a grant is seen on the user's next call
    assert call("root", "CreateGrant", KeyId=key, GranteePrincipal=f"arn:aws:iam::{account}:user/app",
                Operations=["Encrypt"])[0] == 200
    assert call("user", "Encrypt", **encrypt)[0] == 200
    # so is a key policy that now denies the root Encrypt
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:Encrypt",
         "Resource": "*"}]}
    assert call("root", "PutKeyPolicy", KeyId=key, PolicyName="default", Policy=_json.dumps(policy))[0] == 200
    assert [call("root", "Encrypt", **encrypt)[1].get("__type") for _ in range(2)] == ["AccessDeniedException"] * 2
