"""``kms-iac policy simulate|explain``: who may do what with a key, decided by the same
evaluator the backend enforces with.

Both read the key (DescribeKey, GetKeyPolicy, ListGrants, ListAliases) from the embedded
backend's data dir, or from ``--endpoint`` through boto3 with the standard credential chain;
every input is checked before the data dir is opened or the endpoint called.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from kms_iac.backend.defaults import DEFAULT_REGION, default_data_dir
from kms_iac.cli.errors import EXIT_NEGATIVE, EXIT_OK, BadInput, DataDirType, NetworkError, region_name

EXPLAIN_ACTIONS = (
    "kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:CreateGrant", "kms:DescribeKey",
    "kms:PutKeyPolicy", "kms:DisableKey", "kms:ScheduleKeyDeletion",
)
# Sent when no credentials are configured: a server without --principals accepts any signed request.
PLACEHOLDER_CREDENTIALS = {"aws_access_key_id": "AKIAKMSIACPOLICYSIM1", "aws_secret_access_key": "kms-iac-policy"}
READS = "DescribeKey, GetKeyPolicy, ListGrants and ListAliases"
# aws:PrincipalType of each kind of caller ARN (principals.principal_type's CloudTrail names)
_PRINCIPAL_TYPE = {"Root": "Account", "IAMUser": "User", "AssumedRole": "AssumedRole", "FederatedUser": "FederatedUser"}


class KeySource:
    """Where the key is read from: the embedded backend of a data dir, or an endpoint."""

    def __init__(self, endpoint: str | None, data_dir: Path | None, region: str) -> None:
        self.endpoint = endpoint
        self.region = region
        self.data_dir = data_dir or default_data_dir()
        self.where = endpoint or f"the data dir {self.data_dir}"
        self._backend = None

    def client(self):
        if self.endpoint:
            import boto3
            import botocore.config
            from botocore.exceptions import BotoCoreError

            try:
                session = boto3.session.Session()
                credentials = {} if session.get_credentials() is not None else PLACEHOLDER_CREDENTIALS
            except BotoCoreError as exc:  # a profile that does not exist, a broken config file
                raise BadInput(f"AWS configuration: {exc}; fix AWS_PROFILE or ~/.aws/config") from None
            config = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 2},
                                            connect_timeout=5, read_timeout=60)
            return session.client("kms", endpoint_url=self.endpoint, region_name=self.region, config=config,
                                  **credentials)
        from kms_iac.backend.core import Backend
        from kms_iac.backend.embedded import embedded_client

        self._backend = Backend(self.data_dir, region=self.region, create=False)
        return embedded_client(backend=self._backend, region=self.region)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def read_key(self, key: str) -> tuple[dict, dict, list[dict], list[str]]:
        """(metadata, policy, grants, aliases) of ``key``; one-line errors for every way it can fail."""
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        from kms_iac.rules.adapters.live import AUTH_ERRORS

        kms = self.client()
        try:
            md = kms.describe_key(KeyId=key)["KeyMetadata"]
            policy = json.loads(kms.get_key_policy(KeyId=md["KeyId"], PolicyName="default")["Policy"])
            grants = [g for page in kms.get_paginator("list_grants").paginate(KeyId=md["KeyId"]) for g in page["Grants"]]
            aliases = [a["AliasName"] for page in kms.get_paginator("list_aliases").paginate(KeyId=md["KeyId"])
                       for a in page["Aliases"]]
        except ParamValidationError as exc:
            raise BadInput(f"--key {key!r}: {' '.join(str(exc).split())}; give a key id, key ARN, alias or alias ARN") \
                from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", "").rstrip(".")
            if code in ("NotFoundException", "ValidationException"):
                raise BadInput(f"--key {key!r}: no such key in {self.where}, region {self.region} ({message}); "
                               "check the key id, ARN or alias and --region") from None
            if code in AUTH_ERRORS:
                raise NetworkError(f"{self.where} rejected the credentials ({code}: {message}); set AWS_ACCESS_KEY_ID "
                                   "and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to an access key it accepts (against "
                                   "`kms-iac local serve --principals FILE`: one from FILE)") from None
            raise NetworkError(f"{self.where} refused to show {key!r} ({code}: {message}); use credentials allowed "
                               f"{READS} on the key") from None
        except BotoCoreError as exc:
            raise NetworkError(f"cannot use {self.where}: {exc}; check that it is running and --endpoint is right") \
                from None
        return md, policy, grants, aliases


def _identity_policies(principals: Path | None, arn: str) -> tuple[dict, ...]:
    if principals is None:
        return ()
    from kms_iac.backend.principals import load_principals

    entry = load_principals(principals).by_arn(arn)
    return tuple(entry.policies) if entry is not None else ()


def check_principal(arn: str) -> str:
    """``arn`` if it names a caller; BadInput saying which forms are accepted otherwise."""
    from kms_iac.backend.principals import ARN_FORMS, principal_type

    if principal_type(arn.strip()) is None:
        raise BadInput(f"--principal {arn!r} is not a principal ARN; use one of {', '.join(ARN_FORMS)} "
                       "(ACCOUNT is 12 digits)")
    return arn.strip()


def check_action(value: str) -> str:
    """The KMS action ``value`` names (any case), spelled as AWS does; BadInput with the closest
    valid action otherwise."""
    import difflib

    from kms_iac.backend.model import iam_actions

    by_lower = {a.lower(): a for a in iam_actions()}
    text = value.strip()
    if text.lower() in by_lower:
        return by_lower[text.lower()]
    if text.lower() in ("kms:reencrypt", "reencrypt"):
        raise BadInput(f"--action {value!r}: ReEncrypt is authorized as two actions; simulate kms:ReEncryptFrom "
                       "(the source key) or kms:ReEncryptTo (the destination key)")
    if any(c in text for c in "*?"):
        raise BadInput(f"--action {value!r} is a pattern; a request is one action: give one, e.g. kms:Decrypt")
    candidate = (text if ":" in text else f"kms:{text}").lower()
    close = difflib.get_close_matches(candidate, list(by_lower), n=1, cutoff=0.6)
    hint = f"did you mean {by_lower[close[0]]}?" if close else "KMS actions are kms:<Operation>, e.g. kms:Decrypt"
    raise BadInput(f"--action {value!r} is not a KMS action; {hint}")


def _complete_action(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of --action: the KMS actions starting with what was typed (any case)."""
    from kms_iac.backend.model import iam_actions

    typed = incomplete.lower()
    return [a for a in iam_actions() if a.lower().startswith(typed) or a[4:].lower().startswith(typed)]


def _decide(md: dict, policy: dict, grants: list[dict], aliases: list[str], principal_arn: str,
            identity: tuple[dict, ...], action: str, context: dict[str, str], via_service: str | None,
            source_vpce: str | None, region: str):
    from kms_iac.backend.authorization import condition_keys, grant_infos
    from kms_iac.backend.principals import principal_type
    from kms_iac.policy.evaluator import Principal, Request, evaluate

    account = principal_arn.split(":")[4]
    facts = {"kms:KeySpec": md.get("KeySpec"), "kms:KeyUsage": md.get("KeyUsage"), "kms:KeyOrigin": md.get("Origin"),
             "kms:MultiRegion": bool(md.get("MultiRegion")), "kms:ResourceAliases": aliases}
    operation = action.split(":", 1)[-1]
    params = {"EncryptionContext": context} if context else {}
    keys = condition_keys(principal_arn=principal_arn, principal_account=account,
                          principal_type=_PRINCIPAL_TYPE.get(principal_type(principal_arn) or "", "AssumedRole"),
                          region=region, now=time.time(), operation=operation, params=params, key_facts=facts,
                          via_service=via_service, source_vpce=source_vpce)
    request = Request(action=action, resource=md["Arn"], context=keys, encryption_context=context)
    return evaluate(policy, Principal(principal_arn, account, identity), request, grant_infos(grants))


@click.group()
def policy() -> None:
    """Key policy simulation, with the backend's own evaluator."""


def _endpoint(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL (e.g. http://127.0.0.1:4599)")
    return value


COMMON = [
    click.option("--key", required=True, help="Key id, ARN, alias or alias ARN."),
    click.option("--endpoint", default=None, callback=_endpoint,
                 help="KMS endpoint URL, read with the standard AWS credential chain "
                      "(default: the embedded local backend of --data-dir)."),
    click.option("--data-dir", type=DataDirType(), default=None,
                 help="The local backend's data dir (default: $KMS_IAC_DATA_DIR or ./.kms-iac); it must exist."),
    click.option("--region", default=DEFAULT_REGION, show_default=True, callback=region_name),
    click.option("--principals", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                 help="Principals file: the callers' identity (IAM) policies (not the credentials used to read the key)."),
]


def _common(fn):
    for option in reversed(COMMON):
        fn = option(fn)
    return fn


@policy.command()
@_common
@click.option("--principal", required=True,
              help="ARN of the caller: arn:aws:iam::ACCOUNT:root, :user/NAME, :role/NAME, "
                   "arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION or :federated-user/NAME.")
@click.option("--action", "actions", required=True, multiple=True, shell_complete=_complete_action,
              help="A KMS action, e.g. kms:Decrypt (repeatable).")
@click.option("--context", "context", multiple=True, help="Encryption context pair k=v (repeatable).")
@click.option("--via-service", default=None, help="kms:ViaService, e.g. s3.us-east-1.amazonaws.com.")
@click.option("--source-vpce", default=None, help="aws:SourceVpce.")
@click.option("--json", "as_json", is_flag=True)
def simulate(key: str, endpoint: str | None, data_dir: Path | None, region: str, principals: Path | None,
             principal: str, actions: tuple[str, ...], context: tuple[str, ...], via_service: str | None,
             source_vpce: str | None, as_json: bool) -> None:
    """Would PRINCIPAL be allowed ACTION on KEY?

    The key's policy, grants and aliases are read from the data dir (no credentials involved),
    or from --endpoint through boto3 with the standard credential chain (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...). Against `kms-iac local serve --principals FILE`
    those must be an access key from FILE allowed DescribeKey, GetKeyPolicy, ListGrants and
    ListAliases on the key (e.g. the account root's): they need not be PRINCIPAL's, who is only
    simulated. With no credentials configured a placeholder key is sent, which only a server
    without --principals accepts. --principals here adds PRINCIPAL's identity policies to the
    decision.

    Exit status: 0 every action allowed, 1 one denied, 2 bad input (an unknown key, action or
    principal), 3 the data dir cannot be used, 4 the endpoint cannot be reached or refused the
    credentials.
    """
    principal = check_principal(principal)
    actions = tuple(check_action(a) for a in actions)
    pairs = {}
    for item in context:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not k=v", param_hint="--context")
        k, v = item.split("=", 1)
        pairs[k] = v
    identity = _identity_policies(principals, principal)
    source = KeySource(endpoint, data_dir, region)
    try:
        md, doc, grants, aliases = source.read_key(key)
    finally:
        source.close()
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
    sys.exit(EXIT_OK if all(r["allowed"] for r in results) else EXIT_NEGATIVE)


EXPLAIN_NOTE = ("Without an encryption context or kms:ViaService; conditions on them show as denied. "
                "Use `kms-iac policy simulate` for one request in full.")


@policy.command()
@_common
@click.option("--action", "actions", multiple=True, shell_complete=_complete_action,
              help="Actions to show (default: a standard set).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"key", "actions", "principals": [{"principal", "allowed": {action: bool}}], "note"} as JSON.')
def explain(key: str, endpoint: str | None, data_dir: Path | None, region: str, principals: Path | None,
            actions: tuple[str, ...], as_json: bool) -> None:
    """Who can do what with KEY: every principal of the principals file, of the key policy and of its grants.

    The key is read as `kms-iac policy simulate` reads it (see its --help for the credentials).
    Exit status: 0 shown, 2 bad input, 3 the data dir cannot be used, 4 the endpoint cannot be
    reached or refused the credentials.
    """
    actions = tuple(check_action(a) for a in actions) or EXPLAIN_ACTIONS
    who: dict[str, tuple[dict, ...]] = {}
    if principals is not None:
        from kms_iac.backend.principals import load_principals

        for entry in load_principals(principals).entries:
            who[entry.arn] = tuple(entry.policies)
    source = KeySource(endpoint, data_dir, region)
    try:
        md, doc, grants, aliases = source.read_key(key)
    finally:
        source.close()
    statements = doc.get("Statement")
    for st in statements if isinstance(statements, list) else [statements]:
        aws = (st.get("Principal") or {}).get("AWS") if isinstance(st.get("Principal"), dict) else None
        for arn in aws if isinstance(aws, list) else [aws] if aws else []:
            if isinstance(arn, str) and arn.startswith("arn:"):
                who.setdefault(arn, ())
    for g in grants:
        if g["GranteePrincipal"].startswith("arn:"):
            who.setdefault(g["GranteePrincipal"], ())
    rows: list[dict[str, Any]] = []
    for arn, identity in sorted(who.items()):
        allowed = {a: _decide(md, doc, grants, aliases, arn, identity, a, {}, None, None, region).allowed for a in actions}
        rows.append({"principal": arn, "allowed": allowed})
    if as_json:
        click.echo(json.dumps({"key": md["Arn"], "actions": list(actions), "principals": rows, "note": EXPLAIN_NOTE},
                              indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Who can do what with {md['Arn']}")
    table.add_column("principal")
    for a in actions:
        table.add_column(a.split(":", 1)[-1])
    for row in rows:
        table.add_row(row["principal"], *("[green]yes[/green]" if row["allowed"][a] else "[red]no[/red]" for a in actions))
    Console().print(table)
    Console().print(EXPLAIN_NOTE)
