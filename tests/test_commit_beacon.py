"""The commit beacon: readers ask SQLite's ``data_version`` only when a commit may have
finished since they last asked, and never miss one that finished before their request.

- With nothing committed, reads ask SQLite nothing; after another store's commit, the next
  read asks once and sees it.
- A writer that died between its two marks (odd token left) makes readers ask every time.
- Writers racing on the beacon's non-atomic stores (one's late "committed" mark after the
  other's "writing" mark) never bring back a token a reader already trusts: every
  interleaving of two writers' steps and a reader's checks, exhaustively.
- Across processes, a reader never sees a state older than a commit announced before its read
  (a writer process renames a key's description in a loop; a reader process checks).
- A data dir whose beacon cannot be opened (read-only) still sees commits; the beacon is
  made with the database's permissions and owner, so whoever may write one may mark the other.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from kms_iac.backend.core import Backend
from kms_iac.backend.embedded import embedded_client
from kms_iac.backend.store import CommitBeacon, Store


def _counting(store: Store, monkeypatch) -> list[int]:
    calls: list[int] = []
    original = store._read_data_version

    def counted() -> int:
        calls.append(1)
        return original()

    monkeypatch.setattr(store, "_read_data_version", counted)
    return calls


def _key(store: Store, key_id: str):
    with store.lock:
        store.refresh()
        return store.get_key(key_id, "us-east-1")


def test_reads_ask_sqlite_only_after_a_commit(tmp_path: Path, monkeypatch) -> None:
    a, b = Backend(tmp_path), Backend(tmp_path)
    try:
        kms_a = embedded_client(backend=a)
        key = kms_a.create_key(Description="one")["KeyMetadata"]["KeyId"]
        assert _key(b.store, key).description == "one"
        asked = _counting(b.store, monkeypatch)
        for _ in range(20):
            assert _key(b.store, key).description == "one"
        assert asked == []
        kms_a.update_key_description(KeyId=key, Description="two")
        assert _key(b.store, key).description == "two"
        assert _key(b.store, key).description == "two"
        assert len(asked) == 1
    finally:
        a.close()
        b.close()


def test_a_writer_that_died_mid_commit_leaves_readers_asking(tmp_path: Path, monkeypatch) -> None:
    a, b = Backend(tmp_path), Backend(tmp_path)
    try:
        key = embedded_client(backend=a).create_key(Description="one")["KeyMetadata"]["KeyId"]
        assert _key(b.store, key).description == "one"
        a.store._beacon.mark(committed=False)  # as a writer killed between its marks leaves it
        asked = _counting(b.store, monkeypatch)
        for _ in range(3):
            assert _key(b.store, key).description == "one"
        assert len(asked) == 3
        # A commit the beacon is not told about (the dead writer's) is still seen.
        a.store.execute("UPDATE keys SET description='two' WHERE key_id=?", (key,))
        assert _key(b.store, key).description == "two"
    finally:
        a.close()
        b.close()


# --- the protocol under every interleaving ------------------------------------------------

def _writer(beacon: CommitBeacon, sqlite: dict):
    """A writer's steps, each run when the schedule says: take SQLite's write lock and mark
    "writing"; commit (which releases the lock); mark "committed"; return to its caller."""
    yield "lock"
    sqlite["holder"] = beacon
    beacon.mark(committed=False)
    yield "commit"
    sqlite["commits"] += 1
    sqlite["holder"] = None
    yield "mark"
    beacon.mark(committed=True)
    yield "return"


def test_every_interleaving_of_two_writers_and_a_reader_is_safe(tmp_path: Path) -> None:
    """Whenever a writer has returned (its answer may be out), the reader's next check sees its
    commit. Writers hold SQLite's lock in turn, but one's "committed" mark may land after the
    other's "writing" mark, or after the other's whole commit."""
    db = tmp_path / "kms.sqlite3"
    db.touch()
    beacons = [CommitBeacon(db) for _ in range(3)]  # writer a, writer b, the reader
    reader = beacons[2]
    items = "aaaa" "bbbb" "rrr"  # each writer's four steps in order; three reader checks
    schedules = set(itertools.permutations(items))
    assert len(schedules) == 11550
    for schedule in schedules:
        sqlite = {"holder": None, "commits": 0}
        writers = {"a": _writer(beacons[0], sqlite), "b": _writer(beacons[1], sqlite)}
        state = {name: next(w) for name, w in writers.items()}  # each waits at "lock"
        seen = 0 if reader.quiet() else sqlite["commits"]  # the reader's cache, as Store.refresh keeps it
        returned = 0
        for actor in schedule:
            if actor == "r":
                if not reader.quiet():
                    seen = sqlite["commits"]
                assert seen >= returned, schedule
            elif state[actor] == "lock" and sqlite["holder"] is not None:
                continue  # BEGIN IMMEDIATE waits: this writer's step is lost from the schedule
            elif state[actor] == "return":
                returned += 1
                state[actor] = "finished"
            elif state[actor] != "finished":
                state[actor] = next(writers[actor])
    for beacon in beacons:
        beacon.close()


# --- across processes ---------------------------------------------------------------------

def _write_loop(data_dir: str, key: str, announced, rounds: int) -> None:
    backend = Backend(Path(data_dir))
    kms = embedded_client(backend=backend)
    for i in range(1, rounds + 1):
        kms.update_key_description(KeyId=key, Description=str(i))
        announced.value = i  # after the write returned: what a client answered could know
    backend.close()


@pytest.mark.slow
def test_a_reader_process_never_sees_older_than_an_announced_commit(tmp_path: Path) -> None:
    setup = Backend(tmp_path)
    key = embedded_client(backend=setup).create_key(Description="0")["KeyMetadata"]["KeyId"]
    setup.close()
    reader = Backend(tmp_path)
    kms = embedded_client(backend=reader)
    ctx = multiprocessing.get_context("fork")
    announced = ctx.Value("q", 0, lock=False)
    rounds = 150
    writer = ctx.Process(target=_write_loop, args=(str(tmp_path), key, announced, rounds))
    writer.start()
    try:
        reads = 0
        while True:
            before = announced.value
            seen = int(kms.describe_key(KeyId=key)["KeyMetadata"]["Description"])
            assert seen >= before, (seen, before)
            reads += 1
            if before == rounds:
                break
            if not writer.is_alive() and announced.value < rounds:
                pytest.fail(f"the writer died at round {announced.value} (exit {writer.exitcode})")
        assert reads > rounds // 10
    finally:
        writer.join(timeout=120)
        reader.close()


def test_without_a_beacon_commits_are_still_seen(tmp_path: Path) -> None:
    """A beacon that cannot be opened (a read-only data dir; here a directory in its place, which
    root cannot open for writing either) leaves the store asking SQLite every time."""
    (tmp_path / ("kms.sqlite3" + CommitBeacon.SUFFIX)).mkdir()
    writer = Backend(tmp_path)
    store = Store(tmp_path / "kms.sqlite3")
    try:
        assert writer.store._beacon is None and store._beacon is None
        key = embedded_client(backend=writer).create_key(Description="one")["KeyMetadata"]["KeyId"]
        assert _key(store, key).description == "one"
        embedded_client(backend=writer).update_key_description(KeyId=key, Description="two")
        assert _key(store, key).description == "two"
    finally:
        store.close()
        writer.close()


def test_the_beacon_has_the_databases_permissions(tmp_path: Path) -> None:
    """Whoever may write the database may mark the beacon (as SQLite makes -wal and -shm)."""
    Backend(tmp_path).close()
    db = tmp_path / "kms.sqlite3"
    beacon = tmp_path / ("kms.sqlite3" + CommitBeacon.SUFFIX)
    beacon.unlink()
    db.chmod(0o664)
    old_umask = os.umask(0o077)
    try:
        Backend(tmp_path).close()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(beacon.stat().st_mode) == 0o664
    assert (beacon.stat().st_uid, beacon.stat().st_gid) == (db.stat().st_uid, db.stat().st_gid)
