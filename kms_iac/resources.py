"""Typed Pulumi resources of the ``kms-iac`` provider, for Python programs.

    from kms_iac import resources as kms
    key = kms.Key("orders", description="orders tenant", enable_key_rotation=True)
    kms.Alias("orders", name="alias/orders", target_key_id=key.key_id)

Arguments are snake_case (as pulumi-aws spells them); the engine sees the provider's
camelCase property names. The provider plugin is ``pulumi-resource-kms-iac``, put on
PATH by installing this package.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import pulumi

from kms_iac.provider import PACKAGE, VERSION
from kms_iac.provider.resources.alias import SPEC as ALIAS_SPEC
from kms_iac.provider.resources.custom_key_store import SPEC as CKS_SPEC
from kms_iac.provider.resources.external_key import SPEC as EXTERNAL_SPEC
from kms_iac.provider.resources.hsm_cluster import SPEC as HSM_SPEC
from kms_iac.provider.resources.grant import SPEC as GRANT_SPEC
from kms_iac.provider.resources.key import SPEC as KEY_SPEC
from kms_iac.provider.resources.replica_key import SPEC as REPLICA_SPEC
from kms_iac.provider.spec import ResourceSpec

Input = pulumi.Input


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def _arguments(scope: dict[str, Any]) -> dict[str, Any]:
    """A constructor's keyword arguments, from its ``locals()``."""
    return {k: v for k, v in scope.items() if k not in ("self", "resource_name", "opts", "__class__")}


class _KmsResource(pulumi.CustomResource):
    """Maps snake_case arguments to the provider's camelCase properties and back."""

    _spec: ResourceSpec

    def __init__(self, resource_name: str, args: Mapping[str, Any], opts: Optional[pulumi.ResourceOptions]) -> None:
        # The SDK keys output futures by these (Python) names and translates them to the
        # provider's camelCase names on the wire with translate_input/output_property.
        props: dict[str, Any] = {p.snake: None for p in self._spec.props}
        props.update({k: v for k, v in args.items() if v is not None})
        opts = pulumi.ResourceOptions.merge(pulumi.ResourceOptions(version=VERSION), opts)
        super().__init__(self._spec.token, resource_name, props, opts)

    def translate_output_property(self, prop: str) -> str:
        return _snake(prop)

    def translate_input_property(self, prop: str) -> str:
        return _camel(prop)


class Key(_KmsResource):
    """A customer managed KMS key. Deleting it schedules deletion after ``deletion_window_in_days``."""

    _spec = KEY_SPEC
    arn: pulumi.Output[str]
    key_id: pulumi.Output[str]
    key_state: pulumi.Output[str]
    policy: pulumi.Output[str]
    description: pulumi.Output[str]
    enable_key_rotation: pulumi.Output[bool]
    rotation_period_in_days: pulumi.Output[Optional[int]]
    is_enabled: pulumi.Output[bool]
    tags: pulumi.Output[Mapping[str, str]]

    def __init__(
        self,
        resource_name: str,
        opts: Optional[pulumi.ResourceOptions] = None,
        *,
        description: Input[str] | None = None,
        key_spec: Input[str] | None = None,
        key_usage: Input[str] | None = None,
        policy: Input[str] | None = None,
        enable_key_rotation: Input[bool] | None = None,
        rotation_period_in_days: Input[int] | None = None,
        deletion_window_in_days: Input[int] | None = None,
        is_enabled: Input[bool] | None = None,
        multi_region: Input[bool] | None = None,
        custom_key_store_id: Input[str] | None = None,
        bypass_policy_lockout_safety_check: Input[bool] | None = None,
        tags: Input[Mapping[str, Input[str]]] | None = None,
    ) -> None:
        args = _arguments(locals())
        super().__init__(resource_name, args, opts)


class Alias(_KmsResource):
    """An alias (``alias/...``) naming a key."""

    _spec = ALIAS_SPEC
    arn: pulumi.Output[str]
    target_key_arn: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        opts: Optional[pulumi.ResourceOptions] = None,
        *,
        name: Input[str] | None = None,
        target_key_id: Input[str] | None = None,
    ) -> None:
        super().__init__(resource_name, {"name": name, "target_key_id": target_key_id}, opts)


class ReplicaKey(_KmsResource):
    """A replica of a multi-Region primary key in this resource's provider's Region."""

    _spec = REPLICA_SPEC
    arn: pulumi.Output[str]
    key_id: pulumi.Output[str]
    key_state: pulumi.Output[str]
    key_spec: pulumi.Output[str]  # the primary's
    key_usage: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        opts: Optional[pulumi.ResourceOptions] = None,
        *,
        primary_key_arn: Input[str] | None = None,
        description: Input[str] | None = None,
        policy: Input[str] | None = None,
        deletion_window_in_days: Input[int] | None = None,
        is_enabled: Input[bool] | None = None,
        bypass_policy_lockout_safety_check: Input[bool] | None = None,
        tags: Input[Mapping[str, Input[str]]] | None = None,
    ) -> None:
        args = _arguments(locals())
        super().__init__(resource_name, args, opts)


class ExternalKey(_KmsResource):
    """A key with imported (BYOK) material, kept secret: ``key_material`` is base64 of 32 bytes
    (``key_spec`` SYMMETRIC_DEFAULT, the default), of the HMAC secret (HMAC_*, with ``key_usage``
    GENERATE_VERIFY_MAC) or of a PKCS#8 DER private key (RSA_*, ECC_*, ECC_NIST_EDWARDS25519)."""

    _spec = EXTERNAL_SPEC
    arn: pulumi.Output[str]
    key_id: pulumi.Output[str]
    key_state: pulumi.Output[str]
    key_spec: pulumi.Output[str]
    key_usage: pulumi.Output[str]
    expiration_model: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        opts: Optional[pulumi.ResourceOptions] = None,
        *,
        key_material: Input[str] | None = None,
        key_spec: Input[str] | None = None,
        key_usage: Input[str] | None = None,
        valid_to: Input[str] | None = None,
        description: Input[str] | None = None,
        policy: Input[str] | None = None,
        deletion_window_in_days: Input[int] | None = None,
        is_enabled: Input[bool] | None = None,
        multi_region: Input[bool] | None = None,
        bypass_policy_lockout_safety_check: Input[bool] | None = None,
        tags: Input[Mapping[str, Input[str]]] | None = None,
    ) -> None:
        args = _arguments(locals())
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["key_material"]))
        super().__init__(resource_name, args, opts)


class Grant(_KmsResource):
    """Scoped, revocable use of a key for a grantee; every change replaces the grant."""

    _spec = GRANT_SPEC
    grant_id: pulumi.Output[str]
    grant_token: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        opts: Optional[pulumi.ResourceOptions] = None,
        *,
        key_id: Input[str] | None = None,
        grantee_principal: Input[str] | None = None,
        operations: Input[list[Input[str]]] | None = None,
        retiring_principal: Input[str] | None = None,
        name: Input[str] | None = None,
        encryption_context_equals: Input[Mapping[str, Input[str]]] | None = None,
        encryption_context_subset: Input[Mapping[str, Input[str]]] | None = None,
        retire_on_delete: Input[bool] | None = None,
    ) -> None:
        super().__init__(resource_name, _arguments(locals()), opts)


class HsmCluster(_KmsResource):
    """A CloudHSM cluster on the local target (a SoftHSM2 token in the backend's data dir)."""

    _spec = HSM_SPEC
    cluster_id: pulumi.Output[str]
    trust_anchor_certificate: pulumi.Output[str]
    key_store_password: pulumi.Output[str]

    def __init__(self, resource_name: str, opts: Optional[pulumi.ResourceOptions] = None, *,
                 name: Input[str] | None = None, user_pin: Input[str] | None = None,
                 so_pin: Input[str] | None = None) -> None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["key_store_password"]))
        super().__init__(resource_name, _arguments(locals()), opts)


class CustomKeyStore(_KmsResource):
    """An AWS CloudHSM key store; connected when created."""

    _spec = CKS_SPEC
    custom_key_store_id: pulumi.Output[str]
    connection_state: pulumi.Output[str]

    def __init__(self, resource_name: str, opts: Optional[pulumi.ResourceOptions] = None, *,
                 custom_key_store_name: Input[str] | None = None, cloud_hsm_cluster_id: Input[str] | None = None,
                 trust_anchor_certificate: Input[str] | None = None,
                 key_store_password: Input[str] | None = None) -> None:
        super().__init__(resource_name, _arguments(locals()), opts)


class Provider(pulumi.ProviderResource):
    """An explicit kms-iac provider: another target, region, account or data dir in one program."""

    def __init__(
        self,
        resource_name: str,
        opts: Optional[pulumi.ResourceOptions] = None,
        *,
        target: Input[str] | None = None,
        region: Input[str] | None = None,
        profile: Input[str] | None = None,
        data_dir: Input[str] | None = None,
    ) -> None:
        props = {"target": target, "region": region, "profile": profile, "data_dir": data_dir}
        opts = pulumi.ResourceOptions.merge(pulumi.ResourceOptions(version=VERSION), opts)
        super().__init__(PACKAGE, resource_name, props, opts)

    def translate_input_property(self, prop: str) -> str:
        return _camel(prop)


class CallerIdentity:
    """What ``get_caller_identity`` returns: the account, Region and partition of the target."""

    def __init__(self, account_id: str, region: str, partition: str) -> None:
        self.account_id, self.region, self.partition = account_id, region, partition


def get_caller_identity_output(opts: Optional[pulumi.InvokeOptions] = None) -> pulumi.Output[CallerIdentity]:
    """The account the provider's KMS target acts in (the key-policy root account).

    Asked of KMS itself, so it is right for the embedded backend, a server, moto and AWS
    alike; ``opts.provider`` selects an explicit provider."""
    opts = pulumi.InvokeOptions.merge(pulumi.InvokeOptions(version=VERSION), opts)
    result = pulumi.runtime.invoke_output(f"{PACKAGE}:index:getCallerIdentity", {}, opts)
    return result.apply(lambda r: CallerIdentity(r["accountId"], r["region"], r["partition"]))
