"""Terraform plans (``terraform show -json PLANFILE``) as key and identity-policy views.

A plan says what the keys will be after ``apply``: ``planned_values`` holds the known
attribute values (in the root module and nested ``child_modules``), ``resource_changes``
the actions (a key whose change includes ``delete`` is a key this change destroys:
KMS003 fails with "would be deleted by this change") and ``after_unknown`` the
attributes known only after apply, and ``configuration`` the expressions, whose
``references`` link an ``aws_kms_alias``, ``aws_kms_key_policy`` or ``aws_kms_grant``
to its key when the key's id is still unknown. An unknown value is unknown, never a
crash and never a guess: an unknown policy makes the policy rules NOT_APPLICABLE.

Defaults are the provider's and AWS's: no ``policy`` in the configuration is the KMS
default key policy, no ``deletion_window_in_days`` is 30 days, ``enable_key_rotation``
false, ``is_enabled`` true. The key's account: ``config.account``; else the key's ARN
(an existing key); else ``data.aws_caller_identity`` read during the plan; else the
account inferred from the key policy's principals (see :mod:`accounts`).

:func:`view_from_values` also serves checkov's Terraform checks, whose values come from
HCL (scalars wrapped in one-element lists, absent attributes simply not set).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from kms_iac.policy.document import PolicyError, parse_policy
from kms_iac.rules.adapters.accounts import most_frequent, principal_accounts
from kms_iac.rules.adapters.cloudformation import TemplateError
from kms_iac.rules.config import RulesConfig
from kms_iac.rules.view import PLACEHOLDER_ACCOUNT, SYMMETRIC, IdentityPolicyView, KeyView, View
from kms_iac.rules.adapters.values import timestamp

__all__ = ["PlanError", "views_from_plan", "view_from_values", "is_terraform_plan", "KEY_TYPES", "IDENTITY_TYPES"]

KEY_TYPES = ("aws_kms_key", "aws_kms_external_key", "aws_kms_replica_key", "aws_kms_replica_external_key")
IDENTITY_TYPES = ("aws_iam_policy", "aws_iam_role_policy", "aws_iam_user_policy", "aws_iam_group_policy", "aws_iam_role")
# (linking resource type, its attribute naming the key)
LINKS = {"aws_kms_alias": "target_key_id", "aws_kms_key_policy": "key_id", "aws_kms_grant": "key_id"}
UNRESOLVED_SPEC = "UNRESOLVED"
DEFAULT_DELETION_WINDOW = 30

_INDEX = re.compile(r'\[(?:"(?:[^"\\]|\\.)*"|[^\]]*)\]')
_KEY_REF = re.compile(r"^(aws_kms_(?:key|external_key|replica_key|replica_external_key))\.([A-Za-z_][\w-]*)(\[[^\]]*\])?")
_ARN = re.compile(r"^arn:[^:]+:kms:([^:]*):(\d{12}):key/(.+)$")


class PlanError(TemplateError):
    """A Terraform plan that cannot be read as one; the message names the file."""


def is_terraform_plan(doc: Any) -> bool:
    """The JSON of ``terraform show -json PLANFILE``: has planned_values or resource_changes."""
    return isinstance(doc, dict) and ("planned_values" in doc or "resource_changes" in doc)


# -- attribute access -------------------------------------------------------------------

UNKNOWN = object()  # a value known only after apply


@dataclass
class _Attrs:
    """A resource's attribute values, and which of them are unknown until apply."""

    values: Mapping
    unknown: Mapping = field(default_factory=dict)   # after_unknown
    absent_is_unknown: bool = False                  # plan output omits unknown values

    def get(self, name: str, default: Any = None) -> Any:
        """The value (unwrapped from checkov's one-element lists), ``default`` when null or
        not set, :data:`UNKNOWN` when known only after apply."""
        if self.unknown.get(name) is True or (name not in self.values and self.absent_is_unknown):
            return UNKNOWN
        value = _unwrap(self.values.get(name))
        return default if value is None else value


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _unwrap(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], list):
        return value[0]
    return value


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is UNKNOWN or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _str(value: Any, default: str) -> str:
    if value is UNKNOWN:
        return UNRESOLVED_SPEC
    return value if isinstance(value, str) and value else default


def _policy(value: Any, configured: bool | None = True) -> tuple[dict | None, bool]:
    """(parsed policy, unresolved?) of a policy attribute value.

    Unknown with no ``policy`` in the configuration (``configured`` False) is AWS's
    default key policy, computed at apply; unknown otherwise is unresolved.
    """
    if value is UNKNOWN:
        return (None, False) if configured is False else (None, True)
    if value is None or value == "":
        return None, False
    try:
        return parse_policy(value), False
    except PolicyError:  # e.g. HCL's "${data.aws_iam_policy_document.x.json}" seen by checkov
        return None, True


def _tags(attrs: _Attrs) -> dict[str, str]:
    for name in ("tags_all", "tags"):
        value = attrs.get(name)
        if isinstance(value, dict):
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
    return {}


def _grant(values: Mapping) -> dict:
    """An ``aws_kms_grant``'s values in the shape of KMS ListGrants (what live views hold)."""
    if "grantee_principal" not in values:
        return dict(values)
    a = _Attrs(values)
    grant = {"Name": a.get("name"), "GranteePrincipal": a.get("grantee_principal"),
             "RetiringPrincipal": a.get("retiring_principal"), "Operations": values.get("operations") or []}
    constraints = _unwrap(values.get("constraints"))
    if isinstance(constraints, dict):
        grant["Constraints"] = {k: v for k, v in (
            ("EncryptionContextEquals", constraints.get("encryption_context_equals")),
            ("EncryptionContextSubset", constraints.get("encryption_context_subset"))) if v}
    return {k: v for k, v in grant.items() if v is not None and v is not UNKNOWN}


# -- one resource -----------------------------------------------------------------------

def _key_view(rtype: str, address: str, attrs: _Attrs, file: str | None, config, *,
              aliases: Iterable[str] = (), policy: tuple[dict | None, bool] | None = None,
              grants: Iterable[Mapping] = (), pending_deletion: bool = False, account: str | None = None,
              region: str | None = None, primary: _Attrs | None = None, fallback_account: str | None = None,
              policy_configured: bool | None = True) -> KeyView:
    doc, unresolved = policy if policy is not None else _policy(attrs.get("policy"), policy_configured)
    arn = attrs.get("arn")
    arn = arn if isinstance(arn, str) and _ARN.match(arn) else None
    m = _ARN.match(arn) if arn else None
    account = (config.account or (m.group(2) if m else None) or account
               or most_frequent(principal_accounts(doc)) or fallback_account or PLACEHOLDER_ACCOUNT)
    external = rtype in ("aws_kms_external_key", "aws_kms_replica_external_key")
    replica = rtype in ("aws_kms_replica_key", "aws_kms_replica_external_key")
    enabled_attr = "is_enabled" if rtype == "aws_kms_key" else "enabled"
    enabled = attrs.get(enabled_attr, True)
    window = attrs.get("deletion_window_in_days", DEFAULT_DELETION_WINDOW)
    view = KeyView(
        resource=address, source="terraform", file=file, account=account,
        region=(m.group(1) if m else None) or region, arn=arn,
        policy=doc, policy_unresolved=unresolved,
        enabled=None if enabled is UNKNOWN else _bool(enabled),
        deletion_window_days=_int(window),
        pending_deletion=pending_deletion,
        multi_region=replica or bool(_bool(attrs.get("multi_region", False))),
        aliases=list(aliases), tags=_tags(attrs), grants=[_grant(g) for g in grants],
        bypass_lockout=_bool(attrs.get("bypass_policy_lockout_safety_check", False)),
    )
    material = primary if (replica and primary is not None) else (None if replica else attrs)
    if external:
        view.origin = "EXTERNAL"
        valid_to = timestamp(attrs.get("valid_to"))
        view.valid_to = valid_to
        view.material_expired = bool(valid_to and valid_to <= dt.datetime.now(dt.timezone.utc))
        view.rotation_enabled = False
        if material is not None:  # a replica without its primary in the plan: imported material is symmetric
            view.key_spec = _str(material.get("key_spec"), SYMMETRIC)
            view.key_usage = _str(material.get("key_usage"), "ENCRYPT_DECRYPT")
    elif material is not None:
        view.key_spec = _str(material.get("customer_master_key_spec"), SYMMETRIC)
        view.key_usage = _str(material.get("key_usage"), "ENCRYPT_DECRYPT")
        rotation = material.get("enable_key_rotation", False)
        view.rotation_enabled = None if rotation is UNKNOWN else _bool(rotation)
        view.rotation_period_days = _int(material.get("rotation_period_in_days"))
        store = material.get("custom_key_store_id")
        if isinstance(store, str) and store:
            view.custom_key_store_id = store
            xks = material.get("xks_key_id")
            view.origin = "EXTERNAL_KEY_STORE" if isinstance(xks, str) and xks else "AWS_CLOUDHSM"
    else:
        view.rotation_enabled = None  # a replica's rotation is its primary's, not in this plan
    return view


def _identity_view(rtype: str, address: str, attrs: _Attrs, file: str | None, account: str) -> IdentityPolicyView | None:
    if rtype != "aws_iam_role":
        doc, unresolved = _policy(attrs.get("policy"))
        if doc is None and not unresolved:
            return None
        return IdentityPolicyView(address, "terraform", doc, file=file, account=account, policy_unresolved=unresolved)
    blocks = attrs.get("inline_policy")
    if blocks is UNKNOWN:
        return IdentityPolicyView(address, "terraform", None, file=file, account=account, policy_unresolved=True)
    merged: list = []
    for block in blocks if isinstance(blocks, list) else ([blocks] if isinstance(blocks, dict) else []):
        if not isinstance(block, dict):
            continue
        doc, unresolved = _policy(_Attrs(block).get("policy"))
        if unresolved:
            return IdentityPolicyView(address, "terraform", None, file=file, account=account, policy_unresolved=True)
        stmts = (doc or {}).get("Statement", [])
        merged += stmts if isinstance(stmts, list) else [stmts]
    if not merged:
        return None
    # A role's inline policies act together: one document with all their statements.
    return IdentityPolicyView(address, "terraform", {"Version": "2012-10-17", "Statement": merged},
                              file=file, account=account)


def view_from_values(resource_type: str, address: str, values: dict, file: str | None, config,
                     aliases: Iterable[str] = (), policy_override: str | dict | None = None,
                     grants: Iterable[Mapping] = (), *, unknown: Mapping | None = None,
                     policy_configured: bool | None = None, pending_deletion: bool = False,
                     account: str | None = None, region: str | None = None,
                     primary_values: Mapping | None = None) -> View | None:
    """The view of one Terraform resource from its attribute values (None for other types).

    ``policy_override`` is the policy of an ``aws_kms_key_policy`` for this key, which
    replaces the key's own. ``unknown`` is the plan's ``after_unknown`` for the resource;
    ``policy_configured`` False says the configuration sets no policy (an unknown policy
    is then AWS's default one). ``primary_values`` are a replica's primary key's values.
    """
    if not isinstance(values, Mapping):
        return None
    config = config or RulesConfig()
    attrs = _Attrs(values, unknown or {})
    if resource_type in KEY_TYPES:
        policy = _policy(policy_override) if policy_override is not None else None
        primary = _Attrs(primary_values) if primary_values is not None else None
        return _key_view(resource_type, address, attrs, file, config, aliases=aliases, policy=policy, grants=grants,
                         pending_deletion=pending_deletion, account=account, region=region, primary=primary,
                         policy_configured=policy_configured)
    if resource_type in IDENTITY_TYPES:
        return _identity_view(resource_type, address, attrs, file, config.account or account or PLACEHOLDER_ACCOUNT)
    return None


# -- the whole plan ---------------------------------------------------------------------

@dataclass
class _Instance:
    address: str
    type: str
    module: str                 # module instance address ("" for root), e.g. module.tenants["a"]
    config_address: str         # module path without instance keys + type.name
    index: Any
    attrs: _Attrs
    deleted: bool = False       # the change destroys it (delete, or replace)
    gone: bool = False          # the change only destroys it: not in the planned state


def _strip_index(address: str) -> str:
    return _INDEX.sub("", address)


def _module_resources(module: Any, module_address: str = "") -> Iterable[tuple[str, dict]]:
    """(module instance address, resource) of a values module and its child modules."""
    if not isinstance(module, dict):
        return
    for r in _list(module.get("resources")):
        if isinstance(r, dict):
            yield module_address, r
    for child in _list(module.get("child_modules")):
        if isinstance(child, dict):
            yield from _module_resources(child, str(child.get("address") or ""))


def _instances(doc: dict, file: str) -> dict[str, _Instance]:
    out: dict[str, _Instance] = {}

    def add(r: dict, module: str, values: Any, unknown: Any, absent_is_unknown: bool) -> _Instance | None:
        address, rtype = r.get("address"), r.get("type")
        if not isinstance(address, str) or not isinstance(rtype, str) or r.get("mode", "managed") != "managed":
            return None
        config_address = (_strip_index(module) + "." if module else "") + f"{rtype}.{r.get('name')}"
        inst = _Instance(address, rtype, module, config_address, r.get("index"),
                         _Attrs(values if isinstance(values, dict) else {},
                                unknown if isinstance(unknown, dict) else {}, absent_is_unknown))
        out[address] = inst
        return inst

    planned = doc.get("planned_values")
    if planned is not None and not isinstance(planned, dict):
        raise PlanError(f"{file}: planned_values must be an object")
    for module, r in _module_resources((planned or {}).get("root_module")):
        add(r, module, r.get("values"), {}, True)
    changes = doc.get("resource_changes") or []
    if not isinstance(changes, list):
        raise PlanError(f"{file}: resource_changes must be a list")
    for rc in changes:
        if not isinstance(rc, dict) or not isinstance(rc.get("change"), dict):
            continue
        change = rc["change"]
        actions = change.get("actions") if isinstance(change.get("actions"), list) else []
        inst = out.get(rc["address"]) if isinstance(rc.get("address"), str) else None
        module = rc.get("module_address") if isinstance(rc.get("module_address"), str) else ""
        if inst is None:
            if "delete" in actions and "create" not in actions:
                inst = add(rc, module, change.get("before"), {}, False)
                if inst:
                    inst.gone = True
            elif isinstance(change.get("after"), dict):
                inst = add(rc, module, change.get("after"), change.get("after_unknown"), True)
        elif isinstance(change.get("after_unknown"), dict):
            inst.attrs.unknown = change["after_unknown"]
        if inst is not None and "delete" in actions:
            inst.deleted = True
    return out


def _config_expressions(doc: dict) -> dict[str, dict] | None:
    """config address -> the resource's expressions; None when the plan has no configuration."""
    conf = doc.get("configuration")
    if not isinstance(conf, dict):
        return None
    out: dict[str, dict] = {}

    def walk(module: Any, prefix: str) -> None:
        if not isinstance(module, dict):
            return
        for r in _list(module.get("resources")):
            if isinstance(r, dict) and isinstance(r.get("address"), str) and r.get("mode", "managed") == "managed":
                exprs = r.get("expressions")
                out[prefix + r["address"]] = exprs if isinstance(exprs, dict) else {}
        calls = module.get("module_calls")
        for name, call in (calls.items() if isinstance(calls, dict) else ()):
            if isinstance(call, dict):
                walk(call.get("module"), f"{prefix}module.{name}.")

    walk(conf.get("root_module"), "")
    return out


def _data_values(doc: dict, rtype: str) -> list[dict]:
    """Values of data sources of ``rtype`` read during the plan (prior state, planned values)."""
    found = []
    for section in (doc.get("prior_state"), doc.get("planned_values")):
        if not isinstance(section, dict):
            continue
        values = section.get("values") if "values" in section else section
        root = values.get("root_module") if isinstance(values, dict) else None
        for _, r in _module_resources(root):
            if r.get("mode") == "data" and r.get("type") == rtype and isinstance(r.get("values"), dict):
                found.append(r["values"])
    return found


def _one(values: Iterable[Any]) -> str | None:
    distinct = {v for v in values if isinstance(v, str) and v}
    return distinct.pop() if len(distinct) == 1 else None


def _provider_region(doc: dict) -> str | None:
    conf = doc.get("configuration")
    providers = conf.get("provider_config") if isinstance(conf, dict) else None
    aws = providers.get("aws") if isinstance(providers, dict) else None
    expressions = aws.get("expressions") if isinstance(aws, dict) else None
    region = expressions.get("region") if isinstance(expressions, dict) else None
    if not isinstance(region, dict):
        return None
    if isinstance(region.get("constant_value"), str):
        return region["constant_value"]
    refs = region.get("references") or []
    variables = doc.get("variables") if isinstance(doc.get("variables"), dict) else {}
    if isinstance(refs, list) and len(refs) == 1 and isinstance(refs[0], str) and refs[0].startswith("var."):
        variable = variables.get(refs[0][4:])  # the plan's input variable
        value = variable.get("value") if isinstance(variable, dict) else None
        return value if isinstance(value, str) else None
    return None


def _index_of(ref_index: str | None) -> Any:
    if not ref_index:
        return None
    inner = ref_index[1:-1]
    if inner.startswith('"') and inner.endswith('"'):
        return inner[1:-1]
    try:
        return int(inner)
    except ValueError:
        return None


class _Linker:
    """Finds the key a linking resource (alias, key policy, grant, replica) points at."""

    def __init__(self, instances: dict[str, _Instance], exprs: dict[str, dict] | None) -> None:
        self.keys = [i for i in instances.values() if i.type in KEY_TYPES]
        self.exprs = exprs or {}
        self.by_value: dict[str, _Instance] = {}
        for k in self.keys:
            for attr in ("key_id", "id", "arn"):
                v = k.attrs.get(attr)
                if isinstance(v, str) and v:
                    self.by_value[v] = k

    def target(self, inst: _Instance, attr: str) -> _Instance | None:
        value = inst.attrs.get(attr)
        if isinstance(value, str) and value in self.by_value:
            return self.by_value[value]
        expr = self.exprs.get(inst.config_address, {}).get(attr)
        refs = expr.get("references") if isinstance(expr, dict) else None
        for ref in refs if isinstance(refs, list) else []:
            m = _KEY_REF.match(ref) if isinstance(ref, str) else None
            if not m:
                continue
            prefix = _strip_index(inst.module) + "." if inst.module else ""
            candidates = [k for k in self.keys if k.config_address == f"{prefix}{m.group(1)}.{m.group(2)}"
                          and k.module == inst.module]
            index = _index_of(m.group(3))
            if index is not None:
                candidates = [k for k in candidates if k.index == index]
            elif len(candidates) > 1 and inst.index is not None:
                candidates = [k for k in candidates if k.index == inst.index]
            if len(candidates) == 1:
                return candidates[0]
        return None


def views_from_plan(doc: dict, file: str | None, config) -> list[View]:
    """Every key and identity-policy view of a plan, in plan order."""
    where = file or "<plan>"
    config = config or RulesConfig()
    if not is_terraform_plan(doc):
        raise PlanError(f"{where}: not a Terraform plan (no planned_values or resource_changes)")
    version = str(doc.get("format_version", "1.0"))
    if version.split(".")[0] not in ("0", "1"):
        raise PlanError(f"{where}: plan format_version {version} is not supported (1.x is)")
    instances = _instances(doc, where)
    exprs = _config_expressions(doc)
    linker = _Linker(instances, exprs)
    aliases: dict[str, list[str]] = {}
    policies: dict[str, tuple[dict | None, bool]] = {}
    bypass: set[str] = set()
    grants: dict[str, list[Mapping]] = {}
    for inst in instances.values():
        if inst.type not in LINKS:
            continue
        key = linker.target(inst, LINKS[inst.type])
        if key is None or (inst.gone and not key.gone):  # what goes with a deleted key stays with it
            continue
        if inst.type == "aws_kms_alias":
            name = inst.attrs.get("name")
            if isinstance(name, str) and name:
                aliases.setdefault(key.address, []).append(name)
            elif name is UNKNOWN or inst.attrs.get("name_prefix") not in (None, UNKNOWN):
                aliases.setdefault(key.address, []).append(f"{inst.address} (name known after apply)")
        elif inst.type == "aws_kms_key_policy":
            policies[key.address] = _policy(inst.attrs.get("policy"))
            if _bool(inst.attrs.get("bypass_policy_lockout_safety_check", False)):
                bypass.add(key.address)
        else:
            grants.setdefault(key.address, []).append(dict(inst.attrs.values))

    caller = config.account or _one(v.get("account_id") for v in _data_values(doc, "aws_caller_identity"))
    region = _one(v.get("name") or v.get("region") for v in _data_values(doc, "aws_region")) or _provider_region(doc)
    plan_account = caller or most_frequent(
        a for k in linker.keys if not k.gone
        for a in principal_accounts(policies.get(k.address, _policy(k.attrs.get("policy")))[0]))

    views: list[View] = []
    for inst in instances.values():
        if inst.type in KEY_TYPES:
            primary = None
            if inst.type in ("aws_kms_replica_key", "aws_kms_replica_external_key"):
                p = linker.target(inst, "primary_key_arn")
                primary = p.attrs if p is not None else None
            # No policy in the configuration: AWS computes the default one (unknown in the plan).
            configured = False if exprs and inst.config_address in exprs and "policy" not in exprs[
                inst.config_address] else None
            view = _key_view(inst.type, inst.address, inst.attrs, file, config, aliases=aliases.get(inst.address, ()),
                             policy=policies.get(inst.address), grants=grants.get(inst.address, ()),
                             pending_deletion=inst.deleted, account=caller, region=region, primary=primary,
                             fallback_account=plan_account, policy_configured=configured)
            if inst.address in bypass:
                view.bypass_lockout = True
            views.append(view)
        elif inst.type in IDENTITY_TYPES and not inst.gone:
            v = _identity_view(inst.type, inst.address, inst.attrs, file, plan_account or PLACEHOLDER_ACCOUNT)
            if v is not None:
                views.append(v)
    return views
