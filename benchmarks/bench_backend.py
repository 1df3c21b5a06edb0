#!/usr/bin/env python3
"""Encrypt / Decrypt / GenerateDataKey throughput through Python clients: kms-iac vs moto vs local-kms.

Client-bound: these figures say what Python clients (a thin http.client loop, or boto3 with
``--client boto3``: what an application sees) get from each server. On a small machine the
clients spend more CPU per request than the servers, so the figures measure the clients as
much as the servers. ``bench_server.py`` measures the servers themselves, with a C load
generator (wrk).

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
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
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


def window_timeout(job: OpJob) -> float:
    """How long to wait at the window barrier: process start, warm-up and one slow request."""
    return BARRIER_TIMEOUT_S + job.warmup + REQUEST_TIMEOUT_S


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
        window.abort()  # don't keep the parent and siblings waiting for a window that can't start
        queue.put(("error", traceback.format_exc()))


# --------------------------------------------------------------------------
# Orchestration


@dataclass
class OpResult:
    """What one round measured on one (server, op): all client processes summed."""

    ops_per_s: float
    ok: int
    non_200: int
    errors: int
    verified: int  # processes whose first and final responses were both correct
    connects: int
    requests: int
    procs: int
    problems: list[str]
    server_cpu_s: float | None  # CPU time of the server's process tree in the window

    @property
    def failed(self) -> bool:
        """Any failed request, wrong answer, or a process that verified nothing."""
        return bool(self.non_200 or self.errors or self.problems or self.verified < self.procs or not self.ok)

    @property
    def cpu_us_per_request(self) -> float | None:
        """Server CPU microseconds per successful request, if CPU time was measurable."""
        if self.server_cpu_s is None or self.ok <= 0:
            return None
        return self.server_cpu_s / self.ok * 1e6


@dataclass
class Cell:
    """Every round of one (server, op) cell of the tables; never empty once stored."""

    rounds: list[OpResult] = field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        return statistics.median(r.ops_per_s for r in self.rounds)

    @property
    def ops_per_s_min(self) -> float:
        return min(r.ops_per_s for r in self.rounds)

    @property
    def ops_per_s_max(self) -> float:
        return max(r.ops_per_s for r in self.rounds)

    @property
    def cpu_us_values(self) -> list[float]:
        return [v for r in self.rounds if (v := r.cpu_us_per_request) is not None]

    @property
    def cpu_us_per_request(self) -> float | None:
        values = self.cpu_us_values
        return statistics.median(values) if values else None

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.rounds)

    def to_json(self) -> dict[str, Any]:
        cpu = self.cpu_us_values
        return {
            "ops_per_s": self.ops_per_s,
            "ops_per_s_min": self.ops_per_s_min,
            "ops_per_s_max": self.ops_per_s_max,
            "cpu_us_per_request": self.cpu_us_per_request,
            "cpu_us_per_request_min": min(cpu, default=None),
            "cpu_us_per_request_max": max(cpu, default=None),
            "failed": self.failed,
            "rounds": [
                {**asdict(r), "cpu_us_per_request": r.cpu_us_per_request, "failed": r.failed} for r in self.rounds
            ],
        }


Results = dict[str, dict[str, Cell]]  # server -> op -> cell


def run_op(job: OpJob, procs: int, server_cpu: Callable[[], float | None]) -> OpResult:
    """Run ``procs`` client processes on one job simultaneously and sum their rates.

    This process joins the client processes at the start of their measuring
    window and reads ``server_cpu()`` then and ``job.seconds`` later.
    """
    # fork is cheapest and the parent holds no threads; spawn where fork is missing.
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
    barrier = ctx.Barrier(procs)
    window = ctx.Barrier(procs + 1)
    queue = ctx.Queue()
    workers = [ctx.Process(target=_worker_entry, args=(job, barrier, window, queue), daemon=True) for _ in range(procs)]
    for proc in workers:
        proc.start()
    deadline = time.monotonic() + window_timeout(job) + job.seconds + 2 * REQUEST_TIMEOUT_S
    outcomes: list[tuple[str, Any]] = []
    cpu_s: float | None = None
    try:
        try:
            window.wait(window_timeout(job))
        except threading.BrokenBarrierError:
            pass  # a client process failed before its window; its report below says why
        else:
            start = time.perf_counter()
            before = server_cpu()
            time.sleep(max(0.0, start + job.seconds - time.perf_counter()))
            after = server_cpu()
            if before is not None and after is not None:
                cpu_s = after - before
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
        server_cpu_s=cpu_s,
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


@dataclass
class RunningServer:
    """A started server with its benchmark key and a ciphertext for Decrypt."""

    name: str
    handle: peers.ServerHandle
    key_id: str
    ciphertext: bytes

    def job(self, op: str, args: argparse.Namespace) -> OpJob:
        """The job for one round; raw requests are signed afresh so no signature gets stale."""
        body = json_body(op, self.key_id, self.ciphertext) if args.client == "raw" else b""
        headers = sign(self.handle.url, op, body) if args.client == "raw" else ()
        return OpJob(
            self.name, op, self.handle.url, self.key_id, self.ciphertext,
            args.seconds, args.warmup, args.client, body, headers,
        )  # fmt: skip

    def measure(self, op: str, args: argparse.Namespace) -> OpResult:
        """One round of ``op``; raises if the server died meanwhile."""
        result = run_op(self.job(op, args), args.procs, self.handle.cpu_seconds)
        if self.handle.proc.poll() is not None:
            raise RuntimeError(f"{self.name} died during {op}:\n{self.handle.log_tail()}")
        return result


def start_servers(names: list[str], stack: ExitStack, skipped: dict[str, str],
                  failures: dict[str, str]) -> dict[str, RunningServer]:  # fmt: skip
    """Start the servers one at a time and create their keys; ``stack`` stops each one later."""
    running: dict[str, RunningServer] = {}
    for name in names:
        log(f"== starting {name}")
        try:
            handle = stack.enter_context(STARTERS[name]())
            running[name] = RunningServer(name, handle, *setup_server(handle.url))
        except peers.PeerUnavailable as exc:
            skipped[name] = str(exc)
            log(f"  SKIPPED {exc}")
        except Exception as exc:  # noqa: BLE001  (one broken peer must not hide the others)
            failures[name] = f"{type(exc).__name__}: {exc}"
            log(f"  FAILED {failures[name]}")
    return running


def round_order(names: list[str], round_index: int) -> list[str]:
    """Given order in even rounds (0, 2, ...), reversed in odd ones, so drift hits all alike."""
    return list(names) if round_index % 2 == 0 else list(reversed(names))


def measure_all(running: dict[str, RunningServer], args: argparse.Namespace, failures: dict[str, str]) -> Results:
    """Each op, ``args.rounds`` interleaved rounds over the running servers.

    A server that fails is stopped and dropped, results and all, so the
    tables never mix complete and partial cells; the others carry on.
    """
    results: Results = {}
    for op in args.ops:
        for index in range(args.rounds):
            for name in round_order(list(running), index):
                server = running[name]
                try:
                    result = server.measure(op, args)
                except Exception as exc:  # noqa: BLE001  (see above)
                    failures[name] = f"{type(exc).__name__}: {exc}"
                    log(f"  FAILED {failures[name]}")
                    running.pop(name).handle.stop()
                    results.pop(name, None)
                    continue
                results.setdefault(name, {}).setdefault(op, Cell()).rounds.append(result)
                cpu = result.cpu_us_per_request
                log(
                    f"  {op} round {index + 1}/{args.rounds} {name:<9}: {result.ops_per_s:8,.0f} ops/s, "
                    f"{'-' if cpu is None else f'{cpu:,.0f}'} µs server CPU/request"
                    f"{'  (!) failed' if result.failed else ''}"
                )
    return results


# --------------------------------------------------------------------------
# Reporting


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or den is None or den <= 0 else num / den


def ratio(results: Results, op: str, num: str, den: str) -> float | None:
    """``num``/``den`` median throughput for ``op`` when both servers were measured."""
    a, b = results.get(num, {}).get(op), results.get(den, {}).get(op)
    return None if a is None or b is None else _ratio(a.ops_per_s, b.ops_per_s)


def cpu_ratio(results: Results, op: str, num: str, den: str) -> float | None:
    """``num``/``den`` median server CPU per request for ``op``: how many times more ``num`` spends."""
    a, b = results.get(num, {}).get(op), results.get(den, {}).get(op)
    return None if a is None or b is None else _ratio(a.cpu_us_per_request, b.cpu_us_per_request)


def targets(results: Results, ops: list[str]) -> dict[str, dict[str, bool | None]]:
    """Per op, on medians: is kms-iac >= 10x moto, and >= local-kms? None when not measurable."""
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


def _fmt_spread(median: float, low: float, high: float, rounds: int, failed: bool) -> str:
    text = f"{median:,.0f}" if rounds < 2 else f"{median:,.0f} ({low:,.0f}–{high:,.0f})"
    return text + " (!)" if failed else text


def _fmt_rate(cell: Cell | None) -> str:
    if cell is None:
        return "-"
    return _fmt_spread(cell.ops_per_s, cell.ops_per_s_min, cell.ops_per_s_max, len(cell.rounds), cell.failed)


def _fmt_cpu(cell: Cell | None) -> str:
    if cell is None or cell.cpu_us_per_request is None:
        return "-"
    values = cell.cpu_us_values
    return _fmt_spread(cell.cpu_us_per_request, min(values), max(values), len(values), cell.failed)


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    """A table with a left-aligned first column (rich when available)."""
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
        return
    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console.width = 200  # redirected output: don't squeeze the table into 80 columns
    console.print(table)


def print_report(results: Results, args: argparse.Namespace) -> None:
    """Ops/s and server-CPU tables, failures, keep-alive notes, target verdicts."""
    print(
        f"CLIENT-BOUND figures: {args.client} Python client, {args.procs} client processes, {args.rounds} rounds of "
        f"{args.warmup:g}s warm-up + {args.seconds:g}s per server and op, kms-iac --workers {args.kms_iac_workers} "
        "(servers measured with a C load generator: bench_server.py)"
    )
    print_table(
        "ops/s (median, min–max)",
        ["op", *args.servers, "kms-iac/moto", "kms-iac/local-kms"],
        [
            [
                op,
                *(_fmt_rate(results.get(s, {}).get(op)) for s in args.servers),
                _fmt_ratio(ratio(results, op, "kms-iac", "moto")),
                _fmt_ratio(ratio(results, op, "kms-iac", "local-kms")),
            ]
            for op in args.ops
        ],
    )
    print_table(
        "server CPU µs per request (median)",
        ["op", *args.servers, "local-kms/kms-iac", "moto/kms-iac"],
        [
            [
                op,
                *(_fmt_cpu(results.get(s, {}).get(op)) for s in args.servers),
                _fmt_ratio(cpu_ratio(results, op, "local-kms", "kms-iac")),
                _fmt_ratio(cpu_ratio(results, op, "moto", "kms-iac")),
            ]
            for op in args.ops
        ],
    )

    for server, per_op in results.items():
        for op, cell in per_op.items():
            for index, run in enumerate(cell.rounds, start=1):
                if run.failed:
                    print(
                        f"(!) {server} {op} round {index}: ok={run.ok} non-200={run.non_200} errors={run.errors} "
                        f"verified-procs={run.verified}/{run.procs} {'; '.join(run.problems)}"
                    )
            connects = sum(r.connects for r in cell.rounds)
            if not cell.failed and connects > sum(r.procs for r in cell.rounds):
                requests = sum(r.requests for r in cell.rounds)
                print(
                    f"note: {server} {op}: {connects:,} TCP connections for {requests:,} requests "
                    "(server closes connections; no keep-alive)"
                )
    for name, by_op in targets(results, args.ops).items():
        verdicts = ", ".join(f"{op}: {'n/a' if ok is None else 'met' if ok else 'NOT met'}" for op, ok in by_op.items())
        print(f"target {name} (medians): {verdicts}")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def write_json(path: Path, results: Results, skipped: dict[str, str], failures: dict[str, str],
               args: argparse.Namespace, runtime_s: float) -> None:  # fmt: skip
    """Machine-readable results, including enough context to compare runs."""
    doc = {
        "meta": {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "client": args.client,
            "procs": args.procs,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "kms_iac_workers": args.kms_iac_workers,
            "runtime_s": round(runtime_s, 1),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "plaintext_bytes": len(PLAINTEXT),
            "server_cpu": "utime+stime of the server's process tree over each measuring window, per successful request",
            "versions": {
                "kms-iac": _version("kms-iac") or _version("kms_iac"),
                "moto": _version("moto"),
                "boto3": _version("boto3"),
                "local-kms": f"{peers.LOCAL_KMS_MODULE}@{peers.LOCAL_KMS_VERSION}",
            },
        },
        "results": {s: {op: cell.to_json() for op, cell in per_op.items()} for s, per_op in results.items()},
        "ratios": {
            op: {
                "kms-iac/moto": ratio(results, op, "kms-iac", "moto"),
                "kms-iac/local-kms": ratio(results, op, "kms-iac", "local-kms"),
            }
            for op in args.ops
        },
        "cpu_ratios": {
            op: {
                "local-kms/kms-iac": cpu_ratio(results, op, "local-kms", "kms-iac"),
                "moto/kms-iac": cpu_ratio(results, op, "moto", "kms-iac"),
            }
            for op in args.ops
        },
        "targets": targets(results, args.ops),
        "skipped": skipped,
        "failures": failures,
    }
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


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
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring window per round (default 5)")
    parser.add_argument("--warmup", type=float, default=0.5, help="uncounted warm-up per round (default 0.5)")
    parser.add_argument("--procs", type=int, default=2, help="client processes per op (default 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved measurements per server and op; tables show the median (default 3)")  # fmt: skip
    parser.add_argument("--client", choices=("raw", "boto3"), default="raw",
                        help="raw: pre-signed http.client (default); boto3: a boto3 KMS client")  # fmt: skip
    parser.add_argument("--servers", type=_csv(SERVERS), default=list(SERVERS), help="comma list (default all)")
    parser.add_argument("--ops", type=_csv(OPS), default=list(OPS), help="comma list (default all)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    parser.add_argument("--kms-iac-workers", type=int, default=peers.KMS_IAC_WORKERS,
                        help="worker processes of kms-iac's server (default 2: one per core, as local-kms's "
                             "Go runtime uses every core)")  # fmt: skip
    args = parser.parse_args(argv)
    peers.KMS_IAC_WORKERS = args.kms_iac_workers
    if args.seconds <= 0 or args.warmup < 0 or args.procs < 1 or args.rounds < 1:
        parser.error("--seconds must be > 0, --warmup >= 0, --procs >= 1, --rounds >= 1")
    return args


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """Turn SIGTERM into SystemExit so the cleanup in main() still stops every server."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.monotonic()
    skipped: dict[str, str] = {}
    failures: dict[str, str] = {}
    with ExitStack() as stack:  # stops every server started, whatever happens
        running = start_servers(args.servers, stack, skipped, failures)
        results = measure_all(running, args, failures)
    runtime_s = time.monotonic() - started
    print_report(results, args)
    for server, reason in skipped.items():
        print(f"skipped {server}: {reason}")
    for server, reason in failures.items():
        print(f"FAILED {server}: {reason}")
    print(f"total runtime: {runtime_s:.0f}s")
    if args.json:
        write_json(args.json, results, skipped, failures, args, runtime_s)
        log(f"wrote {args.json}")
    failed_cells = any(cell.failed for per_op in results.values() for cell in per_op.values())
    return 1 if failures or failed_cells else 0


if __name__ == "__main__":
    sys.exit(main())
