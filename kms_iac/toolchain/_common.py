"""What the toolchain provisioners share: the cache directory, one builder at a time, and
long steps that say what they are doing while they run.

Standard library only: ``scripts/ensure_*.sh`` run these modules with whatever Python
they find, before (or without) the project's virtualenv.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, Mapping, Sequence, TextIO


class ToolchainError(RuntimeError):
    """A tool cannot be provided; the message is one line saying why and what to do."""


def cache_root(kind: str, override_var: str, env: Mapping[str, str] | None = None) -> Path:
    """``$<override_var>``, else ``${XDG_CACHE_HOME:-~/.cache}/kms-iac/<kind>``: shared by every
    kms-iac install of this user (a checkout and any virtualenv with the wheel)."""
    env = os.environ if env is None else env
    if env.get(override_var):
        return Path(env[override_var])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kms-iac" / kind


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file``: a second builder waits, then finds the work done.

    The same ``flock`` the shell versions took, so any mix of callers excludes each other.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def point_symlink(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target``, atomically (concurrent callers see the old link or
    the new one, never none), and only when it does not already point there."""
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def minutes(seconds: float) -> str:
    """``75`` -> ``1m15s``: how people read build times."""
    s = int(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Reporter:
    """Progress lines on stderr, ``<prefix>: ...``; long steps repeat a heartbeat with elapsed time.

    A cold Pulumi build is silent for minutes at a time (``go build`` prints nothing until it
    fails), so without a heartbeat it looks hung.
    """

    def __init__(self, prefix: str, usually: str = "", interval: float = 30.0, stream: TextIO | None = None) -> None:
        self.prefix = prefix
        self.usually = usually
        self.interval = interval
        self.stream = stream
        self.started = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since this reporter was made (the start of the whole job)."""
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        stream = self.stream or sys.stderr
        print(f"{self.prefix}: {message}", file=stream, flush=True)

    def run(self, label: str, cmd: Sequence[str], cwd: Path | None = None,
            env: Mapping[str, str] | None = None) -> None:
        """Run one step, saying when it starts and, every ``interval`` seconds, how long it and the
        whole job have taken. Its own output (hundreds of ``go: downloading`` lines) is shown
        only if it fails, where it says why."""
        self.say(f"{label} ...")
        step_started = time.monotonic()
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(self.interval):
                now = time.monotonic()
                usually = f"; {self.usually}" if self.usually else ""
                self.say(f"{label}: {minutes(now - step_started)} (all steps so far {minutes(now - self.started)}"
                         f"{usually})")

        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        try:
            proc = subprocess.run(list(cmd), cwd=cwd, env=dict(env) if env is not None else None,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        except OSError as e:
            raise ToolchainError(f"{label}: cannot run {cmd[0]}: {e.strerror}") from None
        finally:
            done.set()
            beat.join()
        if proc.returncode != 0:
            (self.stream or sys.stderr).write(proc.stdout)
            raise ToolchainError(f"{label} failed (exit status {proc.returncode}): {' '.join(cmd)}")
        self.say(f"{label}: done in {minutes(time.monotonic() - step_started)}")
