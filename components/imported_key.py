"""``ImportedKey``: bring-your-own key material from a secret config value."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import pulumi

from ._inputs import ComponentInputError, string_list
from .tenant_key import TenantKey
from kms_iac import resources as kms
from kms_iac.provider.resources.external_key import SYMMETRIC, ExternalKeyHandler
from kms_iac.provider.resources.key import USAGES_BY_SPEC

# Roles that only make sense for one key usage: (argument, policy builder role, the usage).
_USAGE_ROLES = (("signers", "key_signers", "SIGN_VERIFY"), ("verifiers", "key_verifiers", "SIGN_VERIFY"),
                ("mac_users", "key_mac_users", "GENERATE_VERIFY_MAC"))


class ImportedKey(TenantKey):
    """A tenant key whose material is imported (origin EXTERNAL) rather than generated.

    ``key_material`` is a secret Input; or name a secret stack config value with
    ``key_material_config`` (``pulumi config set --secret <name> <base64>``). What it is
    base64 of depends on ``key_spec`` (default SYMMETRIC_DEFAULT), as on ExternalKey: 32 bytes,
    an HMAC secret (HMAC_*), or a PKCS#8 DER private key (RSA_*, ECC_*, ECC_NIST_EDWARDS25519).
    ``key_usage`` defaults to the spec's only usage and must be given where KMS offers a choice
    (RSA: ENCRYPT_DECRYPT or SIGN_VERIFY; NIST curves: SIGN_VERIFY or KEY_AGREEMENT).
    ``signers``/``verifiers`` (SIGN_VERIFY) and ``mac_users`` (GENERATE_VERIFY_MAC) get the
    matching policy statements, as on SigningKey and HmacKey. Imported material is never
    rotated automatically (KMS002 does not apply)."""

    def __init__(self, name: str, *, tenant: str, key_material: Optional[pulumi.Input[str]] = None,
                 key_material_config: Optional[str] = None, key_spec: str = SYMMETRIC,
                 key_usage: Optional[str] = None, signers: Sequence[pulumi.Input[str]] = (),
                 verifiers: Sequence[pulumi.Input[str]] = (), mac_users: Sequence[pulumi.Input[str]] = (),
                 opts: Optional[pulumi.ResourceOptions] = None, **kwargs: Any) -> None:
        where = f"ImportedKey(tenant={tenant!r})"
        if (key_material is None) == (key_material_config is None):
            raise ComponentInputError(f"{where}: give key_material or key_material_config")
        self._spec, self._usage = key_spec, _usage(where, key_spec, key_usage)
        # The provider's own Check of a spec and usage (pair, importability), now rather than at preview.
        refusals = ExternalKeyHandler().validate({"keySpec": self._spec, "keyUsage": self._usage})
        if refusals:
            prop, reason = refusals[0]
            raise ComponentInputError(f"{where}.{'key_spec' if prop == 'keySpec' else 'key_usage'}: {reason}")
        given = {"signers": signers, "verifiers": verifiers, "mac_users": mac_users}
        self._roles = {}
        for arg, role, usage in _USAGE_ROLES:
            principals = string_list(given[arg], f"{where}.{arg}")
            if principals and self._usage != usage:
                raise ComponentInputError(f"{where}.{arg}: only a {usage} key has {arg}; this key's usage is "
                                          f"{self._usage}")
            self._roles[role] = principals
        if key_material_config is not None:
            key_material = pulumi.Config().require_secret(key_material_config)
        super().__init__(name, tenant=tenant, key_material=pulumi.Output.secret(key_material), opts=opts,
                         _type="kms-iac:index:ImportedKey", **kwargs)

    def _extra_roles(self) -> dict[str, Any]:
        return self._roles

    def _create_key(self, name, common, rotation, multi_region, custom_key_store, key_material, child):
        """An ExternalKey of the declared spec and usage (never rotated, never in a key store)."""
        return kms.ExternalKey(name, key_material=key_material, key_spec=self._spec, key_usage=self._usage,
                               multi_region=multi_region or None, **common, opts=child)


def _usage(where: str, spec: str, usage: Optional[str]) -> str:
    """The declared usage, or the spec's only one; a spec with a choice needs it declared."""
    if usage is not None:
        return usage
    usages = USAGES_BY_SPEC.get(spec, ())
    if len(usages) == 1:
        return usages[0]
    if not usages:  # an unknown spec: the provider's check says which exist
        return "ENCRYPT_DECRYPT"
    raise ComponentInputError(f"{where}.key_usage: a {spec} key can be {' or '.join(usages)}; say which")
