"""Injectable time, so tests can move a key through its deletion window or rotation period."""

from __future__ import annotations

import threading
import time


class Clock:
    """Wall-clock time in epoch seconds."""

    def now(self) -> float:
        return time.time()


class ManualClock(Clock):
    """A clock that only moves when told to (tests, ``--clock manual`` servers)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, epoch: float) -> None:
        with self._lock:
            self._now = epoch


class OffsetClock(Clock):
    """Wall-clock time plus an adjustable offset: a server whose time tests can jump forward."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> float:
        self.offset += seconds
        return self.now()


DAY = 86400.0
