"""``kms-iac local ...``: run, seed and inspect the bundled local KMS backend."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from kms_iac.backend.defaults import DEFAULT_ACCOUNT, DEFAULT_REGION, default_data_dir
from kms_iac.cli.errors import BadInput, DataDirType, NetworkError, account_id, region_name

DATA_DIR = click.option(
    "--data-dir",
    type=DataDirType(),
    default=None,
    help="Data directory (default: $KMS_IAC_DATA_DIR or ./.kms-iac).",
)


@click.group()
def local() -> None:
    """The bundled local KMS backend."""


@local.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on: an IP address of this machine (0.0.0.0 for all) or a name resolving to one.")
@click.option("--port", default=4599, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port, 0..65535; 0 picks a free port (printed when ready).")
@DATA_DIR
@click.option("--region", default=DEFAULT_REGION, show_default=True, callback=region_name,
              help="The backend's default region; a signed request is served in the region of its credential scope.")
@click.option("--account", default=DEFAULT_ACCOUNT, show_default=True, callback=account_id,
              help="Account of callers without --principals (every well-formed signed request is its root).")
@click.option("--requests-per-second", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Quota (> 0); excess requests get ThrottlingException.")
@click.option("--clock-control", is_flag=True, help="Testing: allow KmsIacAdmin.AdvanceClock to move the backend's clock.")
@click.option("--synchronous", type=click.Choice(["FULL", "NORMAL"]), default="FULL", show_default=True,
              help="SQLite durability: FULL survives power loss, NORMAL survives process crashes.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes sharing the data dir; the server process hands them connections in turn. "
                   "Default: one per CPU this process may "
                   "run on (1 with --clock-control or --requests-per-second, which keep per-process state).")
@click.option("--principals", "principals_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="YAML/JSON file of accounts, principals and access keys: only those keys are accepted, "
                   "SigV4 signatures are verified, and the caller's account is the principal's.")
def serve(host: str, port: int, data_dir: Path | None, region: str, account: str,
          requests_per_second: float | None, clock_control: bool, synchronous: str, workers: int | None,
          principals_file: Path | None) -> None:
    """Serve the KMS JSON 1.1 API over HTTP.

    Exit status: 0 after SIGTERM/SIGINT; 2 a bad option, --host or principals file; 3 the data
    dir cannot be used; 4 the address cannot be listened on (e.g. the port is in use). On any of
    these nothing in the data dir is created or changed.
    """
    from kms_iac.backend.clock import OffsetClock
    from kms_iac.backend.core import Backend
    from kms_iac.backend.server import ListenError, run

    if workers is not None and workers > 1 and (clock_control or requests_per_second):
        raise click.UsageError("--workers > 1 cannot be combined with --clock-control or --requests-per-second "
                               "(each worker would keep its own clock and quota)")
    if workers is None:
        workers = 1 if clock_control or requests_per_second else min(64, _usable_cpus())

    directory = None
    if principals_file is not None:
        from kms_iac.backend.principals import load_principals

        directory = load_principals(principals_file)

    def make_backend() -> Backend:
        backend = Backend(
            data_dir or default_data_dir(), region=region, account=account,
            clock=OffsetClock() if clock_control else None,
            requests_per_second=requests_per_second, synchronous=synchronous,
        )
        if directory is not None:
            from kms_iac.backend.sigv4 import attach_principals

            # signatures are checked against wall-clock time, not the --clock-control clock
            attach_principals(backend, directory)
        return backend

    try:
        run(make_backend, host, port, clock_control=clock_control, workers=workers)
    except ListenError as exc:
        raise (BadInput if exc.bad_address else NetworkError)(str(exc)) from None


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's cpuset), else all."""
    import os

    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@local.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DATA_DIR
@click.option("--region", default=DEFAULT_REGION, show_default=True, callback=region_name,
              help="Region of keys that name none.")
@click.option("--account", default=DEFAULT_ACCOUNT, show_default=True, callback=account_id,
              help="Account of keys that name none.")
@click.option("--json", "as_json", is_flag=True, help='Print {"keys": [ids], "aliases": [names]} as JSON.')
def seed(file: Path, data_dir: Path | None, region: str, account: str, as_json: bool) -> None:
    """Load keys with fixed ids and material, aliases, policies and tags from a YAML/JSON FILE.

    \b
    keys:
      - id: 0b7f3c1e-1111-4222-8333-944445555666   # or mrk-<32 hex> (multi-Region)
        description: orders tenant key
        material: <base64 of 32 bytes>             # optional; random when absent
        previous_materials: [<base64>, ...]        # optional; older versions, oldest first
        state: Enabled                             # Enabled | Disabled
        policy: {...}                              # default key policy when absent
        rotation: {enabled: true, period_days: 365}
        tags: {tenant: orders}
        aliases: [alias/orders]
        account: "111122223333"                    # optional
        region: us-east-1                          # optional

    The whole file is checked before the data dir is opened and written in one transaction:
    a bad file, or a key or alias that already exists, changes nothing (exit 2; 3 when the
    data dir cannot be used).
    """
    import time

    from kms_iac.backend.core import Backend
    from kms_iac.backend.seed import apply_seed, load_seed_file, plan_seed

    planned = plan_seed(load_seed_file(file), account, region, time.time())
    backend = Backend(data_dir or default_data_dir(), region=region, account=account)
    try:
        result = apply_seed(backend, planned)
    finally:
        backend.close()
    if as_json:
        click.echo(json.dumps({"keys": result.keys, "aliases": result.aliases}))
        return
    click.echo(f"seeded {len(result.keys)} key(s) and {len(result.aliases)} alias(es)")
    for kid in result.keys:
        click.echo(f"  {kid}")


_AGO = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SinceType(click.ParamType):
    """A point in time: ISO 8601 (a date, or a date and time, UTC unless it has an offset), or a
    duration ago (90s, 30m, 2h, 7d, 1w)."""

    name = "TIME"
    FORMATS = "ISO 8601 (2026-11-28, 2026-11-28T12:00:00Z, 2026-11-28T12:00:00+01:00) or a duration ago (30m, 2h, 7d)"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        ago = _AGO.match(text.lower())
        if ago:
            return datetime.now(timezone.utc) - timedelta(seconds=int(ago.group(1)) * _UNIT_SECONDS[ago.group(2)])
        try:
            return _utc(text)
        except ValueError:
            self.fail(f"{value!r} is not a time; use {self.FORMATS}", param, ctx)


def _utc(text: str) -> datetime:
    """An ISO 8601 time as UTC (naive times are UTC, as CloudTrail's eventTime is)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


@local.command()
@DATA_DIR
@click.option("--event", "events", multiple=True, help="Only these eventNames (repeatable).")
@click.option("--key", "key", default=None, help="Only calls on this key id or ARN.")
@click.option("--errors", is_flag=True, help="Only refused calls.")
@click.option("--since", type=SinceType(), default=None, help=f"Only events from then on: {SinceType.FORMATS}.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Only the last N matching events (N >= 0).")
@click.option("--json", "as_json", is_flag=True, help="Print the CloudTrail records as JSON lines.")
def audit(data_dir: Path | None, events: tuple[str, ...], key: str | None, errors: bool,
          since: datetime | None, limit: int | None, as_json: bool) -> None:
    """Print the audit log (CloudTrail format) readably, with filters.

    Exit status 3 when the data dir does not exist or is not a kms-iac data dir.
    """
    from kms_iac.backend.audit import read_events
    from kms_iac.backend.datadir import existing_data_dir

    directory = existing_data_dir(data_dir or default_data_dir())
    rows = []
    skipped: list[int] = []
    for ev in read_events(directory, skipped=skipped):
        if events and ev.get("eventName") not in events:
            continue
        if errors and not ev.get("errorCode"):
            continue
        if key and not any(key in (r.get("ARN") or "") for r in ev.get("resources") or []) \
                and key not in json.dumps(ev.get("requestParameters") or {}):
            continue
        if since and not _at_or_after(ev.get("eventTime"), since):
            continue
        rows.append(ev)
    if skipped:
        click.echo(f"warning: skipped {len(skipped)} line(s) of {directory / 'audit.log'} that are not CloudTrail "
                   f"records (line {', '.join(map(str, skipped[:5]))}{', ...' if len(skipped) > 5 else ''}: torn by "
                   "a crash, or not written by kms-iac)", err=True)
    if limit is not None:
        rows = rows[len(rows) - limit:] if limit else []
    if as_json:
        for ev in rows:
            sys.stdout.write(json.dumps(ev) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"kms-iac audit log ({len(rows)} events)")
    for col in ("time", "event", "caller", "region", "key", "result"):
        table.add_column(col, overflow="fold")
    for ev in rows:
        res = ev.get("resources") or []
        table.add_row(
            ev.get("eventTime", ""),
            ev.get("eventName", ""),
            _caller(ev.get("userIdentity") or {}),
            ev.get("awsRegion", ""),
            ", ".join(r.get("ARN", "").rsplit("/", 1)[-1] for r in res),
            f"[red]{ev['errorCode']}[/red]: {ev.get('errorMessage', '')}" if ev.get("errorCode") else "[green]OK[/green]",
        )
    Console().print(table)


def _at_or_after(event_time: Any, since: datetime) -> bool:
    try:
        return _utc(str(event_time)) >= since
    except ValueError:
        return False


def _caller(identity: dict) -> str:
    """Who called: the principal's ARN, or for a refused signature the access key it presented."""
    if identity.get("arn"):
        return identity["arn"]
    return f"unauthenticated ({identity.get('accessKeyId') or 'no access key'})"


@local.group()
def hsm() -> None:
    """Local CloudHSM clusters (SoftHSM2 tokens) for custom key stores."""


@hsm.command("create-cluster")
@click.argument("name")
@DATA_DIR
@click.option("--user-pin", default=None,
              help="The token's user PIN, i.e. the KeyStorePassword: 7 to 32 characters (default: random).")
@click.option("--so-pin", default=None, help="The token's security officer PIN: 4 to 255 characters (default: random).")
def create_cluster(name: str, data_dir: Path | None, user_pin: str | None, so_pin: str | None) -> None:
    """Initialise a SoftHSM2 token as a CloudHSM cluster; print what CreateCustomKeyStore takes (JSON).

    Exit status 2 for a bad PIN or a missing SoftHSM2, 3 when the data dir cannot be used;
    either way nothing is created.
    """
    from kms_iac.backend.hsm import HsmError
    from kms_iac.backend.ops.custom_key_stores import create_cluster as do_create

    if not name.strip():
        raise BadInput("the cluster NAME is empty; give it a name, e.g. kms-iac local hsm create-cluster my-cluster")
    try:
        result = do_create(data_dir or default_data_dir(), name, user_pin=user_pin, so_pin=so_pin)
    except ValueError as exc:  # a PIN AWS would refuse
        raise BadInput(f"{exc}; give another --user-pin/--so-pin, or leave them out for random ones") from None
    except HsmError as exc:
        raise BadInput(str(exc).rstrip(".")) from None
    click.echo(json.dumps(result))
