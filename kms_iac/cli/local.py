"""``kms-iac local ...``: run, seed and inspect the bundled local KMS backend."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import click

from kms_iac.backend.defaults import DEFAULT_ACCOUNT, DEFAULT_REGION, default_data_dir

DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (default: $KMS_IAC_DATA_DIR or ./.kms-iac).",
)


@click.group()
def local() -> None:
    """The bundled local KMS backend."""


@local.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=4599, show_default=True, type=int, help="0 picks a free port (printed when ready).")
@DATA_DIR
@click.option("--region", default=DEFAULT_REGION, show_default=True, help="Region of unsigned/embedded callers.")
@click.option("--account", default=DEFAULT_ACCOUNT, show_default=True)
@click.option("--requests-per-second", type=float, default=None, help="Quota; excess requests get ThrottlingException.")
@click.option("--clock-control", is_flag=True, help="Testing: allow KmsIacAdmin.AdvanceClock to move the backend's clock.")
@click.option("--synchronous", type=click.Choice(["FULL", "NORMAL"]), default="FULL", show_default=True,
              help="SQLite durability: FULL survives power loss, NORMAL survives process crashes.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes sharing the port and the data dir (use the machine's cores).")
@click.option("--principals", "principals_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="YAML/JSON file of accounts, principals and access keys: only those keys are accepted, "
                   "SigV4 signatures are verified, and the caller's account is the principal's.")
def serve(host: str, port: int, data_dir: Path | None, region: str, account: str,
          requests_per_second: float | None, clock_control: bool, synchronous: str, workers: int,
          principals_file: Path | None) -> None:
    """Serve the KMS JSON 1.1 API over HTTP."""
    from kms_iac.backend.clock import OffsetClock
    from kms_iac.backend.core import Backend
    from kms_iac.backend.server import run

    if workers > 1 and (clock_control or requests_per_second):
        raise click.UsageError("--workers > 1 cannot be combined with --clock-control or --requests-per-second "
                               "(each worker would keep its own clock and quota)")

    directory = None
    if principals_file is not None:
        from kms_iac.backend.principals import PrincipalsError, load_principals

        try:
            directory = load_principals(principals_file)
        except PrincipalsError as exc:
            raise click.ClickException(str(exc)) from None

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

    run(make_backend, host, port, clock_control=clock_control, workers=workers)


@local.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DATA_DIR
@click.option("--region", default=DEFAULT_REGION, show_default=True)
@click.option("--account", default=DEFAULT_ACCOUNT, show_default=True)
def seed(file: Path, data_dir: Path | None, region: str, account: str) -> None:
    """Load keys with fixed ids and material, aliases, policies and tags from a YAML file."""
    from kms_iac.backend.core import Backend
    from kms_iac.backend.seed import SeedError, load_seed_file
    from kms_iac.backend.seed import seed as do_seed

    backend = Backend(data_dir or default_data_dir(), region=region, account=account)
    try:
        result = do_seed(backend, load_seed_file(file))
    except SeedError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        backend.close()
    click.echo(f"seeded {len(result.keys)} key(s) and {len(result.aliases)} alias(es)")
    for kid in result.keys:
        click.echo(f"  {kid}")


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


@local.command()
@DATA_DIR
@click.option("--event", "events", multiple=True, help="Only these eventNames (repeatable).")
@click.option("--key", "key", default=None, help="Only calls on this key id or ARN.")
@click.option("--errors", is_flag=True, help="Only refused calls.")
@click.option("--since", default=None, help="ISO time, e.g. 2026-11-28T12:00:00Z.")
@click.option("--limit", type=int, default=None, help="Only the last N matching events.")
@click.option("--json", "as_json", is_flag=True, help="Print the CloudTrail records as JSON lines.")
def audit(data_dir: Path | None, events: tuple[str, ...], key: str | None, errors: bool,
          since: str | None, limit: int | None, as_json: bool) -> None:
    """Print the audit log (CloudTrail format) readably, with filters."""
    from kms_iac.backend.audit import read_events

    since_dt = _parse_time(since) if since else None
    rows = []
    for ev in read_events(data_dir or default_data_dir()):
        if events and ev.get("eventName") not in events:
            continue
        if errors and not ev.get("errorCode"):
            continue
        if key and not any(key in (r.get("ARN") or "") for r in ev.get("resources") or []) \
                and key not in json.dumps(ev.get("requestParameters") or {}):
            continue
        if since_dt and _parse_time(ev["eventTime"]) < since_dt:
            continue
        rows.append(ev)
    if limit is not None:
        rows = rows[-limit:]
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
            (ev.get("userIdentity") or {}).get("arn", ""),
            ev.get("awsRegion", ""),
            ", ".join(r.get("ARN", "").rsplit("/", 1)[-1] for r in res),
            f"[red]{ev['errorCode']}[/red]: {ev.get('errorMessage', '')}" if ev.get("errorCode") else "[green]OK[/green]",
        )
    Console().print(table)


@local.group()
def hsm() -> None:
    """Local CloudHSM clusters (SoftHSM2 tokens) for custom key stores."""


@hsm.command("create-cluster")
@click.argument("name")
@DATA_DIR
@click.option("--user-pin", default=None, help="The token's user PIN, i.e. the KeyStorePassword (default: random).")
@click.option("--so-pin", default=None, help="The token's security officer PIN (default: random).")
def create_cluster(name: str, data_dir: Path | None, user_pin: str | None, so_pin: str | None) -> None:
    """Initialise a SoftHSM2 token as a CloudHSM cluster; print what CreateCustomKeyStore takes (JSON)."""
    from kms_iac.backend.hsm import HsmError
    from kms_iac.backend.ops.custom_key_stores import create_cluster as do_create

    try:
        result = do_create(data_dir or default_data_dir(), name, user_pin=user_pin, so_pin=so_pin)
    except (HsmError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(result))
