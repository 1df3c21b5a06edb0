"""``TenantKeyFleet``: many tenants' keys from one list or a tenants.yaml, with shared defaults."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import pulumi
import yaml

from ._inputs import ComponentInputError
from .tenant_key import TenantKey

TYPE = "kms-iac:index:TenantKeyFleet"
# What a tenant entry or the defaults may set: TenantKey's own arguments.
_SETTINGS = set(inspect.signature(TenantKey.__init__).parameters) - {"self", "name", "tenant", "opts", "_type"}


def load_tenants_file(path: str | Path) -> tuple[list[Any], dict[str, Any]]:
    """(tenants, defaults) from a YAML file: a list of tenants, or a mapping with
    ``tenants:`` and optional ``defaults:``."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as e:
        raise ComponentInputError(f"TenantKeyFleet.tenants_file: cannot read {p}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ComponentInputError(f"TenantKeyFleet.tenants_file: {p} is not valid YAML: {e}") from None
    if isinstance(doc, list):
        return doc, {}
    if isinstance(doc, dict) and isinstance(doc.get("tenants"), list):
        unknown = set(doc) - {"tenants", "defaults"}
        if unknown:
            raise ComponentInputError(f"TenantKeyFleet.tenants_file: {p}: unknown top-level key(s) "
                                      f"{', '.join(sorted(unknown))}")
        return doc["tenants"], dict(doc.get("defaults") or {})
    raise ComponentInputError(f"TenantKeyFleet.tenants_file: {p} must hold a list of tenants or a mapping with "
                              "'tenants' (and optional 'defaults')")


class TenantKeyFleet(pulumi.ComponentResource):
    """A ``TenantKey`` per tenant. Each tenant's resources are named after its id, never its
    position, so adding or removing a tenant touches that tenant's resources only."""

    keys: pulumi.Output[dict]
    aliases: pulumi.Output[dict]
    tenants: dict[str, TenantKey]

    def __init__(self, name: str, *, tenants: Optional[Sequence[Any]] = None, tenants_file: Optional[str] = None,
                 defaults: Optional[Mapping[str, Any]] = None, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        if (tenants is None) == (tenants_file is None):
            raise ComponentInputError("TenantKeyFleet: give exactly one of tenants=[...] or tenants_file=PATH")
        file_defaults: dict[str, Any] = {}
        if tenants_file is not None:
            tenants, file_defaults = load_tenants_file(tenants_file)
        merged_defaults = {**file_defaults, **dict(defaults or {})}
        self._check_settings(merged_defaults, "TenantKeyFleet.defaults")
        specs: dict[str, dict[str, Any]] = {}
        for i, entry in enumerate(tenants or []):
            tenant, overrides = self._entry(entry, i)
            if tenant in specs:
                raise ComponentInputError(f"TenantKeyFleet.tenants[{i}]: tenant {tenant!r} is listed twice")
            self._check_settings(overrides, f"TenantKeyFleet(tenant={tenant!r})")
            specs[tenant] = {**merged_defaults, **overrides}
        super().__init__(TYPE, name, None, opts)
        self.tenants = {t: TenantKey(f"{name}-{t}", tenant=t, **s, opts=pulumi.ResourceOptions(parent=self))
                        for t, s in specs.items()}
        self.keys = pulumi.Output.from_input({t: k.key_arn for t, k in self.tenants.items()})
        self.aliases = pulumi.Output.from_input({t: k.alias_name for t, k in self.tenants.items()})
        self.register_outputs({"keys": self.keys, "aliases": self.aliases})

    @staticmethod
    def _entry(entry: Any, i: int) -> tuple[str, dict[str, Any]]:
        if isinstance(entry, str):
            return entry, {}
        if isinstance(entry, Mapping):
            d = dict(entry)
            tenant = d.pop("tenant", None) or d.pop("id", None)
            if not isinstance(tenant, str):
                raise ComponentInputError(f"TenantKeyFleet.tenants[{i}]: needs a tenant id ('tenant: <id>')")
            return tenant, d
        raise ComponentInputError(f"TenantKeyFleet.tenants[{i}]: expected a tenant id or a mapping, "
                                  f"got {type(entry).__name__}")

    @staticmethod
    def _check_settings(settings: Mapping[str, Any], at: str) -> None:
        unknown = set(settings) - _SETTINGS
        if unknown:
            raise ComponentInputError(f"{at}: unknown setting(s) {', '.join(sorted(unknown))}; "
                                      f"known: {', '.join(sorted(_SETTINGS))}")
