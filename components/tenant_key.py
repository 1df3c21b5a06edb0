"""``TenantKey``: one tenant's customer managed key, governed the way the rules expect."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, TypedDict

import pulumi

from . import _inputs as check
from ._policy import account_output, check_roles_now, policy_output
from kms_iac import resources as kms

TYPE = "kms-iac:index:TenantKey"


class TenantKeyArgs(TypedDict, total=False):
    tenant: str
    """The tenant id: names the alias (alias/<prefix>/<tenant>), the tenant tag and every child resource."""
    key_administrators: Sequence[pulumi.Input[str]]
    """Principal ARNs that manage the key (policy, state, deletion) but cannot use it."""
    key_users: Sequence[pulumi.Input[str]]
    """Principal ARNs that encrypt, decrypt and generate data keys with it."""
    key_service_users: Sequence[pulumi.Input[str]]
    """Principal ARNs that may create grants for AWS services (kms:GrantIsForAWSResource)."""
    service_users: Mapping[str, Sequence[str]]
    """Principal ARN -> kms:ViaService values (e.g. s3.us-east-1.amazonaws.com) it may use the key through."""
    cross_account_principals: Sequence[Any]
    """ARNs (or mappings with arn, via_services, encryption_context, caller_account) of other accounts."""
    rotation_period_in_days: int
    """Automatic rotation period, 90-2560 days (rotation is always on for KMS-generated keys)."""
    deletion_window_in_days: int
    """Waiting period, 7-30 days, when the key is deleted."""
    alias_prefix: str
    """The alias is alias/<alias_prefix>/<tenant>."""
    tags: Mapping[str, str]
    """Extra tags; the tenant tag is added."""
    replica_regions: Sequence[str]
    """Regions to replicate the key to (makes it a multi-Region key)."""
    custom_key_store: pulumi.Input[str]
    """A custom key store id (or a CloudHsmKeyStore's custom_key_store_id) to keep the material in."""
    key_material: pulumi.Input[str]
    """Base64 key material to import (BYOK); kept secret."""
    grants: Sequence[Mapping[str, Any]]
    """Grants: mappings with grantee_principal, operations and optional name, retiring_principal,
    encryption_context_subset / encryption_context_equals."""


class TenantKey(pulumi.ComponentResource):
    """One tenant's key, its alias ``alias/<prefix>/<tenant>``, a role-based key policy from the
    shared builder, rotation on, the tenant tag, and optional grants, replicas in other
    Regions, placement in a custom key store, or imported material."""

    key_id: pulumi.Output[str]
    key_arn: pulumi.Output[str]
    alias_name: pulumi.Output[str]
    replica_arns: pulumi.Output[dict]
    policy: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        tenant: str,
        key_administrators: Sequence[pulumi.Input[str]] = (),
        key_users: Sequence[pulumi.Input[str]] = (),
        key_service_users: Sequence[pulumi.Input[str]] = (),
        service_users: Optional[Mapping[str, Sequence[str]]] = None,
        cross_account_principals: Sequence[Any] = (),
        rotation_period_in_days: int = 365,
        deletion_window_in_days: int = 30,
        alias_prefix: str = "tenants",
        tags: Optional[Mapping[str, str]] = None,
        tenant_tag: str = "tenant",
        description: Optional[str] = None,
        replica_regions: Sequence[str] = (),
        custom_key_store: Optional[pulumi.Input[str]] = None,
        key_material: Optional[pulumi.Input[str]] = None,
        grants: Sequence[Mapping[str, Any]] = (),
        account: Optional[str] = None,
        extra_statements: Sequence[Mapping[str, Any]] = (),
        opts: Optional[pulumi.ResourceOptions] = None,
        _type: str = TYPE,
    ) -> None:
        component = _type.rsplit(":", 1)[-1]
        tenant = check.tenant_id(tenant, component)
        at = lambda field: check.where(component, tenant, field)  # noqa: E731
        rotation = check.days(rotation_period_in_days, 90, 2560, at("rotation_period_in_days"))
        window = check.days(deletion_window_in_days, 7, 30, at("deletion_window_in_days"))
        prefix = check.alias_prefix(alias_prefix, at("alias_prefix"))
        replicas = check.regions(list(replica_regions), at("replica_regions"))
        if custom_key_store is not None and key_material is not None:
            raise check.ComponentInputError(f"{at('custom_key_store')}: a key in a custom key store cannot have "
                                            "imported material; give one or the other")
        if custom_key_store is not None and replicas:
            raise check.ComponentInputError(f"{at('replica_regions')}: keys in a custom key store cannot be multi-Region")
        roles = {
            "key_administrators": check.string_list(key_administrators, at("key_administrators")),
            "key_users": check.string_list(key_users, at("key_users")),
            "key_service_users": check.string_list(key_service_users, at("key_service_users")),
            "service_users": dict(service_users or {}),
            "cross_account_principals": check.string_list(cross_account_principals, at("cross_account_principals")),
            "extra_statements": check.string_list(extra_statements, at("extra_statements")),
        }
        roles.update(self._extra_roles())
        check_roles_now(at("policy"), roles)
        grant_specs = [self._grant_spec(g, i, at) for i, g in enumerate(check.string_list(grants, at("grants")))]
        all_tags = {**check.tags(tags, at("tags")), tenant_tag: tenant}

        super().__init__(_type, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.policy = policy_output(at("policy"), account_output(account, opts), roles)
        common = dict(description=description or f"{tenant} tenant key", policy=self.policy,
                      deletion_window_in_days=window, tags=all_tags)
        key = self._create_key(name, common, rotation, bool(replicas), custom_key_store, key_material, child)
        alias = kms.Alias(f"{name}-alias", name=f"alias/{prefix}/{tenant}", target_key_id=key.key_id, opts=child)
        replica_arns = {}
        for region in replicas:
            provider = kms.Provider(f"{name}-{region}", region=region, **_provider_config(), opts=child)
            replica = kms.ReplicaKey(f"{name}-{region}", primary_key_arn=key.arn, description=common["description"],
                                     policy=self.policy, deletion_window_in_days=window, tags=all_tags,
                                     opts=pulumi.ResourceOptions(parent=self, provider=provider))
            replica_arns[region] = replica.arn
            # Aliases are regional: the replica gets the same name in its Region (KMS012).
            kms.Alias(f"{name}-{region}-alias", name=f"alias/{prefix}/{tenant}", target_key_id=replica.key_id,
                      opts=pulumi.ResourceOptions(parent=self, provider=provider))
        for spec in grant_specs:
            gname = spec.pop("name")
            kms.Grant(f"{name}-grant-{gname}", key_id=key.key_id, name=gname, **spec, opts=child)

        self.key_id, self.key_arn = key.key_id, key.arn
        alias_name = f"alias/{prefix}/{tenant}"
        self.alias_name = alias.arn.apply(lambda _: alias_name)  # known once the alias exists
        self.replica_arns = pulumi.Output.from_input(replica_arns)
        self.register_outputs({"key_id": self.key_id, "key_arn": self.key_arn, "alias_name": self.alias_name,
                               "replica_arns": self.replica_arns, "policy": self.policy})

    def _extra_roles(self) -> dict[str, Any]:
        """Roles a specialised key adds (signers, MAC users); none for a tenant's data key."""
        return {}

    def _key_usage(self) -> tuple[Optional[str], Optional[str]]:
        return None, None

    def _create_key(self, name, common, rotation, multi_region, custom_key_store, key_material, child):
        spec, usage = self._key_usage()
        if key_material is not None:
            return kms.ExternalKey(name, key_material=key_material, multi_region=multi_region or None, **common,
                                   opts=child)
        symmetric = spec in (None, "SYMMETRIC_DEFAULT")
        return kms.Key(name, key_spec=spec, key_usage=usage, custom_key_store_id=custom_key_store,
                       multi_region=multi_region or None,
                       # automatic rotation exists only for symmetric KMS-generated keys (KMS002)
                       enable_key_rotation=symmetric and custom_key_store is None,
                       rotation_period_in_days=rotation if symmetric and custom_key_store is None else None,
                       **common, opts=child)

    @staticmethod
    def _grant_spec(g: Any, i: int, at) -> dict:
        where = at(f"grants[{i}]")
        if not isinstance(g, Mapping):
            raise check.ComponentInputError(f"{where}: expected a mapping with grantee_principal and operations")
        allowed = {"name", "grantee_principal", "operations", "retiring_principal", "encryption_context_subset",
                   "encryption_context_equals"}
        unknown = set(g) - allowed
        if unknown:
            raise check.ComponentInputError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if "grantee_principal" not in g or not g.get("operations"):
            raise check.ComponentInputError(f"{where}: needs grantee_principal and operations")
        spec = dict(g)
        spec.setdefault("name", f"grant-{i}")
        return spec


def _provider_config() -> dict[str, Any]:
    """A replica's provider talks to the same target as the stack's default provider."""
    cfg = pulumi.Config("kms-iac")
    return {"target": cfg.get("target"), "data_dir": cfg.get("dataDir"), "profile": cfg.get("profile")}
