#!/usr/bin/env python3
"""Encrypt / Decrypt / GenerateDataKey throughput: kms-iac vs moto vs local-kms.

Every server is driven by the *same* client code over real HTTP from N
separate client processes, one server at a time so servers never compete for
CPU. The default client is deliberately thin (a keep-alive
``http.client.HTTPConnection`` re-sending a request body that was SigV4-signed
once up front) so the client is not the bottleneck; ``--client boto3``
measures what an application using boto3 would see instead.

All servers are started up front (idle, they cost next to nothing) and each
op is measured in ``--rounds`` interleaved rounds, the server order reversing
every round (kms-iac, moto, local-kms; then local-kms, moto, kms-iac; ...) so
slow drift of the machine hits every server alike. The tables report the
median per cell with the min-max spread; ratios and targets use medians.

Besides throughput, the server's CPU time (user + system, summed over its
whole process tree so forked workers count) is read from ``/proc`` at the
start and end of each measuring window and divided by the successful requests
in it: CPU microseconds per request, a figure that does not depend on how
busy the (shared) client side kept the server.

Only HTTP 200 responses count, and every process checks response contents
(e.g. Decrypt really returns the plaintext) on the first response of its
measuring window and on one extra request after it. The exit status is non-zero only for errors
(a server failing to start, failed requests, wrong answers), never for
missed performance targets.

Example::

    python benchmarks/bench_backend.py --seconds 5 --procs 2 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing as mp
import os
import platform
import signal
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402  (sibling module; the benchmarks dir is not a package)

OPS: tuple[str, ...] = ("Encrypt", "Decrypt", "GenerateDataKey")
SERVERS: tuple[str, ...] = ("kms-iac", "moto", "local-kms")
PLAINTEXT = bytes(range(256))  # 256-byte payload, as the targets are specified
DATA_KEY_BYTES = 32  # GenerateDataKey uses KeySpec AES_256
CREDENTIALS = ("test", "test")
REQUEST_TIMEOUT_S = 30.0
BARRIER_TIMEOUT_S = 60.0
TARGET_VS_MOTO = 10.0
TARGET_VS_LOCAL_KMS = 1.0

STARTERS: dict[str, Callable[[], peers.ServerHandle]] = {
    "kms-iac": peers.start_kms_iac,
    "moto": peers.start_moto,
    "local-kms": peers.start_local_kms,
}


# --------------------------------------------------------------------------
# Requests and response checks (shared by both client kinds)


@dataclass(frozen=True)
class OpJob:
    """Everything a client process needs to hammer one operation on one server."""

    server: str
    op: str
    url: str
    key_id: str
    ciphertext: bytes
    seconds: float
    warmup: float
    client: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


def boto3_params(op: str, key_id: str, ciphertext: bytes) -> dict[str, Any]:
    """Request parameters for ``op`` in boto3 form (blobs as raw bytes)."""
    if op == "Encrypt":
        return {"KeyId": key_id, "Plaintext": PLAINTEXT}
    if op == "Decrypt":
        return {"CiphertextBlob": ciphertext}
    if op == "GenerateDataKey":
        return {"KeyId": key_id, "KeySpec": "AES_256"}
    raise ValueError(f"unknown op {op}")


def json_body(op: str, key_id: str, ciphertext: bytes) -> bytes:
    """The KMS JSON 1.1 wire body for ``op`` (blobs base64-encoded)."""
    params = {
        k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
        for k, v in boto3_params(op, key_id, ciphertext).items()
    }
    return json.dumps(params, separators=(",", ":")).encode()


def sign(url: str, op: str, body: bytes) -> tuple[tuple[str, str], ...]:
    """SigV4-sign one request body once; all peers accept the replayed signature."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST",
        url=url.rstrip("/") + "/",
        data=body,
        headers={"X-Amz-Target": f"TrentService.{op}", "Content-Type": "application/x-amz-json-1.1"},
    )
    SigV4Auth(Credentials(*CREDENTIALS), "kms", peers.REGION).add_auth(request)
    return tuple((k, str(v)) for k, v in request.headers.items())


def _blob(value: Any) -> bytes:
    """Normalise a blob field: raw JSON carries base64 text, boto3 gives bytes."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return base64.b64decode(value, validate=True)
    raise TypeError(f"expected a blob, got {type(value).__name__}")


def check_payload(op: str, payload: dict[str, Any]) -> str | None:
    """Return why a 200 response is wrong for ``op``, or None if it is right."""
    try:
        if op == "Encrypt":
            blob = _blob(payload["CiphertextBlob"])
            if not blob or PLAINTEXT in blob:
                return "Encrypt: CiphertextBlob empty or contains the plaintext"
        elif op == "Decrypt":
            if _blob(payload["Plaintext"]) != PLAINTEXT:
                return "Decrypt: Plaintext differs from the encrypted plaintext"
        elif op == "GenerateDataKey":
            if len(_blob(payload["Plaintext"])) != DATA_KEY_BYTES:
                return f"GenerateDataKey: Plaintext is not {DATA_KEY_BYTES} bytes"
            if not _blob(payload["CiphertextBlob"]):
                return "GenerateDataKey: CiphertextBlob empty"
    except (KeyError, TypeError, ValueError) as exc:
        return f"{op}: malformed response ({exc!r})"
    return None


# --------------------------------------------------------------------------
# Client drivers


class Driver(Protocol):
    """One client connection able to send the job's request repeatedly."""

    connects: int

    def call(self, want_payload: bool) -> tuple[int, dict[str, Any] | None]:
        """Send one request; return (HTTP status, parsed body if asked and 200)."""
        ...

    def close(self) -> None: ...


class RawDriver:
    """Keep-alive http.client connection re-sending a pre-signed body.

    http.client reopens the socket by itself when a server answers with
    ``Connection: close`` (moto/Werkzeug does, on every response); those
    connections are counted so the report can show who disables keep-alive.
    """

    def __init__(self, job: OpJob) -> None:
        parts = urlsplit(job.url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=REQUEST_TIMEOUT_S)
        self.body = job.body
        self.headers = dict(job.headers)
        self.connects = 0

    def call(self, want_payload: bool) -> tuple[int, dict[str, Any] | None]:
        if self.conn.sock is None:
            self.connects += 1
        try:
            self.conn.request("POST", "/", self.body, self.headers)
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            raise
        if resp.status == 200 and want_payload:
            return resp.status, json.loads(data)
        return resp.status, None

    def close(self) -> None:
        self.conn.close()


class Boto3Driver:
    """A boto3 KMS client calling the operation, i.e. what applications see."""

    def __init__(self, job: OpJob) -> None:
        import boto3
        from botocore.config import Config

        self.client = boto3.client(
            "kms",
            endpoint_url=job.url,
            region_name=peers.REGION,
            aws_access_key_id=CREDENTIALS[0],
            aws_secret_access_key=CREDENTIALS[1],
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=1),
        )
        method = {"Encrypt": "encrypt", "Decrypt": "decrypt", "GenerateDataKey": "generate_data_key"}[job.op]
        self.method = getattr(self.client, method)
        self.params = boto3_params(job.op, job.key_id, job.ciphertext)
        self.connects = 0  # hidden inside urllib3's pool; not measured

    def call(self, want_payload: bool) -> tuple[int, dict[str, Any] | None]:
        from botocore.exceptions import ClientError

        try:
            payload = self.method(**self.params)
        except ClientError as exc:
            return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)), None
        return 200, payload

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------
# Client process


@dataclass
class WorkerResult:
    """What one client process measured."""

    ok: int = 0
    non_200: int = 0
    errors: int = 0
    elapsed: float = 0.0
    verified: int = 0  # correct responses checked: first of the window + final one
    connects: int = 0  # TCP connections opened (1 if the server keeps alive)
    requests: int = 0
    problems: list[str] = field(default_factory=list)


def _note(result: WorkerResult, message: str) -> None:
    if len(result.problems) < 5 and message not in result.problems:
        result.problems.append(message)


def run_worker(job: OpJob, start_window: Callable[[], object] = lambda: None) -> WorkerResult:
    """Warm up, count 200s for ``job.seconds``, verify the first and a final response.

    ``start_window`` blocks until every client process (and the parent, which
    snapshots the server's CPU time then) is ready to start counting.
    """
    driver: Driver = RawDriver(job) if job.client == "raw" else Boto3Driver(job)
    result = WorkerResult()

    def attempt(want_payload: bool) -> tuple[int, dict[str, Any] | None] | None:
        result.requests += 1
        try:
            return driver.call(want_payload)
        except (OSError, http.client.HTTPException) as exc:
            result.errors += 1
            _note(result, f"{type(exc).__name__}: {exc}")
            return None

    def verify(payload: dict[str, Any] | None) -> None:
        problem = "no response body to verify" if payload is None else check_payload(job.op, payload)
        if problem:
            _note(result, problem)
        else:
            result.verified += 1

    try:
        warm_end = time.perf_counter() + job.warmup
        while time.perf_counter() < warm_end:
            result.requests += 1
            try:
                driver.call(False)
            except (OSError, http.client.HTTPException):
                pass  # only the measuring window's errors count
        start_window()
        verify_next = True  # check the first successful response of the window
        start = time.perf_counter()
        end = start + job.seconds
        while time.perf_counter() < end:
            outcome = attempt(verify_next)
            if outcome is None:
                continue
            status, payload = outcome
            if status != 200:
                result.non_200 += 1
                _note(result, f"HTTP {status}")
                continue
            result.ok += 1
            if verify_next:
                verify(payload)
                verify_next = False
        result.elapsed = time.perf_counter() - start
        # One extra, uncounted request proves the server still answers correctly
        # after sustained load (e.g. no state corruption under concurrency).
        outcome = attempt(True)
        if outcome is not None and outcome[0] == 200:
            verify(outcome[1])
        elif outcome is not None:
            _note(result, f"HTTP {outcome[0]} on the final verification request")
    finally:
        result.connects = driver.connects
        driver.close()
    return result


def _worker_entry(job: OpJob, barrier: Any, window: Any, queue: Any) -> None:
    """Process entry point: wait for all siblings, run, always report back."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # undo the parent's cleanup handler (fork)
    try:
        barrier.wait(BARRIER_TIMEOUT_S)
        queue.put(("ok", asdict(run_worker(job, lambda: window.wait(window_timeout(job))))))
    except BaseException:  # noqa: BLE001  (report anything to the parent)
        queue.put(("error", traceback.format_exc()))


# --------------------------------------------------------------------------
# Orchestration


@dataclass
class OpResult:
    """Aggregated numbers for one (server, op) cell of the table."""

    ops_per_s: float
    ok: int
    non_200: int
    errors: int
    verified: int  # processes whose first and final responses were both correct
    connects: int
    requests: int
    procs: int
    problems: list[str]

    @property
    def failed(self) -> bool:
        """Any failed request, wrong answer, or a process that verified nothing."""
        return bool(self.non_200 or self.errors or self.problems or self.verified < self.procs or not self.ok)


def run_op(job: OpJob, procs: int) -> OpResult:
    """Run ``procs`` client processes on one job simultaneously and sum their rates."""
    # fork is cheapest and the parent holds no threads; spawn where fork is missing.
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
    barrier = ctx.Barrier(procs)
    queue = ctx.Queue()
    workers = [ctx.Process(target=_worker_entry, args=(job, barrier, queue), daemon=True) for _ in range(procs)]
    for proc in workers:
        proc.start()
    deadline = time.monotonic() + BARRIER_TIMEOUT_S + job.warmup + job.seconds + 2 * REQUEST_TIMEOUT_S
    outcomes: list[tuple[str, Any]] = []
    try:
        while len(outcomes) < procs:
            outcomes.append(queue.get(timeout=max(0.1, deadline - time.monotonic())))
    except Exception as exc:  # queue.Empty: a client process hung or died silently
        raise RuntimeError(f"{job.server}/{job.op}: client processes did not report back") from exc
    finally:
        for proc in workers:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
    failures = [detail for kind, detail in outcomes if kind == "error"]
    if failures:
        raise RuntimeError(f"{job.server}/{job.op}: client process crashed:\n{failures[0]}")
    results = [WorkerResult(**detail) for _, detail in outcomes]
    return OpResult(
        ops_per_s=sum(r.ok / r.elapsed for r in results if r.elapsed > 0),
        ok=sum(r.ok for r in results),
        non_200=sum(r.non_200 for r in results),
        errors=sum(r.errors for r in results),
        verified=sum(1 for r in results if r.verified >= 2),
        connects=sum(r.connects for r in results),
        requests=sum(r.requests for r in results),
        procs=procs,
        problems=sorted({p for r in results for p in r.problems}),
    )


def setup_server(url: str) -> tuple[str, bytes]:
    """CreateKey once and Encrypt the plaintext once (for the Decrypt test)."""
    import boto3

    client = boto3.client(
        "kms",
        endpoint_url=url,
        region_name=peers.REGION,
        aws_access_key_id=CREDENTIALS[0],
        aws_secret_access_key=CREDENTIALS[1],
    )
    key_id = client.create_key(Description="kms-iac benchmark")["KeyMetadata"]["KeyId"]
    ciphertext = client.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)["CiphertextBlob"]
    client.close()
    return key_id, ciphertext


def bench_server(name: str, args: argparse.Namespace) -> dict[str, OpResult]:
    """Start one server, benchmark each op against it, always stop it."""
    handle = STARTERS[name]()
    try:
        key_id, ciphertext = setup_server(handle.url)
        results: dict[str, OpResult] = {}
        for op in args.ops:
            job = OpJob(name, op, handle.url, key_id, ciphertext, args.seconds, args.warmup, args.client)
            if args.client == "raw":
                body = json_body(op, key_id, ciphertext)
                job = replace(job, body=body, headers=sign(handle.url, op, body))
            log(f"  {name} {op}: {args.procs} x {args.client} client, {args.warmup}s warm-up + {args.seconds}s")
            results[op] = run_op(job, args.procs)
            if handle.proc.poll() is not None:
                raise RuntimeError(f"{name} died during {op}:\n{handle.log_tail()}")
        return results
    finally:
        handle.stop()


# --------------------------------------------------------------------------
# Reporting


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ratio(results: dict[str, dict[str, OpResult]], op: str, num: str, den: str) -> float | None:
    """``num``/``den`` throughput for ``op`` when both servers were measured."""
    a, b = results.get(num, {}).get(op), results.get(den, {}).get(op)
    if a is None or b is None or b.ops_per_s <= 0:
        return None
    return a.ops_per_s / b.ops_per_s


def targets(results: dict[str, dict[str, OpResult]], ops: list[str]) -> dict[str, dict[str, bool | None]]:
    """Per op: is kms-iac >= 10x moto, and >= local-kms? None when not measurable."""
    out: dict[str, dict[str, bool | None]] = {}
    for name, den, factor in (
        (f"kms-iac >= {TARGET_VS_MOTO:g}x moto", "moto", TARGET_VS_MOTO),
        ("kms-iac >= local-kms", "local-kms", TARGET_VS_LOCAL_KMS),
    ):
        out[name] = {}
        for op in ops:
            r = ratio(results, op, "kms-iac", den)
            out[name][op] = None if r is None else r >= factor
    return out


def _fmt_rate(cell: OpResult | None) -> str:
    if cell is None:
        return "-"
    text = f"{cell.ops_per_s:,.0f}"
    return text + " (!)" if cell.failed else text


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def print_report(results: dict[str, dict[str, OpResult]], args: argparse.Namespace) -> None:
    """Ops/s table (rich when available), failures, keep-alive notes, target verdicts."""
    headers = ["op", *args.servers, "kms-iac/moto", "kms-iac/local-kms"]
    rows = [
        [
            op,
            *(_fmt_rate(results.get(s, {}).get(op)) for s in args.servers),
            _fmt_ratio(ratio(results, op, "kms-iac", "moto")),
            _fmt_ratio(ratio(results, op, "kms-iac", "local-kms")),
        ]
        for op in args.ops
    ]
    title = f"ops/s: {args.client} client, {args.procs} client processes, {args.seconds:g}s per op"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
        print(title)
        for i, row in enumerate([headers, *rows]):
            cells = (c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True)))
            print("  ".join(cells))
            if i == 0:
                print("  ".join("-" * w for w in widths))
    else:
        table = Table(title=title)
        for i, h in enumerate(headers):
            table.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
        for row in rows:
            table.add_row(*row)
        Console().print(table)

    for server, per_op in results.items():
        for op, cell in per_op.items():
            if cell.failed:
                print(
                    f"(!) {server} {op}: ok={cell.ok} non-200={cell.non_200} errors={cell.errors} "
                    f"verified-procs={cell.verified}/{cell.procs} {'; '.join(cell.problems)}"
                )
            elif cell.connects > cell.procs:
                print(
                    f"note: {server} {op}: {cell.connects:,} TCP connections for {cell.requests:,} requests "
                    "(server closes connections; no keep-alive)"
                )
    for name, by_op in targets(results, args.ops).items():
        verdicts = ", ".join(f"{op}: {'n/a' if ok is None else 'met' if ok else 'NOT met'}" for op, ok in by_op.items())
        print(f"target {name}: {verdicts}")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def write_json(path: Path, results: dict[str, dict[str, OpResult]], skipped: dict[str, str],
               failures: dict[str, str], args: argparse.Namespace) -> None:  # fmt: skip
    """Machine-readable results, including enough context to compare runs."""
    doc = {
        "meta": {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "client": args.client,
            "procs": args.procs,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "plaintext_bytes": len(PLAINTEXT),
            "versions": {
                "kms-iac": _version("kms-iac") or _version("kms_iac"),
                "moto": _version("moto"),
                "boto3": _version("boto3"),
                "local-kms": f"{peers.LOCAL_KMS_MODULE}@{peers.LOCAL_KMS_VERSION}",
            },
        },
        "results": {
            s: {op: {**asdict(cell), "failed": cell.failed} for op, cell in per_op.items()}
            for s, per_op in results.items()
        },
        "ratios": {
            op: {
                "kms-iac/moto": ratio(results, op, "kms-iac", "moto"),
                "kms-iac/local-kms": ratio(results, op, "kms-iac", "local-kms"),
            }
            for op in args.ops
        },
        "targets": targets(results, args.ops),
        "skipped": skipped,
        "failures": failures,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


def _csv(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        bad = [v for v in items if v not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}")
        return items

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring window per op (default 5)")
    parser.add_argument("--warmup", type=float, default=0.5, help="uncounted warm-up per op (default 0.5)")
    parser.add_argument("--procs", type=int, default=2, help="client processes per op (default 2)")
    parser.add_argument("--client", choices=("raw", "boto3"), default="raw",
                        help="raw: pre-signed http.client (default); boto3: a boto3 KMS client")  # fmt: skip
    parser.add_argument("--servers", type=_csv(SERVERS), default=list(SERVERS), help="comma list (default all)")
    parser.add_argument("--ops", type=_csv(OPS), default=list(OPS), help="comma list (default all)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    parser.add_argument("--kms-iac-workers", type=int, default=peers.KMS_IAC_WORKERS,
                        help="worker processes of kms-iac's server (default 2: one per core, as local-kms's "
                             "Go runtime uses every core)")
    args = parser.parse_args(argv)
    peers.KMS_IAC_WORKERS = args.kms_iac_workers
    if args.seconds <= 0 or args.warmup < 0 or args.procs < 1:
        parser.error("--seconds must be > 0, --warmup >= 0, --procs >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, dict[str, OpResult]] = {}
    skipped: dict[str, str] = {}
    failures: dict[str, str] = {}
    for server in args.servers:
        log(f"== {server}")
        try:
            results[server] = bench_server(server, args)
        except peers.PeerUnavailable as exc:
            skipped[server] = str(exc)
            log(f"  SKIPPED {exc}")
        except Exception as exc:  # noqa: BLE001  (one broken peer must not hide the others)
            failures[server] = f"{type(exc).__name__}: {exc}"
            log(f"  FAILED {failures[server]}")
    print_report(results, args)
    for server, reason in skipped.items():
        print(f"skipped {server}: {reason}")
    for server, reason in failures.items():
        print(f"FAILED {server}: {reason}")
    if args.json:
        write_json(args.json, results, skipped, failures, args)
        log(f"wrote {args.json}")
    failed_cells = any(cell.failed for per_op in results.values() for cell in per_op.values())
    return 1 if failures or failed_cells else 0


if __name__ == "__main__":
    sys.exit(main())
