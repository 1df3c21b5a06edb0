"""Optional request quota (token bucket), so clients' ThrottlingException retry paths can be tested."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    def __init__(self, per_second: float, burst: float | None = None) -> None:
        self.rate = float(per_second)
        self.capacity = float(burst if burst is not None else max(1.0, per_second))
        self._tokens = self.capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def refund(self) -> None:
        """Give back the token of a request that will be counted again (see ``core.Offload``)."""
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + 1.0)
