"""The backend core: one dispatcher in front of every KMS operation.

Both front doors (the HTTP server and the embedded boto3 client) call
:meth:`Backend.handle`. It validates the request against botocore's service model,
runs scheduled work that has fallen due (deletion windows, automatic rotation),
resolves keys, applies the key-state table, calls the operation, and appends the
call to the audit log whatever the outcome.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from kms_iac.backend import keystate, transitions
from kms_iac.backend.audit import AuditLog
from kms_iac.backend.clock import DAY, Clock
from kms_iac.backend.context import RequestContext
from kms_iac.backend.crypto import MaterialWrapper
from kms_iac.backend.datadir import DB_FILE, DataDirError, database_error, open_data_dir
from kms_iac.backend.errors import (
    DryRunOperationException,
    InvalidArnException,
    KMSError,
    KMSInternalException,
    NotFoundException,
    ThrottlingException,
    UnsupportedOperationException,
)
from kms_iac.backend.identifiers import AWS_ALIAS_PREFIX, alias_arn, key_arn, parse_key_ref
from kms_iac.backend.keypairs import ParsedKeys
from kms_iac.backend.model import operation as model_operation
from kms_iac.backend.model import parse_request
from kms_iac.backend.signature import context_from_signature
from kms_iac.backend.ops import OpSpec, load_all
from kms_iac.backend.store import KeyRecord, Material, Store
from kms_iac.backend.defaults import DEFAULT_ACCOUNT, DEFAULT_REGION, default_data_dir  # noqa: F401 (re-exported)
from kms_iac.backend.throttle import RateLimiter

log = logging.getLogger("kms_iac.backend")
T = TypeVar("T")

USAGE_FLUSH_SECONDS = 1.0
# Operations on no existing key: with authorization on, IAM policies alone decide them.
ACCOUNT_OPERATIONS = {
    "CreateKey", "ListKeys", "ListAliases", "GenerateRandom", "ListRetirableGrants", "CreateCustomKeyStore",
    "DescribeCustomKeyStores", "ConnectCustomKeyStore", "DisconnectCustomKeyStore", "UpdateCustomKeyStore",
    "DeleteCustomKeyStore",
}


class Offload(Exception):
    """Raised by :meth:`Call.compute` on a server's event loop: the step would block it for
    milliseconds, so the server runs the whole request again on its thread pool. Never an
    answer: the dispatcher records nothing for it (no audit record, no usage) and rolls back
    any write transaction, so the request's one answer and record come from the second run."""


def _dry_run(params: dict) -> None:
    if params.get("DryRun"):
        raise DryRunOperationException("The request would have succeeded, but the DryRun option is set.")


class Call:
    """One request in flight: what an operation function may use."""

    __slots__ = ("backend", "ctx", "now", "operation", "conn", "resources", "params")  # one per request

    def __init__(self, backend: "Backend", ctx: RequestContext, now: float, operation: str) -> None:
        self.backend = backend
        self.ctx = ctx
        self.now = now
        self.operation = operation
        self.conn: sqlite3.Connection | None = None
        self.resources: list[str] = []
        self.params: dict = {}

    @property
    def store(self) -> Store:
        return self.backend.store

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """The request's write transaction (opened on first use for read-mostly operations)."""
        if self.conn is not None:
            yield self.conn
            return
        with self.store.write() as c:
            self.conn = c
            try:
                yield c
            finally:
                self.conn = None

    # -- key resolution ---------------------------------------------------------------

    def resolve(self, raw: str, *, allow_alias: bool = True) -> KeyRecord:
        """Find the key ``raw`` names (id, ARN, alias, alias ARN), as AWS resolves a KeyId.

        Where the operation takes only a key id or key ARN (``allow_alias=False``, see
        ``ops.KEY_ID_OR_ARN_ONLY``), an alias is refused before any lookup, as AWS does."""
        ref = parse_key_ref(raw)
        if ref is None:
            raise NotFoundException(f"Invalid keyId '{raw}'")
        if ref.kind == "alias" and not allow_alias:
            raise InvalidArnException("Key Aliases are not supported for this operation.")
        if ref.region is not None and ref.region != self.ctx.region:
            raise NotFoundException(f"Invalid arn {ref.region}")
        region = self.ctx.region
        account = ref.account or self.ctx.account
        if ref.kind == "alias":
            alias = self.store.get_alias(account, region, ref.name)
            if alias is None and ref.name.startswith(AWS_ALIAS_PREFIX) and account == self.ctx.account:
                return self.backend.aws_managed_key(self, ref.name, region)
            if alias is None:
                raise NotFoundException(f"Alias {alias_arn(region, account, ref.name)} is not found.")
            key = self.store.get_key(alias.key_id, region)
        else:
            key = self.store.get_key(ref.name, region)
            if key is not None and ref.account is not None and key.account != ref.account:
                key = None
        if key is None:
            kid = ref.name if ref.kind == "key" else alias.key_id  # type: ignore[union-attr]
            raise NotFoundException(f"Key '{key_arn(region, account, kid)}' does not exist")
        return key

    def key(self, raw: str, operation: str | None = None, *, allow_alias: bool = True) -> KeyRecord:
        """Resolve, then apply the key-state table and authorization for ``operation``."""
        key = self.resolve(raw, allow_alias=allow_alias)
        self.admit(key, operation or self.operation)
        return key

    def admit(self, key: KeyRecord, operation: str) -> None:
        if key.arn not in self.resources:
            self.resources.append(key.arn)
        keystate.check(operation, key)
        authorizer = self.backend.authorizer
        if authorizer is not None:
            authorizer(self, operation, key)

    # -- material ---------------------------------------------------------------------

    def material(self, key: KeyRecord, version: int | None = None) -> tuple[int, bytes] | None:
        v = key.current_version if version is None else version
        m = self.backend.material_cache_get(key, v)
        if m is None:
            return None
        return v, m

    def record_use(self, key: KeyRecord, operation: str | None = None) -> None:
        self.backend.note_usage(key, operation or self.operation, self.now, self.ctx)

    def compute(self, fn: Callable[..., T], *args: Any, heavy: bool = True) -> T:
        """Run a CPU-heavy step (RSA private operations, RSA and ML-DSA key generation, ML-DSA):
        ``fn(*args)``, which must touch no backend state.

        On the event loop of a server (``backend.offload_from``) it raises :class:`Offload`
        instead, and the server runs the request on a pool thread. There, and wherever it runs
        outside a write transaction, the store lock is let go during ``fn`` so the event loop
        goes on answering (``cryptography`` releases the GIL in these operations). ``heavy=False``
        runs ``fn`` in place (cheap specs: ECC, Ed25519, ML-KEM)."""
        if not heavy:
            return fn(*args)
        if self.backend.offload_from is not None and threading.get_ident() == self.backend.offload_from:
            raise Offload()
        if self.conn is None:
            with self.store.released():
                return fn(*args)
        return fn(*args)


class Backend:
    """The local KMS: a store, a root key, an audit log and the operations over them."""

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        region: str = DEFAULT_REGION,
        account: str = DEFAULT_ACCOUNT,
        clock: Clock | None = None,
        requests_per_second: float | None = None,
        synchronous: str = "FULL",
        create: bool = True,
    ) -> None:
        """Open (``create=True``: or start) the data dir; :class:`DataDirError` when it cannot be used.

        The data dir is checked before anything in it is written (see :mod:`datadir`): a missing
        or truncated root key, a corrupt database or an unwritable directory is refused with one
        message, never "repaired" by replacing the root key.
        """
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.region = region
        self.account = account
        self.clock = clock or Clock()
        root_key = open_data_dir(self.data_dir, create=create)
        db = self.data_dir / DB_FILE
        try:
            self.store = Store(db, synchronous=synchronous)
        except sqlite3.Error as exc:
            raise database_error(db, exc) from None
        self.wrapper = MaterialWrapper(root_key)
        try:
            self.audit = AuditLog(self.data_dir)
        except OSError as exc:
            self.store.close()
            raise DataDirError(self.data_dir, f"cannot open the audit log in {self.data_dir}: "
                                              f"{exc.strerror or exc}",
                               "check that the data dir and its files are writable by this user") from None
        self.throttle = RateLimiter(requests_per_second) if requests_per_second else None
        self.authorizer = None  # set by the authorization layer when principals are configured
        self.authenticator = None  # SigV4 verification against a principals file, when configured
        self.lockout_check = None  # policy lockout safety check, set with the authorization layer
        self.operations: dict[str, OpSpec] = load_all()
        self._plain: dict[tuple[str, str, int], bytes] = {}
        self._plain_version = -1
        self.parsed_keys = ParsedKeys()  # beside the material cache: parsed asymmetric private keys
        self.offload_from: int | None = None  # the thread id of a server event loop that must not block
        self._usage: dict[tuple[str, str], tuple] = {}
        self._usage_lock = threading.Lock()
        self._usage_flushed = time.monotonic()

    def authenticate(self, ctx: RequestContext, headers: dict[str, str], method: str, path: str, body: bytes) -> RequestContext:
        """Who signed this request (headers lower-cased). Replaced when a principals file is loaded."""
        if self.authenticator is not None:
            return self.authenticator(ctx, headers, method, path, body)
        return context_from_signature(ctx, headers)

    def context(self, **kw: Any) -> RequestContext:
        """The default account root's request context; authentication then names the actual caller (or refuses)."""
        return RequestContext.root(kw.pop("account", self.account), kw.pop("region", self.region), **kw)

    def request_context(self, source_ip: str, user_agent: str, source_vpce: str | None) -> RequestContext:
        """:meth:`context` for a request off the wire (made for every request: no keyword handling)."""
        return RequestContext.for_request(self.account, self.region, source_ip, user_agent, source_vpce)

    # -- the dispatcher ---------------------------------------------------------------

    def handle(self, operation: str, body: Any, ctx: RequestContext) -> dict:
        """Run one KMS operation; raise a :class:`KMSError` for every refusal."""
        now = self.clock.now()
        call = Call(self, ctx, now, operation)
        params: dict | None = None
        try:
            if self.throttle is not None and not self.throttle.allow():
                raise ThrottlingException(
                    "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
                )
            spec = self.operations.get(operation)
            if spec is None:
                model_operation(operation)  # UnknownOperationException for names KMS does not have
                raise UnsupportedOperationException(f"{operation} is not supported by the kms-iac local backend.")
            params = parse_request(operation, body)
            call.params = params
            with self.store.lock:
                self.store.refresh()
                self._run_due_work(now)
                if self.authorizer is not None and operation in ACCOUNT_OPERATIONS and operation != "CreateKey":
                    self.authorizer(call, operation, None)
                if spec.mutates:
                    with call.write():
                        result = self._invoke(spec, call, params)
                        _dry_run(params)  # raising here rolls the transaction back
                else:
                    result = self._invoke(spec, call, params)
                    _dry_run(params)
            self._maybe_flush_usage()
            self.audit.record(ctx, operation, now, params, result, resources=call.resources)
            return result
        except Offload:
            if self.throttle is not None:
                self.throttle.refund()  # the second run is the request's one pass through the quota
            raise
        except KMSError as err:
            self.audit.record(ctx, operation, now, params, None, err.code, err.message, call.resources)
            raise
        except Exception as exc:  # a bug: answer as AWS does, keep the details in our log only
            log.exception("internal error in %s", operation)
            err = KMSInternalException("An internal error has occurred.")
            self.audit.record(ctx, operation, now, params, None, err.code, f"{type(exc).__name__}", call.resources)
            raise err from exc

    def _invoke(self, spec: OpSpec, call: Call, params: dict) -> dict:
        if spec.key_param is None:
            return spec.handler(call, params)
        key = call.key(params[spec.key_param], allow_alias=spec.aliases)
        return spec.handler(call, params, key)

    # -- material ---------------------------------------------------------------------

    def material_cache_get(self, key: KeyRecord, version: int) -> bytes | None:
        if self._plain_version != self.store.generation:
            self._plain = {}
            self._plain_version = self.store.generation
        ck = (key.key_id, key.region, version)
        plain = self._plain.get(ck)
        if plain is not None:
            return plain
        m = self.store.get_material(key.key_id, key.region, version)
        if m is None or not m.wrapped:  # imported material deleted or expired: its record stays, bytes gone
            return None
        plain = self.wrapper.unwrap(key.key_id, version, m.wrapped)
        self._plain[ck] = plain
        return plain

    def add_material(
        self, c: sqlite3.Connection, key: KeyRecord, when: float, rotation_type: str | None, material: bytes | None = None
    ) -> int:
        """Store a new version of ``key``'s material (wrapped) and make it current."""
        version = key.current_version + 1
        plain = material if material is not None else os.urandom(32)
        self.store.add_material(
            c,
            key.key_id,
            key.region,
            Material(version, os.urandom(32).hex(), self.wrapper.wrap(key.key_id, version, plain), when, rotation_type),
        )
        self.store.update_key(c, key, current_version=version)
        if key.multi_region and key.multi_region_role == "PRIMARY":  # replicas share every material version
            c.execute(
                "INSERT INTO materials (key_id, region, version, material_id, wrapped, created, rotation_type) "
                "SELECT key_id, k.region, version, material_id, wrapped, m.created, rotation_type FROM materials m "
                "JOIN keys k USING (key_id) WHERE m.key_id=? AND m.region=? AND m.version=? AND k.region<>?",
                (key.key_id, key.region, version, key.region),
            )
            c.execute("UPDATE keys SET current_version=? WHERE key_id=? AND region<>?", (version, key.key_id, key.region))
        return version

    def expire_imported_material(self, c: sqlite3.Connection, key: KeyRecord) -> None:
        """Imported material reached its ValidTo: KMS deletes it (see ``ops.imports.expire_due``)."""
        from kms_iac.backend.ops.imports import expire_due

        expire_due(self, c, key, key.valid_to or 0.0)

    def forget_material(self, key_id: str, region: str) -> None:
        for ck in [ck for ck in self._plain if ck[0] == key_id and ck[1] == region]:
            del self._plain[ck]
        self.parsed_keys.forget(key_id, region)

    # -- scheduled work: deletion windows and automatic rotation ------------------------

    def _run_due_work(self, now: float) -> None:
        due = self.store.next_due()
        if due is None or due > now:
            return
        with self.store.write() as c:
            transitions.finish_due(c, now)
            for key in self.store.all_keys():
                if key.state == keystate.PENDING_DELETION and key.deletion_date is not None and key.deletion_date <= now:
                    self.store.delete_key(c, key.key_id, key.region)
                    self.forget_material(key.key_id, key.region)
                elif key.valid_to is not None and key.valid_to <= now and key.state != keystate.PENDING_IMPORT:
                    # imported material expired: KMS deletes it and the key waits for a new import
                    self.expire_imported_material(c, key)
                elif (key.state == keystate.ENABLED and key.rotation_enabled and key.rotation_period and key.rotation_anchor
                      and key.multi_region_role != "REPLICA"):  # a primary's rotation reaches its replicas
                    period = key.rotation_period * DAY
                    while key.rotation_anchor + period <= now:
                        when = key.rotation_anchor + period
                        self.add_material(c, key, when, "AUTOMATIC")
                        self.store.update_key(c, key, rotation_anchor=when)

    # -- AWS managed keys -------------------------------------------------------------

    def aws_managed_key(self, call: Call, alias_name: str, region: str) -> KeyRecord:
        from kms_iac.backend.ops.keys import create_aws_managed_key

        return create_aws_managed_key(call, alias_name, region)

    # -- last-usage tracking ------------------------------------------------------------

    def note_usage(self, key: KeyRecord, operation: str, when: float, ctx: RequestContext) -> None:
        with self._usage_lock:
            self._usage[(key.key_id, key.region)] = (when, operation, ctx.event_id, ctx.request_id)

    def _maybe_flush_usage(self) -> None:
        if self._usage and time.monotonic() - self._usage_flushed >= USAGE_FLUSH_SECONDS:
            self.flush_usage()

    def flush_usage(self) -> None:
        """Write buffered last-usage records (batched: a write per crypto call would halve throughput)."""
        with self._usage_lock:
            pending, self._usage = self._usage, {}
            self._usage_flushed = time.monotonic()
        if not pending:
            return
        with self.store.lock, self.store.write() as c:
            c.executemany(
                "UPDATE keys SET last_used_at=?, last_used_op=?, last_used_event=?, last_used_request=? "
                "WHERE key_id=? AND region=? AND (last_used_at IS NULL OR last_used_at<=?)",
                [(w, op, ev, rq, kid, reg, w) for (kid, reg), (w, op, ev, rq) in pending.items()],
            )

    def close(self) -> None:
        try:
            self.flush_usage()
        finally:
            self.store.close()
            self.audit.close()
