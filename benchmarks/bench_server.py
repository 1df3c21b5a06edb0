#!/usr/bin/env python3
"""KMS servers measured with a C load generator: kms-iac (with and without a principals
file) vs local-kms vs moto.

Why a C load generator: a Python client costs more CPU per request than these servers do,
so on a small machine a Python-driven benchmark measures the clients. Here every server is
driven by ``wrk`` (Debian's package ``wrk``; installed by this script when missing, the way
scripts/setup.sh installs SoftHSM2) replaying one pre-signed request: 1 thread, 16
connections by default, as in the issue that asked for these figures.

For every operation (Encrypt, Decrypt, GenerateDataKey, Sign with RSA_2048 and with
ECC_NIST_P256, DescribeKey) each server runs ``--rounds`` measuring windows, the servers
alternating within each round (order reversed every other round), so machine drift hits
all alike; tables show medians. Reported per cell: requests per second (HTTP 200 only: any
other status or socket error fails the cell), p50/p99 latency from wrk's histogram, and
the server's CPU time (utime + stime of its whole process tree, from /proc) per request.
Every (server, operation) request is sent once through http.client first and its answer
checked (Decrypt returns the plaintext, a signature verifies under the key's public key,
...), so a fast wrong answer cannot score.

Also measured: start-up (launch to first answered request, median of ``--startup`` runs),
and with ``--interference`` Encrypt latency on kms-iac alone and while RSA_4096 Sign
requests run alongside on their own connections.

``bench_backend.py`` keeps the Python-client figures (``--client boto3``: what an
application calling through boto3 sees, client-bound on a 2-core machine).

Example::

    python benchmarks/bench_server.py --seconds 3 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402  (sibling module; the benchmarks dir is not a package)

SERVERS = ("kms-iac", "kms-iac+authz", "local-kms", "moto", "kms-iac@baseline", "kms-iac@python",
           "kms-iac+authz@baseline")
DEFAULT_SERVERS = SERVERS[:4]
OPS = ("Encrypt", "Decrypt", "GenerateDataKey", "Sign-RSA_2048", "Sign-ECC_NIST_P256", "DescribeKey")
PLAINTEXT = bytes(range(256))
MESSAGE = b"kms-iac benchmark message"  # what Sign signs (RAW)
SIGNING_ALGORITHM = {"RSA_2048": "RSASSA_PKCS1_V1_5_SHA_256", "RSA_4096": "RSASSA_PKCS1_V1_5_SHA_256",
                     "ECC_NIST_P256": "ECDSA_SHA_256"}
ACCOUNT = peers.LOCAL_KMS_ACCOUNT_ID  # kms-iac's default account too
ROOT_CREDENTIALS = ("AKIAKMSIACBENCHROOT1", "bench-root-secret")  # the principals file's account root
ANY_CREDENTIALS = ("test", "test")  # servers that do not check signatures
PRINCIPALS = {"accounts": {ACCOUNT: {"principals": [{
    "arn": f"arn:aws:iam::{ACCOUNT}:root", "access_key_id": ROOT_CREDENTIALS[0],
    "secret_access_key": ROOT_CREDENTIALS[1]}]}}}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# wrk


def ensure_wrk() -> str:
    """The wrk binary, installed from the system's packages when missing (as setup.sh does SoftHSM2)."""
    found = shutil.which("wrk")
    if found:
        return found
    log("installing wrk (Debian package) for the server benchmark")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL, env=env)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL, env=env)
    elif shutil.which("brew"):
        subprocess.run(["brew", "install", "wrk"], check=True, stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench_server: wrk is not installed and could not be installed; install it (apt-get install wrk)")
    return found


def _lua_string(text: str) -> str:
    """A Lua long-bracket literal holding ``text`` verbatim."""
    level = "=" * 4
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def wrk_script(body: bytes, headers: dict[str, str]) -> str:
    """A wrk script replaying one POST and printing wrk's summary as one JSON line at the end."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}"]
    for name, value in headers.items():
        if name.lower() != "content-length":  # wrk sets it from the body
            lines.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")
    lines.append(_WRK_DONE)
    return "\n".join(lines)


# wrk's summary as one JSON line at the end of the run
_WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def _lua_quoted(data: bytes) -> str:
    """A Lua double-quoted string literal of ``data`` (decimal escapes for anything unusual)."""
    out = []
    for b in data:
        c = chr(b)
        out.append(c if 32 <= b < 127 and c not in '"\\' else f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def wrk_script_cycling(requests: list[tuple[bytes, dict[str, str]]]) -> str:
    """A wrk script sending ``requests`` (body, headers) in turn, e.g. each with its own signature."""
    lines = ["local reqs = {"]
    for body, headers in requests:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() != "content-length")
        raw = f"POST / HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        lines.append(f"  {_lua_quoted(raw)},")
    lines.append("}")
    lines.append("""local n = #reqs
local i = 0
request = function()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end
""")
    return "\n".join(lines) + "\n" + _WRK_DONE


@dataclass
class WrkResult:
    """One wrk run's summary (latencies in microseconds)."""

    requests: int
    duration_us: int
    connect: int
    read: int
    write: int
    status: int  # responses other than 2xx/3xx
    timeout: int
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    mean_us: float

    @property
    def errors(self) -> int:
        return self.connect + self.read + self.write + self.status + self.timeout

    @property
    def ok(self) -> int:
        return self.requests - self.status

    @property
    def ops_per_s(self) -> float:
        return self.ok / (self.duration_us / 1e6) if self.duration_us else 0.0


class WrkRun:
    """wrk started in the background; ``result()`` waits for its summary."""

    def __init__(self, wrk: str, url: str, body: bytes, headers: dict[str, str], seconds: float,
                 connections: int, threads: int, script: str | None = None) -> None:
        fd, self.script = tempfile.mkstemp(prefix="kms-bench-", suffix=".lua")
        with os.fdopen(fd, "w") as f:
            f.write(script if script is not None else wrk_script(body, headers))
        cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s", "-s", self.script, url]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> WrkResult:
        try:
            out, err = self.proc.communicate(timeout=600)
        finally:
            os.unlink(self.script)
        for line in out.splitlines():
            if line.startswith("BENCH-JSON "):
                return WrkResult(**json.loads(line[len("BENCH-JSON "):]))
        raise RuntimeError(f"wrk printed no summary (exit {self.proc.returncode}):\n{out}\n{err}")


# --------------------------------------------------------------------------
# Requests


def sign_request(url: str, op: str, params: dict[str, Any], credentials: tuple[str, str],
                 nonce: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The JSON body and SigV4 headers of one request (blobs base64-encoded), signed now;
    ``nonce``: an extra signed header making this request's signature its own."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps({k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in params.items()},
                      separators=(",", ":")).encode()
    extra = {"X-Kms-Bench-Nonce": nonce} if nonce is not None else {}
    request = AWSRequest(method="POST", url=url.rstrip("/") + "/", data=body,
                         headers={"X-Amz-Target": f"TrentService.{op}", "Content-Type": "application/x-amz-json-1.1",
                                  **extra})
    SigV4Auth(Credentials(*credentials), "kms", peers.REGION).add_auth(request)
    host = url.split("://", 1)[1].rstrip("/")
    return body, {"Host": host, **{k: str(v) for k, v in request.headers.items()}}


def send(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    host, port = url.split("://", 1)[1].rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        conn.request("POST", "/", body, headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, {"raw": data[:200].decode(errors="replace")}


@dataclass
class Keys:
    """The keys one server is benchmarked with, and what the checks need."""

    symmetric: str
    ciphertext: bytes
    signing: dict[str, str] = field(default_factory=dict)  # key spec -> key id
    public: dict[str, bytes] = field(default_factory=dict)  # key spec -> DER public key


def op_request(op: str, keys: Keys) -> tuple[str, dict[str, Any]]:
    """(KMS operation, parameters) of a benchmark operation name."""
    if op == "Encrypt":
        return "Encrypt", {"KeyId": keys.symmetric, "Plaintext": PLAINTEXT}
    if op == "Decrypt":
        return "Decrypt", {"CiphertextBlob": keys.ciphertext}
    if op == "GenerateDataKey":
        return "GenerateDataKey", {"KeyId": keys.symmetric, "KeySpec": "AES_256"}
    if op == "DescribeKey":
        return "DescribeKey", {"KeyId": keys.symmetric}
    if op.startswith("Sign-"):
        spec = op[len("Sign-"):]
        return "Sign", {"KeyId": keys.signing[spec], "Message": MESSAGE, "MessageType": "RAW",
                        "SigningAlgorithm": SIGNING_ALGORITHM[spec]}
    raise ValueError(op)


def check_answer(op: str, keys: Keys, status: int, doc: dict[str, Any]) -> str | None:
    """Why this answer to ``op`` is wrong, or None."""
    if status != 200:
        return f"HTTP {status}: {str(doc)[:300]}"
    try:
        if op == "Encrypt":
            blob = base64.b64decode(doc["CiphertextBlob"])
            return None if blob and PLAINTEXT not in blob else "ciphertext empty or holds the plaintext"
        if op == "Decrypt":
            return None if base64.b64decode(doc["Plaintext"]) == PLAINTEXT else "wrong plaintext"
        if op == "GenerateDataKey":
            return None if len(base64.b64decode(doc["Plaintext"])) == 32 and doc["CiphertextBlob"] else "bad data key"
        if op == "DescribeKey":
            return None if doc["KeyMetadata"]["KeyId"] in keys.symmetric else "wrong key"
        if op.startswith("Sign-"):
            return _check_signature(op[len("Sign-"):], keys, base64.b64decode(doc["Signature"]))
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed answer ({exc!r})"
    return None


def _check_signature(spec: str, keys: Keys, signature: bytes) -> str | None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    public = serialization.load_der_public_key(keys.public[spec])
    try:
        if spec.startswith("RSA"):
            public.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        else:
            public.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "the signature does not verify under the key's public key"
    return None


# --------------------------------------------------------------------------
# Servers


@dataclass
class Server:
    name: str
    handle: peers.ServerHandle
    credentials: tuple[str, str]
    keys: Keys | None = None
    unsupported: dict[str, str] = field(default_factory=dict)  # op -> why it cannot be benchmarked here

    @property
    def url(self) -> str:
        return self.handle.url

    def call(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        status, doc = send(self.url, *sign_request(self.url, op, params, self.credentials))
        if status != 200:
            raise RuntimeError(f"{self.name} {op}: HTTP {status} {str(doc)[:300]}")
        return doc


def setup_keys(server: Server, signing_specs: tuple[str, ...]) -> Keys:
    key_id = server.call("CreateKey", {"Description": "kms-iac server benchmark"})["KeyMetadata"]["KeyId"]
    ciphertext = base64.b64decode(server.call("Encrypt", {"KeyId": key_id, "Plaintext": PLAINTEXT})["CiphertextBlob"])
    keys = Keys(key_id, ciphertext)
    for spec in signing_specs:
        try:
            kid = server.call("CreateKey", {"KeySpec": spec, "KeyUsage": "SIGN_VERIFY"})["KeyMetadata"]["KeyId"]
            keys.signing[spec] = kid
            keys.public[spec] = base64.b64decode(server.call("GetPublicKey", {"KeyId": kid})["PublicKey"])
        except RuntimeError as exc:
            server.unsupported[f"Sign-{spec}"] = str(exc)
    return keys


def start_server(name: str, workers: int, work: Path, baseline: Path | None = None,
                 python: str | None = None) -> Server:
    """Start one server; ``kms-iac@baseline`` (``kms-iac+authz@baseline``: with the principals file)
    is kms-iac run from another checkout (``--baseline``),
    ``kms-iac@python`` this checkout served by another interpreter (``--python``)."""
    if name == "kms-iac@python":
        if not python:
            raise peers.PeerUnavailable("kms-iac@python needs --python PATH")
        return Server(name, peers.start_kms_iac(workers=workers, python=python), ANY_CREDENTIALS)
    if name in ("kms-iac", "kms-iac@baseline"):
        source = baseline if name == "kms-iac@baseline" else None
        return Server(name, peers.start_kms_iac(workers=workers, source=source), ANY_CREDENTIALS)
    if name in ("kms-iac+authz", "kms-iac+authz@baseline"):
        principals = work / "principals.json"
        principals.write_text(json.dumps(PRINCIPALS))
        source = baseline if name == "kms-iac+authz@baseline" else None
        return Server(name, peers.start_kms_iac(workers=workers, principals=principals, source=source),
                      ROOT_CREDENTIALS)
    if name == "local-kms":
        return Server(name, peers.start_local_kms(), ANY_CREDENTIALS)
    if name == "moto":
        return Server(name, peers.start_moto(), ANY_CREDENTIALS)
    raise ValueError(name)


# --------------------------------------------------------------------------
# Measuring


@dataclass
class Round:
    wrk: WrkResult
    cpu_s: float | None

    @property
    def cpu_us_per_request(self) -> float | None:
        return None if self.cpu_s is None or not self.wrk.ok else self.cpu_s / self.wrk.ok * 1e6


@dataclass
class Cell:
    rounds: list[Round] = field(default_factory=list)

    def median(self, get: Callable[[Round], float | None]) -> float | None:
        values = [v for r in self.rounds if (v := get(r)) is not None]
        return statistics.median(values) if values else None

    @property
    def ops_per_s(self) -> float:
        return self.median(lambda r: r.wrk.ops_per_s) or 0.0

    @property
    def failed(self) -> bool:
        return any(r.wrk.errors for r in self.rounds)

    def to_json(self) -> dict[str, Any]:
        return {
            "ops_per_s": self.ops_per_s,
            "p50_ms": (self.median(lambda r: r.wrk.p50_us) or 0) / 1e3,
            "p99_ms": (self.median(lambda r: r.wrk.p99_us) or 0) / 1e3,
            "cpu_us_per_request": self.median(lambda r: r.cpu_us_per_request),
            "failed": self.failed,
            "rounds": [{**r.wrk.__dict__, "ops_per_s": r.wrk.ops_per_s, "cpu_s": r.cpu_s} for r in self.rounds],
        }


def measure(server: Server, op: str, args: argparse.Namespace, wrk: str) -> Round:
    """Check the answer once, then one wrk window with the server's CPU time read around it."""
    assert server.keys is not None
    kms_op, params = op_request(op, server.keys)
    body, headers = sign_request(server.url, kms_op, params, server.credentials)  # fresh: signatures expire
    problem = check_answer(op, server.keys, *send(server.url, body, headers))
    if problem:
        raise RuntimeError(f"{server.name} {op}: {problem}")
    script = None
    if args.unique_signatures:  # each request signed on its own: no two alike
        script = wrk_script_cycling([
            sign_request(server.url, kms_op, params, server.credentials, nonce=str(n))
            for n in range(args.unique_signatures)])
    before = server.handle.cpu_seconds()
    run = WrkRun(wrk, server.url, body, headers, args.seconds, args.connections, args.threads, script)
    result = run.result()
    after = server.handle.cpu_seconds()
    return Round(result, None if before is None or after is None else after - before)


def measure_all(servers: dict[str, Server], args: argparse.Namespace, wrk: str) -> dict[str, dict[str, Cell]]:
    results: dict[str, dict[str, Cell]] = {}
    for op in args.ops:
        for index in range(args.rounds):
            order = list(servers) if index % 2 == 0 else list(reversed(servers))
            for name in order:
                server = servers[name]
                if op in server.unsupported:
                    continue
                r = measure(server, op, args, wrk)
                results.setdefault(name, {}).setdefault(op, Cell()).rounds.append(r)
                cpu = r.cpu_us_per_request
                log(f"  {op:<19} round {index + 1}/{args.rounds} {name:<14} {r.wrk.ops_per_s:9,.0f} ops/s  "
                    f"p50 {r.wrk.p50_us / 1e3:7.2f} ms  p99 {r.wrk.p99_us / 1e3:8.2f} ms  "
                    f"{'-' if cpu is None else f'{cpu:,.0f}'} µs CPU/req"
                    f"{f'  (!) {r.wrk.errors} errors' if r.wrk.errors else ''}")
    return results


def interference(server: Server, args: argparse.Namespace, wrk: str) -> dict[str, Any]:
    """Encrypt latency alone and with RSA_4096 Sign requests running alongside on their own connections.

    The Encrypt connections are opened first (so they spread over the workers while all are idle);
    the signs start half a second later and last past the end of the Encrypt window. wrk measures
    each request from its send, so a connection stalled behind a sign shows in the max and the
    high percentiles."""
    assert server.keys is not None
    spec = "RSA_4096"
    if spec not in server.keys.signing:
        kid = server.call("CreateKey", {"KeySpec": spec, "KeyUsage": "SIGN_VERIFY"})["KeyMetadata"]["KeyId"]
        server.keys.signing[spec] = kid
        server.keys.public[spec] = base64.b64decode(server.call("GetPublicKey", {"KeyId": kid})["PublicKey"])
    out: dict[str, Any] = {"alone": [], "with_rsa4096_signs": [], "rsa4096_signs_per_s": []}
    for index in range(args.rounds):
        for mode in (("alone", "with") if index % 2 == 0 else ("with", "alone")):
            enc_body, enc_headers = sign_request(server.url, *op_request("Encrypt", server.keys), server.credentials)
            sign_body, sign_headers = sign_request(server.url, *op_request(f"Sign-{spec}", server.keys),
                                                   server.credentials)
            if mode == "with":
                problem = check_answer(f"Sign-{spec}", server.keys, *send(server.url, sign_body, sign_headers))
                if problem:
                    raise RuntimeError(f"{server.name} Sign-{spec}: {problem}")
            enc_run = WrkRun(wrk, server.url, enc_body, enc_headers, args.seconds, args.connections, args.threads)
            sign_run = None
            if mode == "with":
                time.sleep(0.5)
                sign_run = WrkRun(wrk, server.url, sign_body, sign_headers, args.seconds, args.sign_connections, 1)
            enc = enc_run.result()
            if sign_run is not None:
                signs = sign_run.result()
                if signs.errors:
                    raise RuntimeError(f"{server.name} Sign-{spec}: {signs.errors} errors under load")
                out["rsa4096_signs_per_s"].append(signs.ops_per_s)
            if enc.errors:
                raise RuntimeError(f"{server.name} Encrypt: {enc.errors} errors under load")
            out["alone" if mode == "alone" else "with_rsa4096_signs"].append(
                {"ops_per_s": enc.ops_per_s, "p50_ms": enc.p50_us / 1e3, "p99_ms": enc.p99_us / 1e3,
                 "max_ms": enc.max_us / 1e3})
            log(f"  interference round {index + 1} {mode:<5}: Encrypt {enc.ops_per_s:8,.0f} ops/s "
                f"p50 {enc.p50_us / 1e3:.2f} ms p99 {enc.p99_us / 1e3:.2f} ms max {enc.max_us / 1e3:.1f} ms"
                + (f"; RSA_4096 Sign {out['rsa4096_signs_per_s'][-1]:,.1f} ops/s" if sign_run else ""))
    return out


# --------------------------------------------------------------------------
# Start-up


def _answers(port: int, body: bytes, headers: dict[str, str]) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/", body, headers)
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except (OSError, http.client.HTTPException):
        return False


def startup_seconds(name: str, workers: int, work: Path, baseline: Path | None = None) -> float:
    """Launch to the first answered ListKeys, polled every millisecond (the server is stopped after)."""
    port = peers.free_port()
    data = Path(tempfile.mkdtemp(prefix="kms-bench-start-", dir=work))
    if name in ("kms-iac", "kms-iac@baseline"):
        # the console script, as users start it; a baseline checkout through python -m
        exe = Path(sys.executable).with_name("kms-iac")
        cmd = [str(exe)] if exe.exists() and name == "kms-iac" else [sys.executable, "-m", "kms_iac"]
        cmd += ["local", "serve", "--port", str(port), "--data-dir", str(data), "--workers", str(workers)]
        env = {**os.environ, **peers._kms_iac_env(baseline if name == "kms-iac@baseline" else None)}
    elif name == "local-kms":
        cmd = [str(peers.ensure_local_kms_binary())]
        env = {**os.environ, "PORT": str(port), "KMS_REGION": peers.REGION, "KMS_ACCOUNT_ID": ACCOUNT,
               "KMS_DATA_PATH": str(data / "db"), "KMS_SEED_PATH": str(data / "no-seed.yaml")}
    elif name == "moto":
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        env = dict(os.environ)
    else:
        raise ValueError(name)
    body, headers = sign_request(f"http://127.0.0.1:{port}", "ListKeys", {}, ANY_CREDENTIALS)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=data,
                            start_new_session=True)
    try:
        while time.perf_counter() - started < 60:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} during start-up")
            with socket.socket() as probe:
                reachable = probe.connect_ex(("127.0.0.1", port)) == 0
            if reachable and _answers(port, body, headers):
                return time.perf_counter() - started
            time.sleep(0.001)
        raise RuntimeError(f"{name} did not answer within 60 s")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        try:
            os.killpg(proc.pid, 9)  # workers left behind
        except (ProcessLookupError, PermissionError):
            pass
        shutil.rmtree(data, ignore_errors=True)


def measure_startup(names: list[str], runs: int, workers: int, work: Path,
                    baseline: Path | None = None) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {n: [] for n in names}
    for index in range(runs):
        for name in (names if index % 2 == 0 else list(reversed(names))):
            try:
                times[name].append(startup_seconds(name, workers, work, baseline))
            except peers.PeerUnavailable as exc:
                log(f"  start-up {name}: skipped ({exc})")
                times.pop(name, None)
                names = [n for n in names if n != name]
                break
    return times


# --------------------------------------------------------------------------
# Report


def print_report(results: dict[str, dict[str, Cell]], args: argparse.Namespace) -> None:
    names = [s for s in args.servers if s in results]
    sent = (f"{args.unique_signatures} requests each signed on its own, in turn" if args.unique_signatures
            else "one pre-signed request replayed")
    print(f"\nwrk: {args.threads} thread(s), {args.connections} connections, {sent}, "
          f"{args.seconds:g} s x {args.rounds} alternated rounds (medians); kms-iac --workers {args.workers}; "
          f"{os.cpu_count()} CPUs; load average at start {args.load_at_start}")
    print(f"kms-iac served by Python {platform.python_version()} at {os.path.realpath(sys.executable)}"
          + (f"; kms-iac@python by {os.path.realpath(args.python)}" if "kms-iac@python" in names else ""))
    header = f"{'op':<19} {'server':<14} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11}"
    print(header)
    print("-" * len(header))
    for op in args.ops:
        for name in names:
            cell = results[name].get(op)
            if cell is None:
                print(f"{op:<19} {name:<14} {'n/a':>9}")
                continue
            j = cell.to_json()
            cpu = j["cpu_us_per_request"]
            print(f"{op:<19} {name:<14} {j['ops_per_s']:>9,.0f} {j['p50_ms']:>8.2f} {j['p99_ms']:>8.2f} "
                  f"{'-' if cpu is None else f'{cpu:,.0f}':>11}{'  (!) errors' if cell.failed else ''}")
    print()
    for op in args.ops:
        parts = []
        cpu_parts = []
        for a, b in (("kms-iac", "local-kms"), ("kms-iac+authz", "local-kms"), ("kms-iac", "moto")):
            ca, cb = results.get(a, {}).get(op), results.get(b, {}).get(op)
            if ca and cb and cb.ops_per_s:
                parts.append(f"{a}/{b} {ca.ops_per_s / cb.ops_per_s:.2f}x")
            cpu_a, cpu_b = _cpu(ca), _cpu(cb)
            if cpu_a and cpu_b and b == "local-kms":
                cpu_parts.append(f"{a} {cpu_b / cpu_a:.2f}x less than {b}")
        off, on = results.get("kms-iac", {}).get(op), results.get("kms-iac+authz", {}).get(op)
        if off and on and off.ops_per_s:
            parts.append(f"authorization cost {1 - on.ops_per_s / off.ops_per_s:.1%}")
        if _cpu(off) and _cpu(on):
            cpu_parts.append(f"authorization {1 - _cpu(off) / _cpu(on):.1%} of kms-iac+authz's")
        print(f"{op:<19} " + ", ".join(parts))
        if cpu_parts:  # server CPU per request: what a busy machine's share of CPU does not move
            print(f"{'':<19} CPU per request: " + ", ".join(cpu_parts))


def _cpu(cell: Cell | None) -> float | None:
    return cell.median(lambda r: r.cpu_us_per_request) if cell else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="wrk window per round (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds; tables show medians (default 3)")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="kms-iac worker processes (default: the machine's CPUs)")
    ap.add_argument("--servers", default=",".join(DEFAULT_SERVERS), help=f"comma list of {','.join(SERVERS)}")
    ap.add_argument("--baseline", type=Path, help="a checkout of another kms-iac version, served as kms-iac@baseline "
                    "(kms-iac+authz@baseline: with the principals file)")
    ap.add_argument("--python", help="another interpreter (with kms-iac's dependencies) serving this checkout as "
                                     "kms-iac@python")
    ap.add_argument("--ops", default=",".join(OPS), help=f"comma list of {','.join(OPS)}")
    ap.add_argument("--startup", type=int, default=5, metavar="N", help="start-up runs per server (0: skip)")
    ap.add_argument("--interference", action="store_true",
                    help="also: Encrypt latency of kms-iac (--workers 1) alone and with RSA_4096 Sign requests alongside")
    ap.add_argument("--sign-connections", type=int, default=2, help="connections sending RSA_4096 Sign (default 2)")
    ap.add_argument("--unique-signatures", type=int, default=0, metavar="N",
                    help="send N requests each signed on its own (an extra signed header), in turn, instead of "
                         "replaying one: what SDK clients send (each verified afresh)")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args(argv)
    args.servers = [s for s in args.servers.split(",") if s]
    args.ops = [o for o in args.ops.split(",") if o]
    bad = [s for s in args.servers if s not in SERVERS] + [o for o in args.ops if o not in OPS]
    if bad:
        ap.error(f"unknown server or op: {', '.join(bad)}")
    args.load_at_start = " ".join(f"{v:.2f}" for v in os.getloadavg())
    wrk = ensure_wrk()
    signing_specs = tuple(o[len("Sign-"):] for o in args.ops if o.startswith("Sign-"))
    started = time.monotonic()
    doc: dict[str, Any] = {"meta": {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "wrk": {"threads": args.threads, "connections": args.connections, "seconds": args.seconds,
                "unique_signatures": args.unique_signatures},
        "rounds": args.rounds, "kms_iac_workers": args.workers, "load_at_start": args.load_at_start,
        "local_kms": f"{peers.LOCAL_KMS_MODULE}@{peers.LOCAL_KMS_VERSION}"}}
    work = Path(tempfile.mkdtemp(prefix="kms-bench-server-"))
    try:
        with ExitStack() as stack:
            servers: dict[str, Server] = {}
            for name in args.servers:
                log(f"== starting {name}")
                try:
                    server = start_server(name, args.workers, work, args.baseline, args.python)
                except peers.PeerUnavailable as exc:
                    log(f"  skipped: {exc}")
                    continue
                stack.callback(server.handle.stop)
                server.keys = setup_keys(server, signing_specs)
                for op, why in server.unsupported.items():
                    log(f"  {name} cannot run {op}: {why}")
                servers[name] = server
            results = measure_all(servers, args, wrk)
            doc["results"] = {s: {op: c.to_json() for op, c in per.items()} for s, per in results.items()}
            doc["unsupported"] = {s.name: s.unsupported for s in servers.values()}
            doc["interference"] = {}
            for name in ("kms-iac", "kms-iac@baseline"):
                if args.interference and name in servers:
                    # one worker: every connection shares its event loop (with more, the kernel may
                    # hand the signs' connections to an idle worker and hide the stall)
                    log(f"== interference: {name} --workers 1, Encrypt with RSA_4096 Sign alongside")
                    single = start_server(name, 1, work, args.baseline)
                    try:
                        single.keys = setup_keys(single, ())
                        doc["interference"][name] = interference(single, args, wrk)
                    finally:
                        single.handle.stop()
        if args.startup:
            log("== start-up")
            names = [n for n in ("kms-iac", "kms-iac@baseline", "local-kms", "moto")
                     if n in args.servers or (n == "kms-iac" and "kms-iac+authz" in args.servers)]
            doc["startup_s"] = measure_startup(names, args.startup, args.workers, work, args.baseline)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc["meta"]["load_at_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    doc["meta"]["runtime_s"] = round(time.monotonic() - started, 1)
    print_report(results, args)
    for name, inter in doc.get("interference", {}).items():
        for mode in ("alone", "with_rsa4096_signs"):
            rows = inter[mode]
            print(f"{name} (--workers 1) Encrypt {mode:<19}: {statistics.median(r['ops_per_s'] for r in rows):8,.0f} ops/s, "
                  f"p50 {statistics.median(r['p50_ms'] for r in rows):.2f} ms, "
                  f"p99 {statistics.median(r['p99_ms'] for r in rows):.2f} ms, "
                  f"max {statistics.median(r['max_ms'] for r in rows):.1f} ms")
        print(f"{name} (--workers 1) RSA_4096 Sign alongside ({args.sign_connections} connections): "
              f"{statistics.median(inter['rsa4096_signs_per_s']):,.1f} ops/s")
    for name, values in doc.get("startup_s", {}).items():
        if values:
            print(f"start-up {name:<10}: median {statistics.median(values) * 1e3:6.0f} ms "
                  f"(min {min(values) * 1e3:.0f}, max {max(values) * 1e3:.0f}, {len(values)} runs)")
    print(f"load average at end {doc['meta']['load_at_end']}; runtime {doc['meta']['runtime_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        log(f"wrote {args.json}")
    failed = any(c.failed for per in results.values() for c in per.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
