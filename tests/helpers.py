"""Test helpers: a real ``kms-iac local serve`` process on a free loopback port."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.config

ROOT = Path(__file__).resolve().parents[1]
NO_CLIENT_VALIDATION = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1}, parameter_validation=False)
TEST_CREDS = {"aws_access_key_id": "AKIAKMSIACTEST000001", "aws_secret_access_key": "test-secret"}


class ServerProcess:
    """Starts the server with ``--port 0`` and reads the port from its ready line."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = Path(data_dir)
        self.extra = extra
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> "ServerProcess":
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kms_iac", "local", "serve", "--host", "127.0.0.1", "--port", "0",
             "--data-dir", str(self.data_dir), *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
        )
        assert self.proc.stdout is not None
        # Wait for the ready line (or the server's exit), bounded: a server that never comes
        # up fails the test with its output instead of hanging it.
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("listening on "):
            if not ready:
                self.kill()
                raise RuntimeError(f"server printed no ready line within {timeout:.0f} s")
            if not line:  # stdout closed: the server is exiting; wait for it so its stderr is complete
                try:
                    self.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pass
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.kill()
            raise RuntimeError(f"server did not start: {line!r} {err}")
        self.url = line.split()[-1]
        return self

    def client(self, region: str = "us-east-1", **kw):
        """A boto3 client with client-side validation off, so the server's own checks are what is tested."""
        return boto3.client(
            "kms", endpoint_url=self.url, region_name=region, **{**TEST_CREDS, **kw},
            config=NO_CLIENT_VALIDATION,
        )

    def advance_clock(self, seconds: float) -> float:
        """Move a ``--clock-control`` server's clock forward; returns its new time (epoch seconds)."""
        import urllib.request

        req = urllib.request.Request(
            self.url, data=json.dumps({"Seconds": seconds}).encode(),
            headers={"X-Amz-Target": "KmsIacAdmin.AdvanceClock", "Content-Type": "application/x-amz-json-1.1"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())["Now"]

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto's KMS server on a free loopback port: the stand-in for real AWS."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "MotoServer":
        import urllib.request

        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1)
                return self
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("moto server did not start")

    def client(self, region: str = "us-east-1"):
        return boto3.client("kms", endpoint_url=self.url, region_name=region, **TEST_CREDS)

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)


@dataclass
class ScanRun:
    """A ``kms-iac scan`` run: exit status, output, and the JSON report's findings."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def findings(self) -> list[dict]:
        return json.loads(self.stdout)["findings"]
