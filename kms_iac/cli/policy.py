"""``kms-iac policy simulate|explain``: who may do what with a key, decided by the same
evaluator the backend enforces with."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from kms_iac.backend.defaults import DEFAULT_REGION, default_data_dir

EXPLAIN_ACTIONS = (
    "kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:CreateGrant", "kms:DescribeKey",
    "kms:PutKeyPolicy", "kms:DisableKey", "kms:ScheduleKeyDeletion",
)


def _client(endpoint: str | None, data_dir: Path | None, region: str):
    if endpoint:
        import boto3

        return boto3.client("kms", endpoint_url=endpoint, region_name=region)
    from kms_iac.backend.embedded import embedded_client

    return embedded_client(data_dir or default_data_dir(), region=region)


def _identity_policies(principals: Path | None, arn: str) -> tuple[dict, ...]:
    if principals is None:
        return ()
    from kms_iac.backend.principals import load_principals

    entry = load_principals(principals).by_arn(arn)
    return tuple(entry.policies) if entry is not None else ()


def _key_view(kms, key: str) -> tuple[dict, dict, list[dict], list[str]]:
    md = kms.describe_key(KeyId=key)["KeyMetadata"]
    policy = json.loads(kms.get_key_policy(KeyId=md["KeyId"], PolicyName="default")["Policy"])
    grants = [g for page in kms.get_paginator("list_grants").paginate(KeyId=md["KeyId"]) for g in page["Grants"]]
    aliases = [a["AliasName"] for a in kms.list_aliases(KeyId=md["KeyId"])["Aliases"]]
    return md, policy, grants, aliases


def _decide(md: dict, policy: dict, grants: list[dict], aliases: list[str], principal_arn: str,
            identity: tuple[dict, ...], action: str, context: dict[str, str], via_service: str | None,
            source_vpce: str | None, region: str):
    from kms_iac.backend.authorization import condition_keys, grant_infos
    from kms_iac.policy.evaluator import Principal, Request, evaluate

    account = principal_arn.split(":")[4]
    facts = {"kms:KeySpec": md.get("KeySpec"), "kms:KeyUsage": md.get("KeyUsage"), "kms:KeyOrigin": md.get("Origin"),
             "kms:MultiRegion": bool(md.get("MultiRegion")), "kms:ResourceAliases": aliases}
    operation = action.split(":", 1)[-1]
    params = {"EncryptionContext": context} if context else {}
    keys = condition_keys(principal_arn=principal_arn, principal_account=account,
                          principal_type="Account" if principal_arn.endswith(":root") else "AssumedRole",
                          region=region, now=time.time(), operation=operation, params=params, key_facts=facts,
                          via_service=via_service, source_vpce=source_vpce)
    request = Request(action=action, resource=md["Arn"], context=keys, encryption_context=context)
    return evaluate(policy, Principal(principal_arn, account, identity), request, grant_infos(grants))


@click.group()
def policy() -> None:
    """Key policy simulation, with the backend's own evaluator."""


COMMON = [
    click.option("--key", required=True, help="Key id, ARN, alias or alias ARN."),
    click.option("--endpoint", default=None, help="KMS endpoint URL (default: the embedded local backend)."),
    click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None),
    click.option("--region", default=DEFAULT_REGION, show_default=True),
    click.option("--principals", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                 help="Principals file: the callers' identity (IAM) policies."),
]


def _common(fn):
    for option in reversed(COMMON):
        fn = option(fn)
    return fn


@policy.command()
@_common
@click.option("--principal", required=True, help="ARN of the caller.")
@click.option("--action", "actions", required=True, multiple=True, help="e.g. kms:Decrypt (repeatable).")
@click.option("--context", "context", multiple=True, help="Encryption context pair k=v (repeatable).")
@click.option("--via-service", default=None, help="kms:ViaService, e.g. s3.us-east-1.amazonaws.com.")
@click.option("--source-vpce", default=None, help="aws:SourceVpce.")
@click.option("--json", "as_json", is_flag=True)
def simulate(key: str, endpoint: str | None, data_dir: Path | None, region: str, principals: Path | None,
             principal: str, actions: tuple[str, ...], context: tuple[str, ...], via_service: str | None,
             source_vpce: str | None, as_json: bool) -> None:
    """Would PRINCIPAL be allowed ACTION on KEY? Exit status 0 when every action is allowed, 1 otherwise."""
    pairs = {}
    for item in context:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not k=v", param_hint="--context")
        k, v = item.split("=", 1)
        pairs[k] = v
    kms = _client(endpoint, data_dir, region)
    md, doc, grants, aliases = _key_view(kms, key)
    identity = _identity_policies(principals, principal)
    results = []
    for action in actions:
        d = _decide(md, doc, grants, aliases, principal, identity, action, pairs, via_service, source_vpce, region)
        results.append({"action": action, "allowed": d.allowed, "reason": d.reason, "decided_by": list(d.decided_by)})
    if as_json:
        click.echo(json.dumps({"key": md["Arn"], "principal": principal, "results": results}, indent=2))
    else:
        for r in results:
            verdict = click.style("Allowed", fg="green") if r["allowed"] else click.style("Denied", fg="red")
            click.echo(f"{r['action']}: {verdict} - {r['reason']}")
            for by in r["decided_by"]:
                click.echo(f"    {by}")
    sys.exit(0 if all(r["allowed"] for r in results) else 1)


@policy.command()
@_common
@click.option("--action", "actions", multiple=True, help="Actions to show (default: a standard set).")
def explain(key: str, endpoint: str | None, data_dir: Path | None, region: str, principals: Path | None,
            actions: tuple[str, ...]) -> None:
    """Who can do what with KEY: every principal of the principals file, of the key policy and of its grants."""
    from rich.console import Console
    from rich.table import Table

    kms = _client(endpoint, data_dir, region)
    md, doc, grants, aliases = _key_view(kms, key)
    who: dict[str, tuple[dict, ...]] = {}
    if principals is not None:
        from kms_iac.backend.principals import load_principals

        for entry in load_principals(principals).entries:
            who[entry.arn] = tuple(entry.policies)
    statements = doc.get("Statement")
    for st in statements if isinstance(statements, list) else [statements]:
        aws = (st.get("Principal") or {}).get("AWS") if isinstance(st.get("Principal"), dict) else None
        for arn in aws if isinstance(aws, list) else [aws] if aws else []:
            if isinstance(arn, str) and arn.startswith("arn:"):
                who.setdefault(arn, ())
    for g in grants:
        if g["GranteePrincipal"].startswith("arn:"):
            who.setdefault(g["GranteePrincipal"], ())
    actions = actions or EXPLAIN_ACTIONS
    table = Table(title=f"Who can do what with {md['Arn']}")
    table.add_column("principal")
    for a in actions:
        table.add_column(a.split(":", 1)[-1])
    for arn, identity in sorted(who.items()):
        row = []
        for action in actions:
            d = _decide(md, doc, grants, aliases, arn, identity, action, {}, None, None, region)
            row.append("[green]yes[/green]" if d.allowed else "[red]no[/red]")
        table.add_row(arn, *row)
    Console().print(table)
    Console().print("Without an encryption context or kms:ViaService; conditions on them show as denied. "
                    "Use `kms-iac policy simulate` for one request in full.")
