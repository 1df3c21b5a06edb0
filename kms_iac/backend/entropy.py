"""Random bytes for the request path: nonces, data keys, GenerateRandom.

``os.urandom`` is one ``getrandom`` system call per use; on the Encrypt path that was a
third of a worker's system calls (one read, one write and one getrandom a request). Here
the OS's CSPRNG is read 4 KiB at a time and handed out in slices that never overlap: the
bytes are the kernel's, only fewer calls fetch them. A forked process drops what its
parent drew (two workers must never share a nonce), and a lock keeps threads (the server's
pool) from ever being handed the same slice.
"""

from __future__ import annotations

import os
import threading

CHUNK = 4096
_pool = b""
_at = 0
_lock = threading.Lock()


def _drop() -> None:
    global _pool, _at, _lock
    _pool, _at, _lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_drop)


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS's CSPRNG, as ``os.urandom(n)``."""
    global _pool, _at
    if n > CHUNK // 4:
        return os.urandom(n)
    with _lock:
        at = _at
        if at + n > len(_pool):
            _pool, at = os.urandom(CHUNK), 0
        _at = at + n
        pool = _pool
    return pool[at:at + n]
