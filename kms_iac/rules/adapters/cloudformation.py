"""CloudFormation templates (JSON or YAML) as key and identity-policy views.

Turns ``AWS::KMS::Key`` and ``AWS::KMS::ReplicaKey`` resources (with the aliases that
point at them) into :class:`KeyView` and IAM policies (``AWS::IAM::Policy``,
``AWS::IAM::ManagedPolicy`` and the inline ``Policies`` of roles, users and groups)
into :class:`IdentityPolicyView`, so the rules judge a template before it is deployed.
Intrinsics are resolved by :mod:`cfn_intrinsics`; what cannot be resolved is unknown,
never guessed. The same functions serve ``kms-iac scan template`` and the checkov
checks (which call :func:`view_from_resource` per resource, concurrently: everything
here is a pure function of its arguments).

Properties CloudFormation defaults are given their defaults: no ``KeyPolicy`` is the
KMS default key policy, ``EnableKeyRotation`` false, ``PendingWindowInDays`` 30,
``Enabled`` true, ``KeySpec`` SYMMETRIC_DEFAULT, ``KeyUsage`` ENCRYPT_DECRYPT.

The key's account: ``config.account`` if set; else, when the key policy uses
``AWS::AccountId``, the placeholder account (the one ``AWS::AccountId`` resolves to);
else the account inferred from the key policy's principals (see :mod:`accounts`), so
a policy that hard-codes its own account is judged against that account. This is
decided per key policy rather than per template: a template that uses
``AWS::AccountId`` for, say, a bucket name but hard-codes the account in a key policy
is still judged against the hard-coded account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kms_iac.policy.document import PolicyError, parse_policy
from kms_iac.rules.adapters.accounts import most_frequent, principal_accounts
from kms_iac.rules.adapters.cfn_intrinsics import (
    Resolver, Unresolved, clean, describe, intrinsic, uses_account_id,
)
from kms_iac.rules.config import RulesConfig
from kms_iac.rules.view import PLACEHOLDER_ACCOUNT, SYMMETRIC, IdentityPolicyView, KeyView, View

__all__ = ["TemplateError", "load_template", "views_from_template", "view_from_resource", "is_cloudformation"]

KEY_TYPES = ("AWS::KMS::Key", "AWS::KMS::ReplicaKey")
IDENTITY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group")
UNRESOLVED_SPEC = "UNRESOLVED"  # a KeySpec/KeyUsage given by an intrinsic the template cannot resolve


class TemplateError(ValueError):
    """A template (or plan) cannot be read or is not shaped as one; the message names the file."""


def load_template(path: str | Path) -> dict:
    """The decoded template at ``path``: JSON, or YAML with short-form intrinsics (``!Sub``...).

    JSON is read with the standard library (fast, also for large Terraform plans); YAML
    with cfn-lint's decoder, which turns ``!Ref``/``!Sub``/``!GetAtt``... into their long
    forms and reports the line of a syntax error.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise TemplateError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise TemplateError(f"{p}: is a directory, not a template") from None
    except OSError as e:
        raise TemplateError(f"{p}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TemplateError(f"{p}: not UTF-8 text") from None
    if not text.strip():
        raise TemplateError(f"{p}: empty file")
    doc: Any = None
    if text.lstrip().startswith(("{", "[")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            if p.suffix.lower() == ".json":
                raise TemplateError(f"{p}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
            doc = _decode_yaml(text, p)  # YAML in flow style also starts with "{"
        except RecursionError:
            raise TemplateError(f"{p}: not valid JSON: nested too deeply") from None
    else:
        doc = _decode_yaml(text, p)
    if not isinstance(doc, dict):
        raise TemplateError(f"{p}: the top level must be a mapping, not {type(doc).__name__}")
    return doc


def _decode_yaml(text: str, p: Path) -> Any:
    from cfnlint.decode import decode_str  # imported on first YAML file: cfn-lint takes ~1 s to import

    try:
        doc, matches = decode_str(text)
    except RecursionError:
        raise TemplateError(f"{p}: not valid YAML: nested too deeply") from None
    if matches:
        m = matches[0]
        line = f" at line {m.linenumber}" if getattr(m, "linenumber", None) else ""
        raise TemplateError(f"{p}: not valid YAML{line}: {m.message}")
    return doc


def is_cloudformation(doc: Any) -> bool:
    """A CloudFormation template: has AWSTemplateFormatVersion, or Resources of AWS:: types."""
    if not isinstance(doc, dict):
        return False
    if "AWSTemplateFormatVersion" in doc:
        return True
    resources = doc.get("Resources")
    return isinstance(resources, dict) and any(
        isinstance(r, dict) and str(r.get("Type", "")).startswith("AWS::") for r in resources.values())


@dataclass
class _TemplateIndex:
    """What every resource's view needs from the whole template, computed once per template."""

    doc: dict
    resources: dict
    uses_account_id: bool
    aliases: dict[str, list[str]] = field(default_factory=dict)   # key logical id -> alias names
    template_account: str | None = None                         # inferred over all key policies


def _index(doc: dict, file: str | None, config) -> _TemplateIndex:
    resources = doc.get("Resources", {})
    if not isinstance(resources, dict):
        raise TemplateError(f"{file or '<template>'}: Resources must be a mapping of logical ids to resources")
    idx = _TemplateIndex(doc, resources, uses_account_id(doc))
    probe = Resolver(doc, config.account or PLACEHOLDER_ACCOUNT)
    seen: list[str] = []
    for lid, res in resources.items():
        if not isinstance(res, dict):
            continue
        props = _props(res)
        if res.get("Type") == "AWS::KMS::Alias":
            target = _referenced_key(props.get("TargetKeyId"), resources)
            if target is not None:
                name = probe.resolve_or(props.get("AliasName"), None)
                idx.aliases.setdefault(target, []).append(
                    name if isinstance(name, str) else describe(props.get("AliasName")))
        elif res.get("Type") in KEY_TYPES and not config.account and not uses_account_id(props.get("KeyPolicy")):
            seen += [a for a in principal_accounts(_policy(probe, props.get("KeyPolicy"))[0]) if a != PLACEHOLDER_ACCOUNT]
    idx.template_account = most_frequent(seen)
    return idx


def _props(resource: dict) -> dict:
    props = resource.get("Properties")
    return clean(props) if isinstance(props, dict) else {}


def _referenced_key(value: Any, resources: dict) -> str | None:
    """The logical id of the key a TargetKeyId/PrimaryKeyArn refers to (Ref, GetAtt or a Sub of one)."""
    call = intrinsic(value)
    if call is None:
        return None
    name, arg = call
    target = None
    if name == "Ref" and isinstance(arg, str):
        target = arg
    elif name == "Fn::GetAtt":
        if isinstance(arg, str):
            target = arg.split(".", 1)[0]
        elif isinstance(arg, list) and arg:
            target = arg[0]
    elif name == "Fn::Sub":
        text = arg[0] if isinstance(arg, list) and arg else arg
        if isinstance(text, str) and text.startswith("${") and text.endswith("}") and text.count("${") == 1:
            target = text[2:-1].split(".", 1)[0]
    res = resources.get(target) if isinstance(target, str) else None
    return target if isinstance(res, dict) and res.get("Type") in KEY_TYPES else None


def _policy(resolver: Resolver, raw: Any) -> tuple[dict | None, bool]:
    """(parsed policy, unresolved?) of a KeyPolicy/PolicyDocument property; (None, False) when absent."""
    if raw is None:
        return None, False
    try:
        resolved = resolver.resolve(raw)
        return parse_policy(resolved), False
    except (Unresolved, PolicyError):
        return None, True


def _account_for(idx: _TemplateIndex, config, policy_raw: Any) -> str:
    if config.account:
        return config.account
    if uses_account_id(policy_raw):
        return PLACEHOLDER_ACCOUNT
    own = [a for a in principal_accounts(_policy(Resolver(idx.doc, PLACEHOLDER_ACCOUNT), policy_raw)[0])
           if a != PLACEHOLDER_ACCOUNT]
    return most_frequent(own) or idx.template_account or PLACEHOLDER_ACCOUNT


def _scalar(resolver: Resolver, props: dict, name: str, default: Any) -> Any:
    """A property's resolved value, its default when absent, None when unresolvable."""
    if name not in props:
        return default
    return resolver.resolve_or(props[name], None)


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _tags(resolver: Resolver, raw: Any) -> dict[str, str]:
    """CloudFormation's ``[{Key, Value}]`` as a dict; an unresolvable value keeps its tag."""
    out: dict[str, str] = {}
    items = resolver.resolve_or(raw, None)
    if not isinstance(items, list):
        items = raw if isinstance(raw, list) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        item = clean(item)
        key = resolver.resolve_or(item.get("Key"), None)
        if not isinstance(key, str):
            continue
        value = resolver.resolve_or(item.get("Value"), None)
        out[key] = value if isinstance(value, str) else describe(item.get("Value"))
    return out


def _key_view(lid: str, res: dict, idx: _TemplateIndex, file: str | None, config) -> KeyView:
    props = _props(res)
    replica = res.get("Type") == "AWS::KMS::ReplicaKey"
    account = _account_for(idx, config, props.get("KeyPolicy"))
    r = Resolver(idx.doc, account)
    policy, unresolved = _policy(r, props.get("KeyPolicy"))
    view = KeyView(
        resource=lid, source="cloudformation", file=file, account=account,
        policy=policy, policy_unresolved=unresolved,
        enabled=_bool(_scalar(r, props, "Enabled", True)),
        deletion_window_days=_int(_scalar(r, props, "PendingWindowInDays", 30)),
        tags=_tags(r, props.get("Tags", [])),
        aliases=list(idx.aliases.get(lid, [])),
        bypass_lockout=_bool(_scalar(r, props, "BypassPolicyLockoutSafetyCheck", False)),
    )
    if replica:
        view.multi_region = True
        primary_id = _referenced_key(props.get("PrimaryKeyArn"), idx.resources)
        primary = idx.resources.get(primary_id) if primary_id else None
        if isinstance(primary, dict) and primary.get("Type") == "AWS::KMS::Key":
            _key_material(view, _props(primary), r)  # a replica shares its primary's spec and rotation
        else:
            view.rotation_enabled = None  # the primary (elsewhere) decides rotation
    else:
        _key_material(view, props, r)
        view.multi_region = bool(_bool(_scalar(r, props, "MultiRegion", False)))
    return view


def _key_material(view: KeyView, props: dict, r: Resolver) -> None:
    """The properties a replica shares with its primary: spec, usage, origin, rotation."""
    spec = _scalar(r, props, "KeySpec", SYMMETRIC)
    usage = _scalar(r, props, "KeyUsage", "ENCRYPT_DECRYPT")
    origin = _scalar(r, props, "Origin", "AWS_KMS")
    view.key_spec = spec if isinstance(spec, str) else UNRESOLVED_SPEC
    view.key_usage = usage if isinstance(usage, str) else UNRESOLVED_SPEC
    view.origin = origin if isinstance(origin, str) else UNRESOLVED_SPEC
    view.rotation_enabled = _bool(_scalar(r, props, "EnableKeyRotation", False))
    view.rotation_period_days = _int(_scalar(r, props, "RotationPeriodInDays", None))


def _identity_view(lid: str, res: dict, idx: _TemplateIndex, file: str | None, config) -> IdentityPolicyView | None:
    props = _props(res)
    account = config.account or (PLACEHOLDER_ACCOUNT if idx.uses_account_id else idx.template_account) \
        or PLACEHOLDER_ACCOUNT
    r = Resolver(idx.doc, account)
    if res.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        if "PolicyDocument" not in props:
            return None
        doc, unresolved = _policy(r, props["PolicyDocument"])
        return IdentityPolicyView(lid, "cloudformation", doc, file=file, account=account, policy_unresolved=unresolved)
    inline = props.get("Policies")
    if inline is None:
        return None
    items = r.resolve_or(inline, None)
    if not isinstance(items, list):
        return IdentityPolicyView(lid, "cloudformation", None, file=file, account=account, policy_unresolved=True)
    merged: list = []
    for item in items:
        doc, unresolved = _policy(r, item.get("PolicyDocument") if isinstance(item, dict) else None)
        if unresolved or (isinstance(item, dict) and "PolicyDocument" in item and doc is None):
            return IdentityPolicyView(lid, "cloudformation", None, file=file, account=account, policy_unresolved=True)
        stmts = (doc or {}).get("Statement", [])
        merged += stmts if isinstance(stmts, list) else [stmts]
    if not merged:
        return None
    # A principal's inline policies act together: one document with all their statements.
    return IdentityPolicyView(lid, "cloudformation", {"Version": "2012-10-17", "Statement": merged},
                              file=file, account=account)


def _view(lid: str, res: Any, idx: _TemplateIndex, file: str | None, config) -> View | None:
    if not isinstance(res, dict):
        return None
    rtype = res.get("Type")
    if rtype in KEY_TYPES:
        return _key_view(lid, res, idx, file, config)
    if rtype in IDENTITY_TYPES:
        return _identity_view(lid, res, idx, file, config)
    return None


def views_from_template(doc: dict, file: str | None, config) -> list[View]:
    """Every key and identity-policy view of a decoded template, in template order."""
    if not isinstance(doc, dict):
        raise TemplateError(f"{file or '<template>'}: a template must be a mapping")
    config = config or RulesConfig()
    idx = _index(doc, file, config)
    return [v for lid, res in idx.resources.items() if (v := _view(str(lid), res, idx, file, config)) is not None]


def view_from_resource(logical_id: str, resource: dict, doc: dict, file: str | None, config) -> View | None:
    """The view of one resource of ``doc`` (None for types that are neither keys nor identity policies)."""
    if not isinstance(resource, dict) or resource.get("Type") not in KEY_TYPES + IDENTITY_TYPES:
        return None
    config = config or RulesConfig()
    return _view(logical_id, resource, _index(doc if isinstance(doc, dict) else {}, file, config), file, config)
