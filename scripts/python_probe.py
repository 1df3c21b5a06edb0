"""Run by scripts/pick_python.sh with each candidate interpreter: prints how long a short,
interpreter-bound loop takes on it (seconds; the best of 20 runs of about 10 ms, since a busy
or shared machine only ever adds time), or exits 1 when the interpreter cannot
host kms-iac's virtualenv (older than 3.11, or no ``venv``/``ensurepip``, as on a Debian
without ``python3.X-venv``).

Why measure: kms-iac's server is bound by the interpreter, and builds of one CPython version
can differ up to twofold (Debian's, libpython linked in, against pyenv's default: a shared
libpython, configured without --enable-optimizations).
Build flags do not say which is which reliably; timing the same work does."""

import sys
import time

if sys.version_info < (3, 11):
    sys.exit(1)
try:
    import ensurepip  # noqa: F401
    import venv  # noqa: F401
except ImportError:
    sys.exit(1)


class _Item:
    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


def _step(i: int) -> int:
    doc = {"KeyId": i, "Plaintext": str(i)}
    return _Item(doc["KeyId"]).value + len(doc.get("Plaintext", ""))


def _work(n: int) -> int:
    total = 0
    for i in range(n):
        total += _step(i)
    return total


best = float("inf")
for _ in range(20):
    start = time.perf_counter()
    _work(20_000)
    best = min(best, time.perf_counter() - start)
print(f"{best:.6f}")
