"""``ImportedKey``: bring-your-own key material from a secret config value."""

from __future__ import annotations

from typing import Any, Optional

import pulumi

from ._inputs import ComponentInputError
from .tenant_key import TenantKey


class ImportedKey(TenantKey):
    """A tenant key whose material is imported (origin EXTERNAL) rather than generated.

    ``key_material`` (base64 of 32 bytes) is a secret Input; or name a secret stack config
    value with ``key_material_config`` (``pulumi config set --secret <name> <base64>``).
    Imported material is never rotated automatically (KMS002 does not apply)."""

    def __init__(self, name: str, *, tenant: str, key_material: Optional[pulumi.Input[str]] = None,
                 key_material_config: Optional[str] = None, opts: Optional[pulumi.ResourceOptions] = None,
                 **kwargs: Any) -> None:
        if (key_material is None) == (key_material_config is None):
            raise ComponentInputError(f"ImportedKey(tenant={tenant!r}): give key_material or key_material_config")
        if key_material_config is not None:
            key_material = pulumi.Config().require_secret(key_material_config)
        super().__init__(name, tenant=tenant, key_material=pulumi.Output.secret(key_material), opts=opts,
                         _type="kms-iac:index:ImportedKey", **kwargs)
