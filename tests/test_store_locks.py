"""SQLite's locks survive kms-iac's use of a data dir.

In WAL mode every connection holds a shared POSIX lock on the ``-shm`` wal-index (its "DMS"
byte, offset 128); a process that finds no one holding it assumes it is alone and
reinitialises the wal-index under everyone else's feet. Closing *any* descriptor of a file
releases all of a process's POSIX locks on it, so kms-iac must never open and close the
database's files itself while SQLite has them open. This probes the lock from another
process, as the next server or embedded client would find it.
"""

from __future__ import annotations

import subprocess
import sys

from kms_iac.backend.embedded import embedded_client

PROBE = """
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
lock = struct.pack("hhqqh", fcntl.F_WRLCK, 0, 128, 1, 0)  # could we write-lock the DMS byte?
kind = struct.unpack("hhqqh", fcntl.fcntl(fd, fcntl.F_GETLK, lock))[0]
print("held" if kind != fcntl.F_UNLCK else "free")
"""


def dms_lock(shm) -> str:
    return subprocess.run([sys.executable, "-c", PROBE, str(shm)], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def test_an_open_data_dir_keeps_sqlites_shared_lock(tmp_path) -> None:
    kms = embedded_client(tmp_path)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key, Plaintext=b"x")
    kms.describe_key(KeyId=key)
    (shm,) = tmp_path.glob("*-shm")
    assert dms_lock(shm) == "held"
