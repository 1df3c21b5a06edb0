"""Pulumi resources as :class:`KeyView` / :class:`IdentityPolicyView`: the policy pack's front door.

The policy pack sees each resource of a stack as a type token, a URN and a property bag
in the engine's camelCase names, together with the resource graph (dependencies and the
dependencies of each property). This module turns such resources into the one view
every rule reads, for both the kms-iac provider's types and pulumi-aws's:

- keys: ``kms-iac:index:Key|ExternalKey|ReplicaKey`` and ``aws:kms/key:Key``,
  ``aws:kms/externalKey:ExternalKey``, ``aws:kms/replicaKey:ReplicaKey``;
- aliases (``kms-iac:index:Alias``, ``aws:kms/alias:Alias``) and grants
  (``kms-iac:index:Grant``, ``aws:kms/grant:Grant``) are attached to the key they name;
- identity policies (``aws:iam/policy:Policy``, ``aws:iam/rolePolicy:RolePolicy``,
  ``aws:iam/userPolicy:UserPolicy``, ``aws:iam/groupPolicy:GroupPolicy``) for KMS016.

During a preview a value that depends on a resource not created yet is *unknown*. An
unknown value is never read as a setting: it becomes ``None`` (or an unresolved policy),
so a rule that needs it answers NOT_APPLICABLE instead of a false FAIL. An alias whose
``targetKeyId`` is unknown (the key is being created in the same update) is linked to its
key through the graph: the resources its ``targetKeyId`` depends on.

The adapter reads plain values only (the pack unwraps pulumi_policy's proxies first), so
it is tested without the engine and used without pulumi_policy installed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from kms_iac.policy.document import PolicyError, parse_policy
from kms_iac.rules.adapters.accounts import most_frequent, principal_accounts
from kms_iac.rules.view import SYMMETRIC, IdentityPolicyView, KeyView, View
from kms_iac.rules.adapters.values import timestamp


class _Unknown:
    """A value the engine does not know yet (preview)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Any = _Unknown()

# How the engine (and pulumi_policy) spell unknown values on the wire, one per value type.
ENGINE_UNKNOWNS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "030794c1-ac77-496b-92df-f27374a8bd58", "e48ece36-62e2-4504-bad9-02848725956a",
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
})

KMS_IAC_KEY = "kms-iac:index:Key"
KMS_IAC_EXTERNAL_KEY = "kms-iac:index:ExternalKey"
KMS_IAC_REPLICA_KEY = "kms-iac:index:ReplicaKey"
AWS_KEY = "aws:kms/key:Key"
AWS_EXTERNAL_KEY = "aws:kms/externalKey:ExternalKey"
AWS_REPLICA_KEY = "aws:kms/replicaKey:ReplicaKey"
KEY_TYPES = frozenset({KMS_IAC_KEY, KMS_IAC_EXTERNAL_KEY, KMS_IAC_REPLICA_KEY, AWS_KEY, AWS_EXTERNAL_KEY,
                       AWS_REPLICA_KEY})
ALIAS_TYPES = frozenset({"kms-iac:index:Alias", "aws:kms/alias:Alias"})
GRANT_TYPES = frozenset({"kms-iac:index:Grant", "aws:kms/grant:Grant"})
IDENTITY_POLICY_TYPES = frozenset({"aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy",
                                   "aws:iam/userPolicy:UserPolicy", "aws:iam/groupPolicy:GroupPolicy"})


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN or (isinstance(value, str) and value in ENGINE_UNKNOWNS)


@dataclass
class PulumiResource:
    """One resource as a policy pack sees it: type, URN, properties and its edges in the graph."""

    urn: str
    type: str
    props: Mapping[str, Any]
    dependencies: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)  # URNs this resource was known by before (renames)

    @property
    def name(self) -> str:
        """The resource's logical name (the last URN segment), what findings are reported against."""
        return self.urn.rsplit("::", 1)[-1]

    def get(self, *names: str) -> Any:
        """The first of ``names`` that is set (``UNKNOWN`` if it is unknown), else ``None``."""
        for n in names:
            v = self.props.get(n)
            if is_unknown(v):
                return UNKNOWN
            if v is not None:
                return v
        return None


def _known(value: Any) -> Any:
    """``None`` for an unknown value, the value otherwise."""
    return None if is_unknown(value) else value


def _bool(value: Any, default: bool | None) -> bool | None:
    if is_unknown(value):
        return None
    if value is None:
        return default
    if isinstance(value, str):  # a bool that travelled through string config
        return value.strip().lower() == "true"
    return bool(value)


def _int(value: Any) -> int | None:
    if is_unknown(value) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _window(value: Any) -> int | None:
    """The deletion window: when none is given, both providers schedule deletion with KMS's 30 days."""
    if value is None:
        return 30
    return _int(value)


def _policy(value: Any) -> tuple[dict | None, bool]:
    """(parsed policy, unresolved): absent is KMS's default policy, unknown or unreadable is unresolved."""
    if value is None:
        return None, False
    if is_unknown(value) or _contains_unknown(value):
        return None, True
    try:
        return parse_policy(value), False
    except PolicyError:
        return None, True


def _contains_unknown(value: Any) -> bool:
    if is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(_contains_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_unknown(v) for v in value)
    return False


def _tags(value: Any) -> dict[str, str] | None:
    """The tags; ``None`` when the map itself is unknown. A tag whose value is unknown is still there."""
    if value is None:
        return {}
    if is_unknown(value) or not isinstance(value, Mapping):
        return None
    return {str(k): ("(known after update)" if is_unknown(v) else str(v)) for k, v in value.items()}


def _arn_part(arn: Any, index: int) -> str | None:
    if not isinstance(arn, str) or is_unknown(arn) or not arn.startswith("arn:"):
        return None
    parts = arn.split(":")
    return parts[index] if len(parts) > 5 and parts[index] else None


def key_view(res: PulumiResource, account: str | None = None, now: dt.datetime | None = None) -> KeyView:
    """The rules' view of one key resource (``res.type`` in :data:`KEY_TYPES`)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    t = res.type
    arn = _known(res.get("arn"))
    policy, unresolved = _policy(res.get("policy"))
    key_spec = res.get("keySpec", "customerMasterKeySpec")
    usage = res.get("keyUsage")
    custom_store = _known(res.get("customKeyStoreId"))
    origin = "AWS_KMS"
    if t in (KMS_IAC_EXTERNAL_KEY, AWS_EXTERNAL_KEY):
        origin = "EXTERNAL"
    elif t.startswith("aws:") and _known(res.get("xksKeyId")):
        origin = "EXTERNAL_KEY_STORE"
    elif custom_store:
        origin = "AWS_CLOUDHSM"
    replica = t in (KMS_IAC_REPLICA_KEY, AWS_REPLICA_KEY)
    if replica:
        # A replica's rotation follows its primary (pulumi-aws reports it as an output).
        rotation = _bool(res.get("keyRotationEnabled"), None)
        period = None
    elif origin == "EXTERNAL":
        rotation, period = None, None
    else:
        rotation = _bool(res.get("enableKeyRotation"), False)
        period = _int(res.get("rotationPeriodInDays"))
    state = _known(res.get("keyState"))
    valid_to = timestamp(res.get("validTo"))
    expired = valid_to is not None and valid_to <= now
    return KeyView(
        resource=res.name, source="pulumi",
        # A key not created yet (a preview) has no ARN: its account is the configured one, else
        # the one its policy's principals name most (see accounts.py), never a placeholder that
        # would make its own root look foreign.
        account=_arn_part(arn, 4) or account or most_frequent(principal_accounts(policy)),
        region=_arn_part(arn, 3), arn=arn,
        key_spec=SYMMETRIC if key_spec is None else _known(key_spec),
        key_usage="ENCRYPT_DECRYPT" if usage is None else _known(usage),
        origin=origin, custom_key_store_id=custom_store,
        # Enabled/Disabled in the state is what isEnabled sets; during a preview of an update the
        # old state's keyState is still there, so the declared isEnabled is what counts.
        key_state=state if isinstance(state, str) and state not in ("", "Enabled", "Disabled") else None,
        # pulumi-aws spells it isEnabled on keys and enabled on external and replica keys
        enabled=_bool(res.get("isEnabled", "enabled"), True),
        policy=policy, policy_unresolved=unresolved,
        rotation_enabled=rotation, rotation_period_days=period,
        deletion_window_days=_window(res.get("deletionWindowInDays")),
        valid_to=None if expired else valid_to, material_expired=expired,
        multi_region=True if replica else _bool(res.get("multiRegion"), False),
        aliases=[], tags=_tags(res.get("tags")),
        bypass_lockout=_bool(res.get("bypassPolicyLockoutSafetyCheck"), False),
    )


def identity_view(res: PulumiResource, account: str | None = None) -> IdentityPolicyView:
    """An IAM identity policy resource (``res.type`` in :data:`IDENTITY_POLICY_TYPES`) for KMS016."""
    doc, unresolved = _policy(res.get("policy"))
    arn = _known(res.get("arn"))
    return IdentityPolicyView(resource=res.name, source="pulumi", document=doc,
                              account=_arn_part(arn, 4) or account, policy_unresolved=unresolved)


def _key_refs(view: KeyView, res: PulumiResource) -> set[str]:
    """Every string another resource may name this key by: key id, ARN, and the key id inside the ARN."""
    refs = {r for r in (view.arn, _known(res.get("keyId")), _known(res.get("id"))) if isinstance(r, str) and r}
    if view.arn and "/" in view.arn:
        refs.add(view.arn.rsplit("/", 1)[-1])
    return refs


def _target(res: PulumiResource, prop: str, keys: dict[str, KeyView], refs: dict[str, str]) -> list[str]:
    """URNs of the keys ``res.props[prop]`` names: by value when known, else by the graph."""
    value = res.get(prop)
    if isinstance(value, str) and not is_unknown(value):
        urn = refs.get(value) or refs.get(value.rsplit("/", 1)[-1])
        if urn:
            return [urn]
    linked = [u for u in res.property_dependencies.get(prop, []) if u in keys]
    if linked:
        return linked
    if value is None or is_unknown(value):  # an SDK that sends no property dependencies: the only key it depends on
        deps = [u for u in res.dependencies if u in keys]
        if len(deps) == 1:
            return deps
    return []


def _grant(res: PulumiResource) -> dict[str, Any]:
    """A grant in the shape ListGrants answers (what the live adapter keeps)."""
    g: dict[str, Any] = {"Name": _known(res.get("name")) or res.name,
                         "GranteePrincipal": _known(res.get("granteePrincipal")),
                         "Operations": _known(res.get("operations")) or []}
    if _known(res.get("retiringPrincipal")):
        g["RetiringPrincipal"] = res.get("retiringPrincipal")
    constraints = {}
    for prop, key in (("encryptionContextEquals", "EncryptionContextEquals"),
                      ("encryptionContextSubset", "EncryptionContextSubset")):
        if isinstance(_known(res.get(prop)), Mapping):
            constraints[key] = dict(res.get(prop))
    for c in _known(res.get("constraints")) or []:  # pulumi-aws: a list of constraint blocks
        if isinstance(c, Mapping):
            for prop, key in (("encryptionContextEquals", "EncryptionContextEquals"),
                              ("encryptionContextSubset", "EncryptionContextSubset")):
                if isinstance(_known(c.get(prop)), Mapping):
                    constraints[key] = dict(c[prop])
    if constraints:
        g["Constraints"] = constraints
    return g


def views(resources: Iterable[PulumiResource], account: str | None = None,
          now: dt.datetime | None = None) -> list[View]:
    """Views of every key and identity policy among ``resources``, with aliases and grants attached."""
    resources = list(resources)
    keys: dict[str, KeyView] = {}
    refs: dict[str, str] = {}
    identities: list[View] = []
    for res in resources:
        if res.type in KEY_TYPES:
            v = keys[res.urn] = key_view(res, account, now)
            for r in _key_refs(v, res):
                refs[r] = res.urn
        elif res.type in IDENTITY_POLICY_TYPES:
            identities.append(identity_view(res, account))
    for res in resources:
        if res.type in ALIAS_TYPES:
            name = _known(res.get("name")) or _known(res.get("namePrefix"))
            for urn in _target(res, "targetKeyId", keys, refs):
                aliases = keys[urn].aliases
                if aliases is not None:
                    aliases.append(name if isinstance(name, str) else f"{res.name} (name known after update)")
        elif res.type in GRANT_TYPES:
            for urn in _target(res, "keyId", keys, refs):
                keys[urn].grants.append(_grant(res))
    for v in keys.values():
        if v.aliases:
            v.aliases.sort()
    return [*keys.values(), *identities]
