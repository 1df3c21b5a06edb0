"""Start the KMS servers the backend benchmark compares against.

Each ``start_*`` function launches one server as a child process bound to
loopback, blocks until its TCP port accepts connections, and returns a
:class:`ServerHandle`. Peers are external programs on purpose: the benchmark
must talk to every server over real HTTP from separate processes, so that the
numbers compare servers rather than in-process shortcuts.

:meth:`ServerHandle.cpu_seconds` reads the CPU time the server has used so far
(its whole process tree, so forked workers count too) from ``/proc``.

The local-kms Go binary is built once with ``go install`` through the Go
module proxy and cached under ``~/.cache/kms-iac/peers/`` so later runs start
instantly.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(os.environ.get("KMS_IAC_PEERS_CACHE", Path.home() / ".cache" / "kms-iac" / "peers"))

# local-kms tags its releases v3.x.y but its go.mod says ``module
# github.com/nsmithuk/local-kms`` (no /v3 suffix), so the Go module proxy
# refuses every v3 tag ("403 This module version is not available"). The only
# installable versions are pseudo-versions of the default branch; pin one so
# runs are reproducible. Override with LOCAL_KMS_VERSION (e.g. "latest").
LOCAL_KMS_MODULE = "github.com/nsmithuk/local-kms"
LOCAL_KMS_VERSION = os.environ.get("LOCAL_KMS_VERSION", "v0.0.0-20260228092603-2a5e92d09ab6")

# Region/account every peer is configured with, matching the client's SigV4 scope.
REGION = "us-east-1"
LOCAL_KMS_ACCOUNT_ID = "111122223333"

STARTUP_TIMEOUT_S = 60.0

PROC = Path("/proc")
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN; otherwise scan /proc.
_HAS_CHILDREN_FILES = (PROC / str(os.getpid()) / "task" / str(os.getpid()) / "children").exists()


class PeerUnavailable(RuntimeError):
    """A peer cannot run on this machine (e.g. not installed); skip it, don't fail."""


@dataclass
class ServerHandle:
    """A running server child process; ``stop()`` is idempotent."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    _cleanup: list[Path] = field(default_factory=list)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process we started (SIGTERM, then SIGKILL), then tidy up.

        The server runs in its own session, so its process group id is its pid.
        Once it is reaped, anything still in that group is a descendant it left
        behind (e.g. a forked worker of a SIGKILLed parent): kill those too. A
        pid still in use as a group id is never reused, so this hits nothing else.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        if hasattr(os, "killpg"):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass  # the group is empty: nothing left behind
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)
        self._cleanup.clear()
        self.log_path.unlink(missing_ok=True)

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) used so far by the server and all its descendants.

        None where ``/proc`` is unavailable or the server has exited.
        """
        return process_tree_cpu_seconds(self.proc.pid)

    def log_tail(self, lines: int = 20) -> str:
        """Last lines of the server's combined stdout/stderr, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3 onwards of ``/proc/<pid>/stat`` (after the parenthesised comm, which
    may contain spaces), or None if the process is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _children_map() -> dict[int, list[int]]:
    """ppid -> child pids for every process, from a scan of ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` from ``/proc/<pid>/task/*/children`` (any thread may fork)."""
    kids: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return kids
    for task in tasks:
        try:
            kids.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass  # the thread exited meanwhile
    return kids


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    scanned = None if _HAS_CHILDREN_FILES else _children_map()
    tree: list[int] = []
    pending = [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(_children(pid) if scanned is None else scanned.get(pid, []))
    return tree


def process_tree_cpu_seconds(root: int) -> float | None:
    """Sum of utime + stime over ``root``'s process tree, in seconds.

    cutime + cstime (CPU of children already reaped) are added too, so a worker
    exiting and being reaped by its parent moves its time within the sum rather
    than out of it; for long-lived servers they are constant and cancel out of
    any before/after difference. None if ``/proc`` is missing or ``root`` is gone.
    """
    if not PROC.is_dir() or _stat_fields(root) is None:
        return None
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += sum(int(v) for v in fields[11:15])  # stat fields 14-17: utime stime cutime cstime
    return ticks / CLOCK_TICKS_PER_S


def free_port() -> int:
    """Ask the kernel for an unused loopback port (tiny race, fine for benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _launch(
    name: str,
    cmd: list[str],
    port: int,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    ready_line: str | None = None,
    cleanup: list[Path] | None = None,
) -> ServerHandle:
    """Spawn ``cmd`` with output to a log file and wait until ``port`` answers.

    If ``ready_line`` is given, that text must also appear in the output first,
    so servers with a readiness contract are held to it.
    """
    log_fd, log_name = tempfile.mkstemp(prefix=f"kms-bench-{name}-", suffix=".log")
    log_path = Path(log_name)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with os.fdopen(log_fd, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd or tempfile.gettempdir(),
            start_new_session=True,  # keep terminal Ctrl-C from hitting servers mid-run
        )
    handle = ServerHandle(name, f"http://127.0.0.1:{port}", proc, log_path, list(cleanup or []))
    try:
        _wait_ready(handle, port, ready_line)
    except BaseException:  # incl. KeyboardInterrupt/SystemExit: never leave the server behind
        handle.stop()
        raise
    return handle


def _wait_ready(handle: ServerHandle, port: int, ready_line: str | None) -> None:
    """Return once the server's port answers (and ``ready_line`` was printed); raise if it never does."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if handle.proc.poll() is not None:
            raise RuntimeError(
                f"{handle.name} exited with code {handle.proc.returncode} during startup:\n{handle.log_tail()}"
            )
        line_ok = ready_line is None or ready_line in handle.log_path.read_text(errors="replace")
        if line_ok and _port_answers(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{handle.name} not ready on port {port} within {STARTUP_TIMEOUT_S:.0f}s:\n{handle.log_tail()}")


def ensure_local_kms_binary() -> Path:
    """Return the cached local-kms binary, building it with ``go install`` if absent.

    The binary lives in a per-version directory so changing the pin rebuilds
    while an unchanged pin is a no-op.
    """
    bin_dir = CACHE_DIR / f"local-kms-{LOCAL_KMS_VERSION}"
    binary = bin_dir / "local-kms"
    if binary.is_file() and os.access(binary, os.X_OK) and LOCAL_KMS_VERSION != "latest":
        return binary
    go = shutil.which("go")
    if go is None:
        raise PeerUnavailable("local-kms: the Go toolchain ('go') is not on PATH")
    bin_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GOBIN": str(bin_dir),
        "GOTOOLCHAIN": "local",  # never try to download another Go toolchain
        "GOFLAGS": "-mod=mod",
    }
    cmd = [go, "install", f"{LOCAL_KMS_MODULE}@{LOCAL_KMS_VERSION}"]
    print(f"building local-kms: {' '.join(cmd)} (GOBIN={bin_dir})", file=sys.stderr, flush=True)
    started = time.monotonic()
    result = subprocess.run(cmd, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if result.returncode != 0 or not binary.is_file():
        raise RuntimeError(f"go install of local-kms failed:\n{result.stderr.strip()}")
    print(f"built local-kms in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    return binary


def start_moto(port: int | None = None) -> ServerHandle:
    """moto's standalone server (Flask/Werkzeug, threaded, closes every connection)."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise PeerUnavailable("moto: not installed (pip install 'moto[server]')")
    port = port or free_port()
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return _launch("moto", cmd, port)


def start_local_kms(port: int | None = None, data_dir: Path | None = None) -> ServerHandle:
    """nsmithuk/local-kms with its LevelDB in ``data_dir`` (a fresh temp dir if None).

    It always binds 0.0.0.0 (only the port is configurable); KMS_REGION must
    match the client's signing region or key ARNs come out as eu-west-2, and
    KMS_SEED_PATH is pointed at a missing file so a stray /init/seed.yaml on
    the host can't leak keys into the run.
    """
    binary = ensure_local_kms_binary()
    port = port or free_port()
    cleanup: list[Path] = []
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="kms-bench-local-kms-"))
        cleanup.append(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "PORT": str(port),
        "KMS_REGION": REGION,
        "KMS_ACCOUNT_ID": LOCAL_KMS_ACCOUNT_ID,
        "KMS_DATA_PATH": str(data_dir / "db"),
        "KMS_SEED_PATH": str(data_dir / "no-seed.yaml"),
    }
    return _launch("local-kms", [str(binary)], port, env=env, cleanup=cleanup)


def _kms_iac_env(source: Path | None = None) -> dict[str, str]:
    """Put this checkout (or ``source``, another one) first on the path so the benchmark measures its code."""
    path = os.pathsep.join(p for p in (str(source or REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}


KMS_IAC_WORKERS = int(os.environ.get("KMS_IAC_BENCH_WORKERS", "2"))


def start_kms_iac(port: int | None = None, data_dir: Path | None = None, workers: int | None = None,
                  principals: Path | None = None, source: Path | None = None,
                  python: str | None = None) -> ServerHandle:
    """kms-iac's own server; ready once it printed ``listening on http://HOST:PORT``.

    ``workers``: worker processes (default :data:`KMS_IAC_WORKERS`); ``principals``: a
    principals file, which turns on SigV4 verification and authorization; ``source``: run the
    kms-iac of another checkout (e.g. the previous version, for before/after figures in one run);
    ``python``: the interpreter to serve with (default: this one), which needs kms-iac's dependencies.

    The import check runs in a child with the server's exact environment, so
    "importable here" and "importable by the server" cannot disagree.
    """
    env = _kms_iac_env(source)
    python = python or sys.executable
    probe = subprocess.run(
        [python, "-c", "import kms_iac"],
        cwd=source or REPO_ROOT, env={**os.environ, **env}, capture_output=True, text=True,
    )  # fmt: skip
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        raise PeerUnavailable(f"kms-iac: 'import kms_iac' fails ({last})")
    port = port or free_port()
    cleanup: list[Path] = []
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="kms-bench-kms-iac-"))
        cleanup.append(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        python, "-m", "kms_iac", "local", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
        "--workers", str(workers or KMS_IAC_WORKERS),
    ]  # fmt: skip
    if principals is not None:
        cmd += ["--principals", str(principals)]
    return _launch("kms-iac", cmd, port, env=env, cwd=source or REPO_ROOT, ready_line="listening on http://",
                   cleanup=cleanup)
