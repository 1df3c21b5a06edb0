"""Opening the local backend's data dir safely: check everything before writing anything.

A data dir holds three things that only make sense together (see :mod:`store`,
:mod:`crypto`, :mod:`audit`):

- ``kms.sqlite3`` (+ ``-wal``/``-shm`` while open): keys, aliases, grants, and every key's
  material *wrapped* under the root key; ``kms.sqlite3-commits`` beside it is only a hint
  that tells the processes sharing the dir when to look for each other's commits (safe to
  delete while nothing runs);
- ``root.key``: 32 random bytes, the only thing that can unwrap that material;
- ``audit.log``: the CloudTrail records.

The dangerous mistakes are the ones a naive open "repairs": a missing ``root.key`` next to a
database with keys used to be replaced by a fresh one, after which every Encrypt failed with
KMSInternalException and the old material was unreachable for good. So :func:`open_data_dir`
checks the directory, the root key and (when the root key is missing) the database first, and
raises :class:`DataDirError` - one sentence saying what is wrong and what to do - before it
creates or changes any file. Only then does it create what a new data dir needs.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from kms_iac.backend.audit import AUDIT_FILE
from kms_iac.backend.crypto import ROOT_KEY_FILE, ROOT_KEY_LEN, create_root_key

DB_FILE = "kms.sqlite3"
# Rows that are wrapped under the root key, or that name material wrapped under it: while any
# exists, a new root key must never be created in its place.
_NEEDS_ROOT_KEY = ("keys", "import_params", "custom_key_stores")
WHERE = "--data-dir or KMS_IAC_DATA_DIR"


class DataDirError(Exception):
    """The data dir cannot be used as it is; the message says what is wrong and what to do."""

    def __init__(self, path: Path | str, problem: str, remedy: str) -> None:
        self.path = Path(path)
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{problem}; {remedy}")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_path(path: Path | str) -> Path:
    """Refuse an empty path (which would silently mean the current directory)."""
    if str(path) == "":
        raise DataDirError(".", "the data dir is an empty path",
                           f"give a directory ({WHERE}), e.g. --data-dir .kms-iac")
    return Path(path)


def _probe_wrapped_rows(db: Path) -> int:
    """How many rows of ``db`` depend on the root key, read without changing any file.

    Without a ``-wal`` file the database file is the whole truth and is read with SQLite's
    ``immutable`` flag (no lock, no ``-shm``/``-wal`` created); with one, a normal connection
    reads it (the files it would create are already there).
    """
    wal = db.with_name(db.name + "-wal")
    uri = f"file:{db}?immutable=1" if not wal.exists() else f"file:{db}?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30.0)
    except sqlite3.Error as exc:
        raise database_error(db, exc) from None
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in _NEEDS_ROOT_KEY if t in tables)
    except sqlite3.Error as exc:
        raise database_error(db, exc) from None
    finally:
        conn.close()


def database_error(db: Path, exc: sqlite3.Error) -> DataDirError:
    """The DataDirError for a database SQLite cannot open: unusable access (OperationalError:
    permissions, a read-only filesystem, a lock held too long) or a damaged file."""
    if isinstance(exc, sqlite3.OperationalError):
        return DataDirError(db.parent, f"cannot open the database {db}: {exc}",
                            "check that the data dir and its files are writable by this user and that no other "
                            "program holds the database locked")
    return DataDirError(db.parent, f"{db} is not a readable kms-iac database ({exc})",
                        "restore the data dir from a backup, or point " + WHERE + " at another directory")


def _check_writable(path: Path) -> None:
    """Can files be created in ``path``? (``os.access`` says yes to root on /proc and on read-only mounts.)"""
    probe = path / f".kms-iac-write-test.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise DataDirError(path, f"cannot create files in the data dir {path}: {_reason(exc)}",
                           f"choose a writable directory ({WHERE})") from None
    os.close(fd)
    os.unlink(probe)


def read_root_key(path: Path) -> bytes | None:
    """The data dir's root key, None if there is none; DataDirError if it is unusable."""
    key_file = path / ROOT_KEY_FILE
    if not key_file.exists() and not key_file.is_symlink():
        return None
    try:
        raw = key_file.read_bytes()
    except OSError as exc:
        raise DataDirError(path, f"cannot read {key_file}: {_reason(exc)}",
                           "make it readable by this user, or restore it from a backup of the data dir") from None
    if len(raw) != ROOT_KEY_LEN:
        raise DataDirError(path, f"{key_file} is {len(raw)} bytes, not a {ROOT_KEY_LEN}-byte root key "
                                 "(truncated or overwritten)",
                           f"restore {ROOT_KEY_FILE} from a backup of this data dir: every key's material in "
                           f"{DB_FILE} is wrapped under it")
    return raw


def existing_data_dir(path: Path | str, markers: tuple[str, ...] = (DB_FILE, ROOT_KEY_FILE, AUDIT_FILE)) -> Path:
    """``path``, checked to be an existing directory holding at least one of ``markers`` (any
    directory when ``markers`` is empty); DataDirError otherwise. For commands that only read."""
    path = check_path(path)
    if not path.exists():
        raise DataDirError(path, f"no such data dir: {path}",
                           f"check {WHERE} (a data dir is made by `kms-iac local serve` or `kms-iac local seed`)")
    if not path.is_dir():
        raise DataDirError(path, f"the data dir {path} is not a directory", f"point {WHERE} at a directory")
    if markers and not any((path / m).exists() for m in markers):
        raise DataDirError(path, f"{path} is not a kms-iac data dir (it has no {' or '.join(markers)})",
                           f"check {WHERE}")
    return path


def open_data_dir(path: Path | str, *, create: bool = True) -> bytes:
    """Check the data dir and return its root key, creating the dir and the key only when safe.

    ``create=False`` (read-only tools: ``policy simulate``, ``scan live --data-dir``) requires an
    existing kms-iac data dir. Every refusal is a :class:`DataDirError` raised before any file
    is created or changed.
    """
    path = check_path(path)
    if path.exists() or not create:
        existing_data_dir(path, (DB_FILE, ROOT_KEY_FILE) if not create else ())
    db = path / DB_FILE
    root_key = read_root_key(path) if path.exists() else None
    if root_key is not None:
        return root_key
    if db.exists():
        rows = _probe_wrapped_rows(db)
        if rows:
            raise DataDirError(path, f"{path / ROOT_KEY_FILE} is missing but {db} holds keys whose material "
                                     "is wrapped under it",
                               f"restore {ROOT_KEY_FILE} from a backup of this data dir (a new root key cannot "
                               "unwrap the old material), or use an empty data dir")
    if not path.exists():
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise DataDirError(path, f"cannot create the data dir {path}: {_reason(exc)}",
                               f"choose a writable directory ({WHERE})") from None
    _check_writable(path)
    return create_root_key(path)
