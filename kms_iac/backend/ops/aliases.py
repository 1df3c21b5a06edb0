"""Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases."""

from __future__ import annotations

from kms_iac.backend.core import Call
from kms_iac.backend.errors import (
    AlreadyExistsException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from kms_iac.backend.identifiers import AWS_ALIAS_PREFIX, alias_arn, parse_key_ref
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.pagination import paginate
from kms_iac.backend.store import AliasRecord, KeyRecord


def _check_name(call: Call, name: str) -> None:
    if not name.startswith("alias/") or name == "alias/":
        raise ValidationException("Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html")
    if name.startswith(AWS_ALIAS_PREFIX):
        raise NotAuthorizedException(None)  # AWS answers reserved names with a bare NotAuthorizedException


def _check_new_name(call: Call, name: str) -> None:
    """A name CreateAlias or UpdateAlias may give: the service model's pattern
    (``^[a-zA-Z0-9:/_-]+$``, checked with every request) admits ``:``, but AWS refuses it in an
    alias name with its own message, so names keep to letters, digits, ``/``, ``_`` and ``-``."""
    _check_name(call, name)
    if ":" in name:
        raise ValidationException(f"{name} contains invalid characters for an alias")


def _existing_alias(call: Call, name: str) -> AliasRecord:
    alias = call.store.get_alias(call.ctx.account, call.ctx.region, name)
    if alias is None:
        raise NotFoundException(f"Alias {alias_arn(call.ctx.region, call.ctx.account, name)} is not found.")
    return alias


def _target(call: Call, raw: str) -> KeyRecord:
    """The key an alias will name: a key id or key ARN, never another alias."""
    ref = parse_key_ref(raw)
    if ref is not None and ref.kind == "alias":
        raise ValidationException("Aliases must refer to keys. Not aliases")
    key = call.key(raw, allow_alias=False)
    if key.key_manager == "AWS":
        raise ValidationException(f"Cannot point an alias at the AWS managed key {key.arn}")
    if key.region != call.ctx.region or key.account != call.ctx.account:
        raise NotFoundException(f"Key '{key.arn}' does not exist")
    return key


@operation("CreateAlias", mutates=True)
def create_alias(call: Call, params: dict) -> dict:
    name = params["AliasName"]
    _check_new_name(call, name)
    key = _target(call, params["TargetKeyId"])
    if call.store.get_alias(call.ctx.account, call.ctx.region, name) is not None:
        raise AlreadyExistsException(f"An alias with the name {alias_arn(call.ctx.region, call.ctx.account, name)} already exists")
    call.conn.execute(
        "INSERT INTO aliases (account, region, name, key_id, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
        (call.ctx.account, call.ctx.region, name, key.key_id, call.now, call.now),
    )
    return {}


@operation("UpdateAlias", mutates=True)
def update_alias(call: Call, params: dict) -> dict:
    name = params["AliasName"]
    _check_new_name(call, name)
    alias = _existing_alias(call, name)
    key = _target(call, params["TargetKeyId"])
    current = call.store.get_key(alias.key_id, call.ctx.region)
    if current is not None and (current.key_usage != key.key_usage or current.key_spec != key.key_spec):
        raise ValidationException(
            f"{key.arn} has key usage {key.key_usage} and key spec {key.key_spec}, but the alias currently points to "
            f"a key with key usage {current.key_usage} and key spec {current.key_spec}."
        )
    call.conn.execute(
        "UPDATE aliases SET key_id=?, updated=? WHERE account=? AND region=? AND name=?",
        (key.key_id, call.now, call.ctx.account, call.ctx.region, name),
    )
    return {}


@operation("DeleteAlias", mutates=True)
def delete_alias(call: Call, params: dict) -> dict:
    name = params["AliasName"]
    _check_name(call, name)
    alias = _existing_alias(call, name)
    key = call.store.get_key(alias.key_id, alias.region)
    if key is not None:
        call.admit(key, "DeleteAlias")
    call.conn.execute("DELETE FROM aliases WHERE account=? AND region=? AND name=?", (call.ctx.account, call.ctx.region, name))
    return {}


def _predefined(call: Call, taken: set[str]) -> list[AliasRecord]:
    """The AWS managed aliases AWS lists before their service has created the key: name and ARN
    only, no TargetKeyId ("predefined aliases that AWS has created but has not yet associated
    with a KMS key", developer guide, ListAliases). Naming one creates its key (Call.resolve)."""
    from kms_iac.backend.ops.keys import AWS_MANAGED_SERVICES

    names = (AWS_ALIAS_PREFIX + service for service in AWS_MANAGED_SERVICES)
    return [AliasRecord(call.ctx.account, call.ctx.region, n, "", 0.0, 0.0) for n in names if n not in taken]


@operation("ListAliases")
def list_aliases(call: Call, params: dict) -> dict:
    key_id = None
    if params.get("KeyId") is not None:
        key_id = call.key(params["KeyId"], allow_alias=False).key_id
    aliases = call.store.list_aliases(call.ctx.account, call.ctx.region, key_id)
    if key_id is None:
        aliases += _predefined(call, {a.name for a in aliases})
    page, extra = paginate(aliases, params, sort_key=lambda a: a.name, default_limit=50)
    return {"Aliases": [_entry(a) for a in page], **extra}


def _entry(a: AliasRecord) -> dict:
    if not a.key_id:  # predefined, not yet associated with a key
        return {"AliasName": a.name, "AliasArn": a.arn}
    return {"AliasName": a.name, "AliasArn": a.arn, "TargetKeyId": a.key_id, "CreationDate": a.created,
            "LastUpdatedDate": a.updated}
