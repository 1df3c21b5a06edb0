"""Durable state of the local backend: SQLite in WAL mode.

Every acknowledged write is a committed transaction (``synchronous=FULL``), so it
survives ``kill -9`` and power loss. Several processes (a server and embedded clients)
may share one data dir: writers take ``BEGIN IMMEDIATE``, and each process keeps a
read cache that it drops whenever SQLite's ``data_version`` says another connection
committed (see :meth:`Store.refresh`). Asking SQLite costs a read transaction (two
``fcntl`` locks and about 14 µs) per request, so a commit beacon beside the database tells
readers when there can be something to ask about (see :class:`CommitBeacon`).
"""

from __future__ import annotations

import mmap
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
  key_id TEXT NOT NULL,
  region TEXT NOT NULL,
  account TEXT NOT NULL,
  created REAL NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  key_spec TEXT NOT NULL,
  key_usage TEXT NOT NULL,
  origin TEXT NOT NULL,
  key_manager TEXT NOT NULL,
  state TEXT NOT NULL,
  deletion_date REAL,
  pending_window INTEGER,
  multi_region INTEGER NOT NULL DEFAULT 0,
  multi_region_role TEXT,
  primary_region TEXT,
  policy TEXT NOT NULL,
  custom_key_store_id TEXT,
  rotation_enabled INTEGER NOT NULL DEFAULT 0,
  rotation_period INTEGER,
  rotation_anchor REAL,
  on_demand_rotations INTEGER NOT NULL DEFAULT 0,
  on_demand_started REAL,
  valid_to REAL,
  current_version INTEGER NOT NULL DEFAULT 0,
  last_used_at REAL,
  last_used_op TEXT,
  last_used_event TEXT,
  last_used_request TEXT,
  PRIMARY KEY (key_id, region)
);
CREATE INDEX IF NOT EXISTS keys_by_account ON keys (account, region, key_id);
CREATE TABLE IF NOT EXISTS materials (
  key_id TEXT NOT NULL,
  region TEXT NOT NULL,
  version INTEGER NOT NULL,
  material_id TEXT NOT NULL,
  wrapped BLOB NOT NULL,
  created REAL NOT NULL,
  rotation_type TEXT,
  PRIMARY KEY (key_id, region, version)
);
CREATE TABLE IF NOT EXISTS aliases (
  account TEXT NOT NULL,
  region TEXT NOT NULL,
  name TEXT NOT NULL,
  key_id TEXT NOT NULL,
  created REAL NOT NULL,
  updated REAL NOT NULL,
  PRIMARY KEY (account, region, name)
);
CREATE INDEX IF NOT EXISTS aliases_by_key ON aliases (key_id, region);
CREATE TABLE IF NOT EXISTS import_params (
  token TEXT PRIMARY KEY,
  key_id TEXT NOT NULL,
  region TEXT NOT NULL,
  algorithm TEXT NOT NULL,
  wrapped_private_key BLOB NOT NULL,
  valid_to REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS imported_material (
  key_id TEXT NOT NULL,
  region TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  PRIMARY KEY (key_id, region)
);
CREATE TABLE IF NOT EXISTS import_materials (
  key_id TEXT NOT NULL,
  region TEXT NOT NULL,
  version INTEGER NOT NULL,
  description TEXT,
  valid_to REAL,
  PRIMARY KEY (key_id, region, version)
);
CREATE TABLE IF NOT EXISTS key_transitions (
  key_id TEXT NOT NULL,
  region TEXT NOT NULL,
  interim TEXT NOT NULL,
  final TEXT NOT NULL,
  due REAL NOT NULL,
  PRIMARY KEY (key_id, region)
);
CREATE TABLE IF NOT EXISTS tags (
  key_id TEXT NOT NULL,
  region TEXT NOT NULL,
  tag_key TEXT NOT NULL,
  tag_value TEXT NOT NULL,
  PRIMARY KEY (key_id, region, tag_key)
);
CREATE TABLE IF NOT EXISTS grants (
  grant_id TEXT PRIMARY KEY,
  key_id TEXT NOT NULL,
  region TEXT NOT NULL,
  name TEXT,
  grantee TEXT NOT NULL,
  retiring TEXT,
  operations TEXT NOT NULL,
  constraints TEXT,
  issuing_account TEXT NOT NULL,
  created REAL NOT NULL,
  token_hashes TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS grants_by_key ON grants (key_id, region);
CREATE INDEX IF NOT EXISTS grants_by_retiring ON grants (region, retiring);
CREATE TABLE IF NOT EXISTS hsm_clusters (
  cluster_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  token_label TEXT NOT NULL,
  token_serial TEXT NOT NULL,
  trust_anchor TEXT NOT NULL,
  created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS custom_key_stores (
  cks_id TEXT PRIMARY KEY,
  account TEXT NOT NULL,
  region TEXT NOT NULL,
  name TEXT NOT NULL,
  store_type TEXT NOT NULL,
  cluster_id TEXT,
  trust_anchor TEXT,
  wrapped_password BLOB,
  connection_state TEXT NOT NULL,
  connection_error_code TEXT,
  created REAL NOT NULL,
  UNIQUE (account, region, name)
);
CREATE TABLE IF NOT EXISTS cks_saved_key_states (
  key_id TEXT NOT NULL,
  region TEXT NOT NULL,
  state TEXT NOT NULL,
  PRIMARY KEY (key_id, region)
);
"""

KEY_MUTABLE = {
    "description", "state", "deletion_date", "pending_window", "policy", "rotation_enabled",
    "rotation_period", "rotation_anchor", "on_demand_rotations", "on_demand_started", "valid_to",
    "current_version", "multi_region_role", "primary_region",
}


@dataclass
class KeyRecord:
    """One KMS key's metadata, as stored (never its material)."""

    key_id: str
    region: str
    account: str
    created: float
    key_spec: str
    key_usage: str
    origin: str
    key_manager: str
    state: str
    policy: str
    description: str = ""
    deletion_date: float | None = None
    pending_window: int | None = None
    multi_region: int = 0
    multi_region_role: str | None = None
    primary_region: str | None = None
    custom_key_store_id: str | None = None
    rotation_enabled: int = 0
    rotation_period: int | None = None
    rotation_anchor: float | None = None
    on_demand_rotations: int = 0
    on_demand_started: float | None = None
    valid_to: float | None = None
    current_version: int = 0
    last_used_at: float | None = None
    last_used_op: str | None = None
    last_used_event: str | None = None
    last_used_request: str | None = None

    @cached_property
    def arn(self) -> str:
        """Made once per record (its key id, Region and account never change)."""
        return f"arn:aws:kms:{self.region}:{self.account}:key/{self.key_id}"


_KEY_COLUMNS = [f.name for f in fields(KeyRecord)]


@dataclass
class Material:
    version: int
    material_id: str
    wrapped: bytes
    created: float
    rotation_type: str | None


@dataclass
class AliasRecord:
    account: str
    region: str
    name: str
    key_id: str
    created: float
    updated: float

    @property
    def arn(self) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:{self.name}"


@dataclass
class _Cache:
    generation: int = 0
    keys: dict = field(default_factory=dict)
    materials: dict = field(default_factory=dict)
    next_due: float | None = None
    next_due_known: bool = False


class CommitBeacon:
    """Eight shared bytes (``<database>-commits``, mapped by every process of the data dir)
    that change whenever a transaction commits, so a reader asks SQLite only then.

    A writer stores a fresh random odd token while it holds SQLite's write lock (a commit
    may be under way: readers must ask) and a fresh random even one once it has committed,
    before its answer leaves. A reader that sees the same even token it saw before its last
    check of ``data_version`` knows no commit finished since: every commit is followed by a
    store of a token never seen before, and a token is stored once. Tokens rather than a
    counter because the stores are not atomic read-modify-writes across processes: a late
    store of a counter could bring back a value a reader has already trusted. A writer that
    dies between its two stores leaves an odd token, and readers keep asking SQLite. A
    process that cannot open the beacon (a read-only data dir) asks SQLite every time; the
    beacon has the database's mode and owner, so a process that can write the database can
    also mark the beacon.

    Aligned 8-byte loads and stores through a ``memoryview`` are single machine accesses, so
    a reader never sees half of one token. A separate file, never SQLite's ``-shm``: closing a
    descriptor of that one would drop SQLite's POSIX locks in this process.
    """

    SUFFIX = "-commits"

    def __init__(self, db: Path) -> None:
        # Made with the database's permissions and owner, as SQLite makes its -wal and -shm:
        # whoever may write the database may mark the beacon, so no writer goes unannounced
        db_stat = os.stat(db)
        fd = os.open(str(db.with_name(db.name + self.SUFFIX)), os.O_RDWR | os.O_CREAT, db_stat.st_mode & 0o666)
        try:
            info = os.fstat(fd)
            if info.st_size < 8:
                os.fchmod(fd, db_stat.st_mode & 0o666)  # the umask narrowed the mode above
                if os.geteuid() == 0 and (info.st_uid, info.st_gid) != (db_stat.st_uid, db_stat.st_gid):
                    os.fchown(fd, db_stat.st_uid, db_stat.st_gid)
                os.ftruncate(fd, 8)  # zero-filled: token 0, even, "nothing trusted yet" to no one
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)
        self._word = memoryview(self._map).cast("Q")
        self._trusted: int | None = None  # the even token read before our last data_version check

    def quiet(self) -> bool:
        """True: no commit has finished since the last False, so SQLite need not be asked.
        False: the caller asks SQLite now (the token is read before it does)."""
        token = self._word[0]
        if token == self._trusted:
            return True
        self._trusted = None if token & 1 else token
        return False

    def mark(self, committed: bool) -> None:
        token = int.from_bytes(os.urandom(8), "little")
        self._word[0] = token & ~1 if committed else token | 1

    def close(self) -> None:
        self._word.release()
        self._map.close()


class Store:
    """All reads and writes of the backend's SQLite database."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = path
        self._conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._cache = _Cache()
        self._beacon: CommitBeacon | None = None
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            self._conn.execute("PRAGMA busy_timeout=30000")
            with self.write() as c:
                for stmt in SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)
            self._data_version = self._read_data_version()
        except sqlite3.Error:  # a damaged or unwritable database: do not leak the connection
            self._conn.close()
            raise
        try:  # once the database is known good: a refused data dir gets no new file
            self._beacon = CommitBeacon(path)
        except (OSError, ValueError):  # a read-only data dir: ask SQLite every time, as before
            pass

    # -- transactions and cache coherence -------------------------------------------------

    def _new_cache(self) -> None:
        self._cache = _Cache(generation=self._cache.generation + 1)

    @property
    def generation(self) -> int:
        """Changes whenever cached rows were dropped: callers caching derived data compare it."""
        return self._cache.generation

    def _read_data_version(self) -> int:
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def refresh(self) -> None:
        """Drop cached rows if another connection committed since we last looked.

        SQLite's own counter, not a peek at the ``-shm`` wal-index: opening and closing that
        file from Python would release the POSIX locks SQLite holds on it in this process
        (closing any descriptor of a file drops all of a process's locks on it), and another
        process would then reinitialise the wal-index under our connection. The beacon spares
        the question while no commit has finished since the last one (see :class:`CommitBeacon`)."""
        if self._beacon is not None and self._beacon.quiet():
            return
        version = self._read_data_version()
        if version != self._data_version:
            self._data_version = version
            self._new_cache()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back whole on any exception, so refusals change nothing."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            beacon = self._beacon
            if beacon is not None:
                beacon.mark(committed=False)
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._new_cache()
                if beacon is not None:
                    beacon.mark(committed=True)  # nothing changed; readers may stop asking
                raise
            self._conn.execute("COMMIT")
            self._new_cache()
            if beacon is not None:
                beacon.mark(committed=True)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @contextmanager
    def released(self) -> Iterator[None]:
        """Let go of the store lock (however deeply this thread holds it) for a step that uses
        no store state, then take it back: other threads use the store meanwhile. Outside a
        transaction only (a write transaction must stay this thread's alone)."""
        if not self._lock._is_owned():  # type: ignore[attr-defined]
            yield
            return
        if self._conn.in_transaction:
            raise RuntimeError("the store lock cannot be released inside a transaction")
        state = self._lock._release_save()  # type: ignore[attr-defined]  # what threading.Condition uses
        try:
            yield
        finally:
            self._lock._acquire_restore(state)  # type: ignore[attr-defined]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._beacon is not None:
                self._beacon.close()
                self._beacon = None

    # -- keys -----------------------------------------------------------------------------

    def get_key(self, key_id: str, region: str) -> KeyRecord | None:
        cached = self._cache.keys.get((key_id, region))
        if cached is not None:
            return cached
        row = self._conn.execute(
            f"SELECT {', '.join(_KEY_COLUMNS)} FROM keys WHERE key_id=? AND region=?", (key_id, region)
        ).fetchone()
        if row is None:
            return None
        rec = KeyRecord(*row)
        self._cache.keys[(key_id, region)] = rec
        return rec

    def find_key_any_region(self, key_id: str) -> list[KeyRecord]:
        rows = self._conn.execute(f"SELECT {', '.join(_KEY_COLUMNS)} FROM keys WHERE key_id=?", (key_id,)).fetchall()
        return [KeyRecord(*r) for r in rows]

    def insert_key(self, c: sqlite3.Connection, rec: KeyRecord) -> None:
        c.execute(
            f"INSERT INTO keys ({', '.join(_KEY_COLUMNS)}) VALUES ({', '.join('?' * len(_KEY_COLUMNS))})",
            tuple(getattr(rec, n) for n in _KEY_COLUMNS),
        )

    def update_key(self, c: sqlite3.Connection, rec: KeyRecord, **changes) -> None:
        bad = set(changes) - KEY_MUTABLE
        if bad:
            raise ValueError(f"immutable key fields: {bad}")
        sets = ", ".join(f"{k}=?" for k in changes)
        c.execute(f"UPDATE keys SET {sets} WHERE key_id=? AND region=?", (*changes.values(), rec.key_id, rec.region))
        for k, v in changes.items():
            setattr(rec, k, v)

    def list_keys(self, account: str, region: str) -> list[tuple[str, str]]:
        return self._conn.execute(
            "SELECT key_id, account FROM keys WHERE account=? AND region=? ORDER BY created, key_id", (account, region)
        ).fetchall()

    def all_keys(self) -> list[KeyRecord]:
        return [KeyRecord(*r) for r in self._conn.execute(f"SELECT {', '.join(_KEY_COLUMNS)} FROM keys")]

    def delete_key(self, c: sqlite3.Connection, key_id: str, region: str) -> None:
        for table in ("keys", "materials", "tags"):
            c.execute(f"DELETE FROM {table} WHERE key_id=? AND region=?", (key_id, region))
        c.execute("DELETE FROM aliases WHERE key_id=? AND region=?", (key_id, region))
        for extra in self.extra_key_tables:
            c.execute(f"DELETE FROM {extra} WHERE key_id=? AND region=?", (key_id, region))

    extra_key_tables: tuple[str, ...] = ("import_params", "imported_material", "import_materials", "key_transitions",
                                         "grants")

    # -- material -------------------------------------------------------------------------

    def add_material(self, c: sqlite3.Connection, key_id: str, region: str, m: Material) -> None:
        c.execute(
            "INSERT INTO materials (key_id, region, version, material_id, wrapped, created, rotation_type) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key_id, region, m.version, m.material_id, m.wrapped, m.created, m.rotation_type),
        )

    def get_material(self, key_id: str, region: str, version: int) -> Material | None:
        ck = (key_id, region, version)
        cached = self._cache.materials.get(ck)
        if cached is not None:
            return cached
        row = self._conn.execute(
            "SELECT version, material_id, wrapped, created, rotation_type FROM materials "
            "WHERE key_id=? AND region=? AND version=?",
            ck,
        ).fetchone()
        if row is None:
            return None
        m = Material(*row)
        self._cache.materials[ck] = m
        return m

    def list_materials(self, key_id: str, region: str) -> list[Material]:
        rows = self._conn.execute(
            "SELECT version, material_id, wrapped, created, rotation_type FROM materials "
            "WHERE key_id=? AND region=? ORDER BY version",
            (key_id, region),
        ).fetchall()
        return [Material(*r) for r in rows]

    # -- aliases --------------------------------------------------------------------------

    def get_alias(self, account: str, region: str, name: str) -> AliasRecord | None:
        row = self._conn.execute(
            "SELECT account, region, name, key_id, created, updated FROM aliases WHERE account=? AND region=? AND name=?",
            (account, region, name),
        ).fetchone()
        return AliasRecord(*row) if row else None

    def list_aliases(self, account: str, region: str, key_id: str | None = None) -> list[AliasRecord]:
        sql = "SELECT account, region, name, key_id, created, updated FROM aliases WHERE account=? AND region=?"
        args: tuple = (account, region)
        if key_id is not None:
            sql += " AND key_id=?"
            args += (key_id,)
        return [AliasRecord(*r) for r in self._conn.execute(sql + " ORDER BY name", args)]

    def aliases_of(self, key_id: str, region: str) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT name FROM aliases WHERE key_id=? AND region=? ORDER BY name", (key_id, region))]

    # -- tags -----------------------------------------------------------------------------

    def get_tags(self, key_id: str, region: str) -> list[tuple[str, str]]:
        return self._conn.execute(
            "SELECT tag_key, tag_value FROM tags WHERE key_id=? AND region=? ORDER BY rowid", (key_id, region)
        ).fetchall()

    # -- scheduled work (deletion windows, automatic rotation) ---------------------------

    def next_due(self) -> float | None:
        """Earliest time at which a deletion, an automatic rotation, an imported material's expiry
        or the end of an interim key state (Creating, Updating) falls due (cached)."""
        if not self._cache.next_due_known:
            row = self._conn.execute(
                "SELECT MIN(t) FROM ("
                " SELECT MIN(deletion_date) AS t FROM keys WHERE state='PendingDeletion'"
                " UNION ALL"
                " SELECT MIN(rotation_anchor + rotation_period * 86400.0) FROM keys"
                "  WHERE rotation_enabled=1 AND state='Enabled'"
                " UNION ALL"
                " SELECT MIN(valid_to) FROM keys WHERE valid_to IS NOT NULL AND state<>'PendingImport'"
                " UNION ALL"
                " SELECT MIN(due) FROM key_transitions)"
            ).fetchone()
            self._cache.next_due = row[0]
            self._cache.next_due_known = True
        return self._cache.next_due

    def execute(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._conn.execute(sql, args).fetchall()
