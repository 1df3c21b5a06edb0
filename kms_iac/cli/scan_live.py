"""``kms-iac scan live``: the rules over the keys a KMS holds now, AWS-Config style.

One source per scan: ``--endpoint URL`` (any KMS endpoint: the local server, an
emulator), ``--aws`` (AWS KMS through the standard credential chain, ``--region`` as
often as needed) or ``--data-dir DIR`` (the local backend's store, read with no server;
the default is the backend's default data dir). ``--principals FILE`` adds the identity
policies of a principals file (KMS016). Exit status: 0 clean, 1 findings at or above
``--fail-on``, 2 usage, configuration or connection errors (one ``Error:`` line).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kms_iac.cli.scan import ScanError, config_option, emit, fail_on_option, load_rules_config, output_option
from kms_iac.rules.report import FORMATS

DEFAULT_CONCURRENCY = 8
LARGE_ACCOUNT = 200  # keys; smaller scans finish before a progress bar would help


class OneLineErrors(click.Command):
    """Usage mistakes get the scan's one ``Error:`` line and exit 2, not click's usage block."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            raise ScanError(e.format_message()) from None


def _progress_bar():
    """A rich progress bar on stderr for large accounts (from LARGE_ACCOUNT keys), shown only when
    stderr is a terminal: pipelines and files get no escape codes. Returns (bar or None, callback)."""
    if not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("reading keys"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task("keys", total=None, visible=False)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total, visible=total >= LARGE_ACCOUNT)
    return bar, update


@click.command("live", cls=OneLineErrors)
@click.option("--endpoint", metavar="URL", help="A KMS endpoint (e.g. a `kms-iac local serve` URL).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The local backend's data dir, read without a server (default: $KMS_IAC_DATA_DIR or ./.kms-iac).")
@click.option("--aws", "use_aws", is_flag=True, help="AWS KMS, with the standard credential chain.")
@click.option("--region", "regions", multiple=True, metavar="R",
              help="Region to scan (repeatable). Default: the configured region (us-east-1 for an endpoint).")
@click.option("--principals", "principals_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A principals file (YAML/JSON): its identity policies are checked too (KMS016).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@fail_on_option
@config_option
@output_option
@click.option("--show-passed", is_flag=True, help="Text format: list passing and not-applicable checks too.")
@click.option("--grants/--no-grants", default=True, show_default=True,
              help="Read every key's grants (ListGrants). No rule reads them yet; --no-grants saves one call per key.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=DEFAULT_CONCURRENCY, show_default=True,
              help="Keys read at once (one boto3 client per thread).")
def live(endpoint: str | None, data_dir: Path | None, use_aws: bool, regions: tuple[str, ...],
         principals_file: Path | None, fmt: str, fail_on: str, config_path: Path | None, output: Path | None,
         show_passed: bool, grants: bool, concurrency: int) -> None:
    """Check the keys of a live KMS (local server, data dir or AWS) against KMS001-KMS016.

    Exit status: 0 clean, 1 a finding at or above --fail-on, 2 an error, reported as one
    `Error:` line (a usage mistake, an endpoint that cannot be reached or refuses the
    credentials, a data dir that cannot be used).
    """
    from kms_iac.rules.adapters.live import LiveScanError, identity_views, scan_endpoint
    from kms_iac.rules.engine import evaluate

    chosen = [name for name, on in (("--endpoint", endpoint), ("--data-dir", data_dir), ("--aws", use_aws)) if on]
    if len(chosen) > 1:
        raise ScanError(f"choose one source: {' and '.join(chosen)} were both given")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ScanError(f"--endpoint must be an http:// or https:// URL, not {endpoint!r}")
    config = load_rules_config(Path.cwd(), config_path)
    bar, progress = _progress_bar()
    try:
        identities = identity_views(principals_file) if principals_file is not None else []
        if bar is not None:
            bar.start()
        try:
            if endpoint or use_aws:
                inventory = scan_endpoint(_regions(regions, bool(endpoint)), endpoint_url=endpoint,
                                          concurrency=concurrency, progress=progress, grants=grants)
            else:
                from kms_iac.backend.core import default_data_dir
                from kms_iac.rules.adapters.live_data_dir import scan_data_dir

                inventory = scan_data_dir(data_dir or default_data_dir(), regions, progress=progress, grants=grants)
        finally:
            if bar is not None:
                bar.stop()
    except LiveScanError as e:
        raise ScanError(str(e)) from None
    inventory.identities = identities
    for warning in inventory.warnings:
        click.echo(f"warning: {warning}", err=True)
    emit(evaluate(inventory.views, config), fmt, fail_on, output, show_passed)


def _regions(given: tuple[str, ...], endpoint: bool) -> list[str]:
    if given:
        return list(given)
    import boto3
    from botocore.exceptions import BotoCoreError

    try:
        region = boto3.session.Session().region_name
    except BotoCoreError as e:  # a named profile that does not exist, a broken config file
        raise ScanError(f"AWS configuration: {e}") from None
    if region:
        return [region]
    if endpoint:
        return ["us-east-1"]
    raise ScanError("no AWS region: pass --region R (repeatable) or set AWS_REGION")
