"""The request path's random bytes (nonces, data keys): slices of the OS's CSPRNG that are
never handed out twice, not across threads and not across forked workers."""

from __future__ import annotations

import os
import threading

from kms_iac.backend import entropy
from kms_iac.backend.entropy import random_bytes


def test_sizes_and_no_slice_handed_out_twice() -> None:
    draws = [random_bytes(n) for n in [12] * 2000 + [32] * 500 + [1, 1024, 4096, 5000]]
    assert [len(d) for d in draws] == [12] * 2000 + [32] * 500 + [1, 1024, 4096, 5000]
    nonces = draws[:2000]
    assert len(set(nonces)) == len(nonces)  # 96-bit values: a repeat means a slice was reused


def test_threads_never_share_a_slice() -> None:
    seen: list[list[bytes]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def draw(out: list[bytes]) -> None:
        start.wait()
        for _ in range(3000):
            out.append(random_bytes(12))

    threads = [threading.Thread(target=draw, args=(out,)) for out in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [n for out in seen for n in out]
    assert len(set(every)) == len(every) == 12000


def test_a_forked_worker_never_hands_out_its_parents_bytes() -> None:
    random_bytes(12)  # the parent holds an unused pool now
    assert entropy._pool
    rest = entropy._pool[entropy._at:]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, b"".join(random_bytes(16) for _ in range(64)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        child = f.read()
    os.waitpid(pid, 0)
    assert len(child) == 1024
    assert rest[:16] not in child and child[:16] not in rest  # the child drew its own pool
    assert random_bytes(16) not in child
