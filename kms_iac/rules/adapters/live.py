"""Live keys as :class:`KeyView`: the AWS-Config-style front door of the rules.

A live scan asks KMS what it knows about every key (ListKeys, DescribeKey,
GetKeyPolicy, GetKeyRotationStatus where rotation applies, ListResourceTags,
ListGrants, and ListAliases once per region) and turns the answers into the one view
every rule reads. Two sources produce the same answers:

- any KMS endpoint through boto3 (:func:`scan_endpoint`): the local server, moto, or
  real AWS with the standard credential chain; and
- the local backend's data dir read through its own operations
  (:mod:`kms_iac.rules.adapters.live_data_dir`), so both give identical views.

What a live key does not remember stays unknown (``None``): whether its creator
bypassed the lockout check, and the deletion window it would be given. An answer
KMS refuses (AccessDenied, an operation the endpoint does not implement) makes that
part unknown too, so the rules that need it say NOT_APPLICABLE instead of guessing.
Connection and credential failures are not per-key unknowns: they stop the scan
with one :class:`LiveScanError` line, after a single fast attempt.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from kms_iac.policy.document import PolicyError, parse_policy
from kms_iac.rules.view import SYMMETRIC, IdentityPolicyView, KeyView

Progress = Callable[[int, int], None]
"""Called with (keys read so far, keys found so far) as a scan goes."""

# Credential and signature refusals: no key can be read, so the scan stops.
AUTH_ERRORS = frozenset({
    "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException", "SignatureDoesNotMatch",
    "IncompleteSignature", "MissingAuthenticationToken", "ExpiredTokenException", "ExpiredToken",
    "AuthFailure", "InvalidAccessKeyId", "RequestExpired",
})
PENDING_DELETION_STATES = ("PendingDeletion", "PendingReplicaDeletion")


class LiveScanError(Exception):
    """The scan cannot go on (connection refused, credentials rejected, no data dir): one line why."""


@dataclass
class KeyReadings:
    """What KMS answered about one key; ``None`` where it would not say (see ``unknown``)."""

    metadata: dict[str, Any]
    policy: str | dict | None = None
    rotation: dict[str, Any] | None = None
    tags: list[dict[str, str]] | None = None
    grants: list[dict[str, Any]] | None = None
    aliases: list[str] | None = None
    unknown: dict[str, str] = field(default_factory=dict)  # operation -> the error code KMS answered


@dataclass
class Inventory:
    """The result of reading one source: views for the engine, and what could not be read."""

    keys: list[KeyView] = field(default_factory=list)
    identities: list[IdentityPolicyView] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def views(self) -> list[KeyView | IdentityPolicyView]:
        return [*self.keys, *self.identities]


# -- answers -> view --------------------------------------------------------------------------


def rotation_applies(md: dict[str, Any]) -> bool:
    """Whether GetKeyRotationStatus is worth asking: customer managed, symmetric, KMS-generated, not in a key store."""
    return (md.get("KeyManager", "CUSTOMER") == "CUSTOMER"
            and (md.get("KeySpec") or md.get("CustomerMasterKeySpec") or SYMMETRIC) == SYMMETRIC
            and md.get("Origin", "AWS_KMS") == "AWS_KMS" and not md.get("CustomKeyStoreId"))


def when(value: Any) -> dt.datetime | None:
    """A KMS timestamp as an aware datetime (boto3 gives datetimes, the backend's operations epoch seconds)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return dt.datetime.fromtimestamp(float(value), dt.timezone.utc)


def view_from_readings(r: KeyReadings, now: dt.datetime | None = None) -> KeyView:
    """The rules' view of a key from KMS's answers about it."""
    now = now or dt.datetime.now(dt.timezone.utc)
    md = r.metadata
    arn = md["Arn"]
    state = md.get("KeyState")
    origin = md.get("Origin") or "AWS_KMS"
    valid_to = when(md.get("ValidTo"))
    # KMS deletes expired imported material and leaves the key PendingImport; it says so when it keeps
    # the expiration model, or when the expiry has passed but the key has not been swept yet.
    expired = origin == "EXTERNAL" and (
        (state == "PendingImport" and md.get("ExpirationModel") == "KEY_MATERIAL_EXPIRES")
        or (valid_to is not None and valid_to <= now))
    policy, unresolved = None, r.policy is None
    if r.policy is not None:
        try:
            policy = parse_policy(r.policy)
        except PolicyError:
            unresolved = True
    rotation_enabled = period = None
    if r.rotation is not None:
        rotation_enabled = bool(r.rotation.get("KeyRotationEnabled"))
        period = r.rotation.get("RotationPeriodInDays")
    pending = state in PENDING_DELETION_STATES
    return KeyView(
        resource=arn, source="live", account=md.get("AWSAccountId") or arn.split(":")[4], region=arn.split(":")[3],
        arn=arn, key_manager=md.get("KeyManager") or "CUSTOMER",
        key_spec=md.get("KeySpec") or md.get("CustomerMasterKeySpec") or SYMMETRIC,
        key_usage=md.get("KeyUsage") or "ENCRYPT_DECRYPT", origin=origin,
        custom_key_store_id=md.get("CustomKeyStoreId"), key_state=state, enabled=md.get("Enabled"),
        policy=policy, policy_unresolved=unresolved,
        rotation_enabled=rotation_enabled, rotation_period_days=period,
        # A live key remembers a deletion window only while one runs.
        deletion_window_days=md.get("PendingDeletionWindowInDays") if pending else None,
        deletion_date=when(md.get("DeletionDate")), pending_deletion=pending,
        valid_to=None if expired else valid_to, material_expired=expired,
        multi_region=bool(md.get("MultiRegion")),
        aliases=None if r.aliases is None else sorted(r.aliases),
        tags=None if r.tags is None else {t["TagKey"]: t["TagValue"] for t in r.tags},
        grants=list(r.grants or []),
        bypass_lockout=None,  # a live key does not remember whether its creator bypassed the check
    )


def identity_views(principals_file: Path | str) -> list[IdentityPolicyView]:
    """One view per identity policy of each principal in a principals file (KMS016)."""
    from kms_iac.backend.principals import PrincipalsError, load_principals

    try:
        directory = load_principals(principals_file)
    except PrincipalsError as e:
        raise LiveScanError(str(e)) from None
    out: list[IdentityPolicyView] = []
    seen: set[str] = set()
    for entry in directory.entries:  # a principal with several access keys is one identity
        if entry.arn in seen:
            continue
        seen.add(entry.arn)
        for i, doc in enumerate(entry.policies):
            name = entry.arn if len(entry.policies) == 1 else f"{entry.arn}#policy{i + 1}"
            out.append(IdentityPolicyView(name, "live", doc, file=str(principals_file), account=entry.account))
    return out


# -- boto3 ----------------------------------------------------------------------------------


def _retry_config(attempts: int, connect_timeout: float, read_timeout: float):
    import botocore.config

    # parameter_validation off: every request is built here, and botocore's check costs per call
    return botocore.config.Config(retries={"mode": "standard", "total_max_attempts": attempts},
                                  connect_timeout=connect_timeout, read_timeout=read_timeout,
                                  max_pool_connections=64, parameter_validation=False)


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__)


def _fatal(exc: Exception, where: str) -> LiveScanError | None:
    """The one-line error for failures that stop a whole scan; None for a per-call refusal."""
    from botocore import exceptions as be

    if isinstance(exc, (be.EndpointConnectionError, be.ConnectTimeoutError, be.ConnectionClosedError)):
        return LiveScanError(f"cannot connect to {where}: {exc}; check that it is running and the URL is right")
    if isinstance(exc, be.ReadTimeoutError):
        return LiveScanError(f"{where} did not answer in time: {exc}; try again, or check the endpoint's load")
    if isinstance(exc, (be.NoCredentialsError, be.PartialCredentialsError)):
        return LiveScanError(f"no usable AWS credentials for {where}: {exc}; set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")
    if isinstance(exc, be.NoRegionError):
        return LiveScanError("no AWS region: pass --region or set AWS_REGION")
    if isinstance(exc, be.ClientError) and _error_code(exc) in AUTH_ERRORS:
        message = exc.response.get("Error", {}).get("Message", "").rstrip(". ")
        return LiveScanError(f"{where} rejected the credentials: {_error_code(exc)}"
                             + (f": {message}" if message else "")
                             + "; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to a key it accepts")
    if isinstance(exc, be.BotoCoreError) and not isinstance(exc, be.ClientError):
        return LiveScanError(f"{where}: {exc}")
    return None


class _Clients:
    """One boto3 client per thread and region (clients are created under a lock: sessions are not thread-safe)."""

    def __init__(self, session, endpoint_url: str | None, config, credentials: dict[str, str]) -> None:
        self.session, self.endpoint_url, self.config, self.credentials = session, endpoint_url, config, credentials
        self._lock = threading.Lock()
        self._local = threading.local()

    def make(self, region: str, config=None):
        with self._lock:
            return self.session.client("kms", region_name=region, endpoint_url=self.endpoint_url,
                                       config=config or self.config, **self.credentials)

    def get(self, region: str):
        clients = self._local.__dict__.setdefault("by_region", {})
        if region not in clients:
            clients[region] = self.make(region)
        return clients[region]


def _drain(call: Callable[..., dict], items: str, **params: Any) -> list:
    """Every page of a Marker/Truncated List* operation."""
    out: list = []
    while True:
        page = call(**params)
        out.extend(page.get(items) or [])
        if not page.get("Truncated") or not page.get("NextMarker"):
            return out
        params["Marker"] = page["NextMarker"]


def _read_key(clients: _Clients, region: str, key_id: str, where: str, grants: bool = True) -> KeyReadings | str | None:
    """Everything the rules need about one key; None when the key vanished between ListKeys and now,
    a warning when KMS will not even describe it."""
    from botocore.exceptions import ClientError

    kms = clients.get(region)
    try:
        md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    except ClientError as e:
        fatal = _fatal(e, where)
        if fatal:
            raise fatal from None
        if _error_code(e) == "NotFoundException":
            return None
        return f"{key_id} ({region}): not scanned: DescribeKey refused ({_error_code(e)})"
    except Exception as e:  # noqa: BLE001 - connection failures end the scan with one line
        fatal = _fatal(e, where)
        if fatal:
            raise fatal from None
        raise
    r = KeyReadings(md)

    def ask(op: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ClientError as e:
            fatal = _fatal(e, where)
            if fatal:
                raise fatal from None
            r.unknown[op] = _error_code(e)  # AccessDenied, UnsupportedOperation, not implemented: unknown
            return None
        except Exception as e:  # noqa: BLE001
            fatal = _fatal(e, where)
            if fatal:
                raise fatal from None
            raise

    arn = md["Arn"]
    r.policy = ask("GetKeyPolicy", lambda: kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"])
    if rotation_applies(md):
        r.rotation = ask("GetKeyRotationStatus", lambda: kms.get_key_rotation_status(KeyId=arn))
    r.tags = ask("ListResourceTags", lambda: _drain(kms.list_resource_tags, "Tags", KeyId=arn, Limit=50))
    if grants:
        r.grants = ask("ListGrants", lambda: _drain(kms.list_grants, "Grants", KeyId=arn, Limit=100))
    return r


def _list_region(clients: _Clients, region: str, where: str) -> tuple[list[str], dict[str, list[str]] | None, str | None]:
    """(key ids, aliases by key id or None when ListAliases is refused, the refusal's code)."""
    from botocore.exceptions import ClientError

    # The first call gets one attempt and short timeouts: a dead endpoint fails now, not after retries.
    probe = clients.make(region, _retry_config(1, 3.0, 30.0))
    kms = clients.get(region)
    try:
        first = probe.list_keys(Limit=1000)
    except Exception as e:  # noqa: BLE001
        fatal = _fatal(e, where)
        if fatal:
            raise fatal from None
        if isinstance(e, ClientError) and _error_code(e) in ("AccessDeniedException", "AccessDenied"):
            raise LiveScanError(f"{where} refused ListKeys in {region}: {_error_code(e)}: "
                                f"{e.response.get('Error', {}).get('Message', '').rstrip('. ')}; use credentials "
                                "allowed kms:ListKeys (and the reads of each key)") from None
        first = None  # throttled or a server error: the retrying client takes it from here
    try:
        if first is None:
            keys = _drain(kms.list_keys, "Keys", Limit=1000)
        else:
            keys = list(first.get("Keys") or [])
            if first.get("Truncated") and first.get("NextMarker"):
                keys += _drain(kms.list_keys, "Keys", Limit=1000, Marker=first["NextMarker"])
    except Exception as e:  # noqa: BLE001
        fatal = _fatal(e, where)
        if fatal:
            raise fatal from None
        raise LiveScanError(f"{where}: ListKeys in {region} failed: {_error_code(e)}") from None
    aliases: dict[str, list[str]] | None = {}
    refused = None
    try:
        for a in _drain(kms.list_aliases, "Aliases", Limit=100):
            if a.get("TargetKeyId"):
                aliases.setdefault(a["TargetKeyId"], []).append(a["AliasName"])
    except Exception as e:  # noqa: BLE001
        fatal = _fatal(e, where)
        if fatal:
            raise fatal from None
        if not isinstance(e, ClientError):
            raise
        aliases, refused = None, _error_code(e)
    return [k["KeyId"] for k in keys], aliases, refused


def scan_endpoint(regions: Iterable[str], *, endpoint_url: str | None = None, concurrency: int = 8,
                  session=None, progress: Progress | None = None, max_attempts: int = 5,
                  grants: bool = True) -> Inventory:
    """Read every key of every region through boto3: ``endpoint_url`` for a local server or emulator,
    None for AWS (the standard credential chain). ``grants=False`` leaves out ListGrants (one call
    per key that no rule reads yet)."""
    import boto3

    from botocore.exceptions import BotoCoreError

    try:
        session = session or boto3.session.Session()
        has_credentials = session.get_credentials() is not None
    except BotoCoreError as e:  # a named profile that does not exist, a broken config file
        raise LiveScanError(f"AWS configuration: {e}") from None
    credentials: dict[str, str] = {}
    if endpoint_url and not has_credentials:
        # emulators accept any well-formed signature: do not fail for want of credentials
        credentials = {"aws_access_key_id": "kms-iac", "aws_secret_access_key": "kms-iac"}
    where = endpoint_url or "AWS KMS"
    clients = _Clients(session, endpoint_url, _retry_config(max_attempts, 5.0, 60.0), credentials)
    inv = Inventory()
    now = dt.datetime.now(dt.timezone.utc)
    regions = list(dict.fromkeys(regions))
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="kms-scan") as pool:
        listed = {region: _list_region(clients, region, f"{where} ({region})" if not endpoint_url else where)
                  for region in regions}
        work = [(region, kid) for region, (ids, _, _) in listed.items() for kid in ids]
        total, done = len(work), 0
        if progress:
            progress(0, total)
        futures = {pool.submit(_read_key, clients, region, kid, where, grants): (region, kid) for region, kid in work}
        try:
            for fut in as_completed(futures):
                region, kid = futures[fut]
                readings = fut.result()
                done += 1
                if progress:
                    progress(done, total)
                if readings is None:
                    continue
                if isinstance(readings, str):
                    inv.warnings.append(readings)
                    continue
                aliases = listed[region][1]
                readings.aliases = None if aliases is None else aliases.get(readings.metadata["KeyId"], [])
                inv.keys.append(view_from_readings(readings, now))
                _note_unknowns(inv, readings)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    for region, (_, aliases, refused) in listed.items():
        if aliases is None:
            inv.warnings.append(f"ListAliases refused in {region} ({refused}): aliases are unknown")
    inv.keys.sort(key=lambda v: v.resource)
    return inv


def _note_unknowns(inv: Inventory, r: KeyReadings) -> None:
    if r.unknown:
        parts = ", ".join(f"{op} ({code})" for op, code in sorted(r.unknown.items()))
        inv.warnings.append(f"{r.metadata['Arn']}: unknown: {parts}")
