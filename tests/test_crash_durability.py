"""Crash durability: every acknowledged write survives ``kill -9`` of the server.

Three writer threads (each with its own boto3 client) hammer a real ``kms-iac local
serve`` process with CreateKey, CreateAlias, EnableKeyRotation, RotateKeyOnDemand,
Encrypt and GenerateDataKey, while the main thread SIGKILLs the server and restarts it
on the same data dir (on a new port). A writer records a result only when its response
came back; a connection error just sends it to the current URL.

Kills are paced by work, not by the clock: each one comes after the current server run
has acknowledged a few writes, plus a small random delay so that it lands mid-write.
So the test exercises the same amount of durability on a slow, busy machine as on a
fast one. After the kill cycles the writers go on until enough of every kind of write
has been acknowledged; after a final kill and restart, everything acknowledged must be
there, and no plaintext (data keys, encrypted plaintexts) may be in any file of the
data dir.
"""

from __future__ import annotations

import base64
import os
import random
import stat
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest

from tests.helpers import TEST_CREDS, ServerProcess

pytestmark = pytest.mark.slow

WRITERS = 3
KILL_CYCLES = 10
ACKS_BEFORE_KILL = 4  # writes the current server run must acknowledge before it is killed
# The least acknowledged work the checks below must have to mean something.
MINIMUM = {"keys": 20, "aliases": 20, "ciphertexts": 20, "data_keys": 20, "rotations": 5}
# Only a hang exceeds these: a server that never comes back, writers that make no progress.
HANG_BOUND_S = 120.0
ROTATIONS_PER_KEY = 2  # well under the backend's 25 on-demand rotations per key
ENCRYPTS_PER_KEY = 3


class UrlHolder:
    """The current server URL; writers wait here for a restart after a connection error."""

    def __init__(self, url: str) -> None:
        self._cond = threading.Condition()
        self.url = url
        self.generation = 0

    def get(self) -> tuple[str, int]:
        with self._cond:
            return self.url, self.generation

    def set(self, url: str) -> None:
        with self._cond:
            self.url = url
            self.generation += 1
            self._cond.notify_all()

    def wait_newer(self, generation: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.generation != generation, timeout=timeout)


class Progress:
    """Acknowledged writes, counted per server run and per kind; the main thread waits on it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.per_run: dict[int, int] = {}
        self.totals: dict[str, int] = dict.fromkeys(MINIMUM, 0)

    def ack(self, run: int, kind: str | None) -> None:
        with self._cond:
            self.per_run[run] = self.per_run.get(run, 0) + 1
            if kind is not None:
                self.totals[kind] += 1
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout=timeout)

    def short_of_minimum(self) -> dict[str, str]:
        return {k: f"{self.totals[k]}/{n}" for k, n in MINIMUM.items() if self.totals[k] < n}


@dataclass
class Acked:
    """What one writer saw acknowledged."""

    keys: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # alias name -> key id
    rotation_enabled: set[str] = field(default_factory=set)
    rotations: dict[str, int] = field(default_factory=dict)  # key id -> on-demand rotations acked
    ciphertexts: list[tuple[bytes, bytes, dict[str, str]]] = field(default_factory=list)
    data_keys: list[tuple[bytes, bytes, dict[str, str]]] = field(default_factory=list)  # (plaintext, blob, ctx)
    connection_errors: int = 0
    unexpected: list[str] = field(default_factory=list)


def make_client(url: str):
    # A session per client: boto3's default session is not thread-safe.
    return boto3.session.Session().client(
        "kms", endpoint_url=url, region_name="us-east-1", **TEST_CREDS,
        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=60),
    )


def _random_context(rng: random.Random) -> dict[str, str]:
    return {f"k{i}-{rng.randrange(1000)}": uuid.uuid4().hex for i in range(rng.randint(1, 3))}


class Writer(threading.Thread):
    """Runs create/alias/rotate/encrypt cycles until told to stop; records only acknowledgements."""

    def __init__(self, n: int, holder: UrlHolder, stop: threading.Event, progress: Progress) -> None:
        super().__init__(name=f"writer-{n}", daemon=True)
        self.n = n
        self.holder = holder
        self.progress = progress
        self.stop_event = stop
        self.acked = Acked()
        self.rng = random.Random(1000 + n)
        self._client = None
        self._generation = -1

    def client(self):
        url, gen = self.holder.get()
        if self._client is None or gen != self._generation:
            self._client = make_client(url)
            self._generation = gen
        return self._client

    def call(self, op: str, kind: str | None = None, **kw):
        """One attempt; returns the response, or None when the server was not there to answer.

        An answer is counted as acknowledged by the server run it came from (``kind`` names
        what the checks below count it as)."""
        try:
            response = getattr(self.client(), op)(**kw)
        except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError):
            # Refused, reset or cut off mid-response: the server is down. Unacknowledged, so not
            # recorded; wait for the next restart (or retry soon).
            self.acked.connection_errors += 1
            self.holder.wait_newer(self._generation, timeout=2.0)
            return None
        except Exception as exc:  # an error *answer* (or a garbled one) is not expected here
            self.acked.unexpected.append(f"{op}: {type(exc).__name__}: {exc}")
            return None
        self.progress.ack(self._generation, kind)
        return response

    def run(self) -> None:
        a = self.acked
        while not self.stop_event.is_set():
            r = self.call("create_key", "keys", Description=f"crash-test writer {self.n}")
            if r is None:
                continue
            key_id = r["KeyMetadata"]["KeyId"]
            a.keys.append(key_id)

            alias = f"alias/crash/{self.n}/{uuid.uuid4().hex}"
            if self.call("create_alias", "aliases", AliasName=alias, TargetKeyId=key_id) is not None:
                a.aliases[alias] = key_id

            if self.call("enable_key_rotation", KeyId=key_id) is not None:
                a.rotation_enabled.add(key_id)

            for _ in range(ENCRYPTS_PER_KEY):
                if self.stop_event.is_set():
                    break
                if self.rng.random() < 0.5 and a.rotations.get(key_id, 0) < ROTATIONS_PER_KEY:
                    if self.call("rotate_key_on_demand", "rotations", KeyId=key_id) is not None:
                        a.rotations[key_id] = a.rotations.get(key_id, 0) + 1
                ctx = _random_context(self.rng)
                plaintext = os.urandom(self.rng.randint(16, 256))
                target = alias if alias in a.aliases and self.rng.random() < 0.5 else key_id
                r = self.call("encrypt", "ciphertexts", KeyId=target, Plaintext=plaintext, EncryptionContext=ctx)
                if r is not None:
                    a.ciphertexts.append((r["CiphertextBlob"], plaintext, ctx))

            ctx = _random_context(self.rng)
            r = self.call("generate_data_key", "data_keys", KeyId=key_id, KeySpec="AES_256", EncryptionContext=ctx)
            if r is not None:
                a.data_keys.append((r["Plaintext"], r["CiphertextBlob"], ctx))


def _secret_forms(secret: bytes) -> list[bytes]:
    """The ways a secret could land in a file: raw, base64 (JSON), hex."""
    return [secret, base64.b64encode(secret), secret.hex().encode()]


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "kms-data"
    rng = random.Random(4242)
    servers: list[ServerProcess] = []

    def start_server() -> ServerProcess:
        # Fails with the server's own output, not a hang, if it does not come back.
        srv = ServerProcess(data_dir).start(timeout=HANG_BOUND_S)
        servers.append(srv)
        return srv

    srv = start_server()
    holder = UrlHolder(srv.url)
    stop = threading.Event()
    progress = Progress()
    writers = [Writer(i, holder, stop, progress) for i in range(WRITERS)]
    kills = 0
    try:
        for w in writers:
            w.start()
        for _cycle in range(KILL_CYCLES):
            run = holder.generation
            if not progress.wait_for(lambda p: p.per_run.get(run, 0) >= ACKS_BEFORE_KILL, HANG_BOUND_S):
                pytest.fail(f"server run {run} acknowledged {progress.per_run.get(run, 0)} of {ACKS_BEFORE_KILL} "
                            f"writes in {HANG_BOUND_S:.0f} s; writers' errors: {[w.acked.unexpected[:2] for w in writers]}")
            time.sleep(rng.uniform(0, 0.05))  # so the kill lands in the middle of a write
            srv.kill()
            kills += 1
            assert srv.proc.returncode == -9
            srv = start_server()
            holder.set(srv.url)
        # The writers go on against the last server until every kind of write has been
        # acknowledged often enough for the checks below to mean something.
        if not progress.wait_for(lambda p: not p.short_of_minimum(), HANG_BOUND_S):
            pytest.fail(f"writers made too little progress in {HANG_BOUND_S:.0f} s: {progress.short_of_minimum()}")
        stop.set()
        holder.set(srv.url)  # wake anyone waiting for a restart
        for w in writers:
            w.join(timeout=HANG_BOUND_S)
            assert not w.is_alive(), f"{w.name} did not stop"

        # One more crash with no clean shutdown, so nothing relies on a graceful close.
        srv.kill()
        srv = start_server()
        kms = make_client(srv.url)

        acked = [w.acked for w in writers]
        unexpected = [u for a in acked for u in a.unexpected]
        assert not unexpected, f"writers got non-connection errors: {unexpected[:5]}"
        keys = [k for a in acked for k in a.keys]
        aliases = {n: k for a in acked for n, k in a.aliases.items()}
        rotations = {k: c for a in acked for k, c in a.rotations.items()}
        rotation_enabled = set().union(*(a.rotation_enabled for a in acked))
        ciphertexts = [c for a in acked for c in a.ciphertexts]
        data_keys = [d for a in acked for d in a.data_keys]
        # The crash loop has to have exercised something for the checks below to mean anything.
        assert kills >= KILL_CYCLES
        assert len(keys) >= MINIMUM["keys"] and len(aliases) >= MINIMUM["aliases"]
        assert len(ciphertexts) >= MINIMUM["ciphertexts"] and len(data_keys) >= MINIMUM["data_keys"]
        assert sum(rotations.values()) >= MINIMUM["rotations"]
        assert sum(a.connection_errors for a in acked) >= 1, "the kills never interrupted a writer"
        print(f"{kills} kills; acked: {len(keys)} keys, {len(aliases)} aliases, {sum(rotations.values())} on-demand rotations, "
              f"{len(ciphertexts)} ciphertexts, {len(data_keys)} data keys; "
              f"{sum(a.connection_errors for a in acked)} connection errors over {len(servers)} server runs")

        # -- every acknowledged key exists ------------------------------------------------
        for key_id in keys:
            md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            assert md["KeyId"] == key_id and md["KeyState"] == "Enabled"
        listed: set[str] = set()
        for page in kms.get_paginator("list_keys").paginate():
            listed.update(k["KeyId"] for k in page["Keys"])
        assert set(keys) <= listed

        # -- every acknowledged alias resolves to its key ---------------------------------
        for name, key_id in aliases.items():
            assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key_id, name
        server_aliases = {}
        for page in kms.get_paginator("list_aliases").paginate():
            server_aliases.update({a["AliasName"]: a.get("TargetKeyId") for a in page["Aliases"]})
        for name, key_id in aliases.items():
            assert server_aliases.get(name) == key_id, name

        # -- rotation: enabled stays enabled; acknowledged on-demand rotations are listed ----
        for key_id in rotation_enabled:
            assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"], key_id
        for key_id, count in rotations.items():
            listed_rotations = [
                r for page in kms.get_paginator("list_key_rotations").paginate(KeyId=key_id) for r in page["Rotations"]
            ]
            on_demand = [r for r in listed_rotations if r.get("RotationType") == "ON_DEMAND"]
            assert len(on_demand) >= count, (key_id, count, listed_rotations)

        # -- every acknowledged ciphertext decrypts, with its context ---------------------------
        for blob, plaintext, ctx in ciphertexts:
            assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == plaintext
        for plaintext, blob, ctx in data_keys:
            assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)["Plaintext"] == plaintext

        # -- a few more data keys now, then crash without a checkpoint ------------------------
        for key_id in rng.sample(keys, 5):
            ctx = {"purpose": "plaintext-scan"}
            r = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=ctx)
            assert len(r["Plaintext"]) == 32
            data_keys.append((r["Plaintext"], r["CiphertextBlob"], ctx))
        srv.kill()

        # -- no plaintext key material at rest --------------------------------------------------
        root_key = data_dir / "root.key"
        assert stat.S_IMODE(root_key.stat().st_mode) == 0o600
        files = [p for p in data_dir.rglob("*") if p.is_file()]
        names = {p.name for p in files}
        assert {"kms.sqlite3", "audit.log", "root.key"} <= names, names
        assert any(n.endswith("-wal") for n in names), names  # the WAL must be part of the scan
        secrets = [pt for pt, _, _ in data_keys] + [pt for _, pt, _ in ciphertexts]
        for path in files:
            content = path.read_bytes()
            for secret in secrets:
                for form in _secret_forms(secret):
                    assert form not in content, f"plaintext found in {path.name}"
        # The root key itself must not be copied anywhere else in the data dir.
        root = root_key.read_bytes()
        for path in files:
            if path != root_key:
                content = path.read_bytes()
                for form in _secret_forms(root):
                    assert form not in content, f"root key found in {path.name}"
    finally:
        stop.set()
        holder.set(holder.url)
        for s in servers:
            s.kill()
    # No server logged an internal error (a traceback) during the whole run.
    for s in servers:
        err = s.proc.stderr.read() if s.proc is not None and s.proc.stderr else ""
        assert "Traceback" not in err, err[-2000:]
