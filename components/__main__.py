"""kms-iac's components as a Pulumi component package, for Pulumi YAML (and any
other language) programs:

    # Pulumi.yaml of a YAML program
    packages:
      kms-iac: <path to this directory>     # or: pulumi package add <path>
    resources:
      orders:
        type: kms-iac:index:TenantKey
        properties: {tenant: orders, keyUsers: [...]}

The engine runs this directory as a plugin (PulumiPlugin.yaml, runtime python):
the Python language host starts ``python components/ ENGINE_ADDRESS``.

Why not just ``component_provider_host([TenantKey], "kms-iac")``: the components'
type tokens (``kms-iac:index:TenantKey``) belong to the same package as the
resources they create (``kms-iac:index:Key``, ``Alias``, ...), and the engine maps
a package name in ``packages:`` to ONE plugin, for every resource of that
package. So this plugin is the kms-iac provider (``KmsIacProvider``: schema,
config, Check/Diff/Create/Read/Update/Delete, getCallerIdentity) plus the
components: Construct goes to the SDK's ``ComponentProvider``, whose schema is
inferred from the components' ``args`` types and merged into the provider's.

The component classes are the ones in this package; the thin subclasses below
only give them the ``__init__(name, args, opts)`` shape and evaluated type
annotations the SDK's schema inference reads (the components are written with
keyword arguments and ``from __future__ import annotations``).
"""

import argparse
import inspect
import json
import sys
import typing
from typing import Optional

import pulumi
from pulumi.provider import server as component_server
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.experimental.provider import GetSchemaRequest, GetSchemaResponse

from kms_iac.components import tenant_key
from kms_iac.provider import PACKAGE, VERSION
from kms_iac.provider.provider import KmsIacProvider
from kms_iac.provider.server import KmsIacServicer, serve


def _evaluated(cls: type) -> dict:
    """The class's own annotations, evaluated (they are strings under postponed evaluation)."""
    namespace = vars(sys.modules[cls.__module__])

    def evaluate(annotation):
        if isinstance(annotation, typing.ForwardRef):  # how a TypedDict keeps a string annotation
            annotation = annotation.__forward_arg__
        return eval(annotation, namespace) if isinstance(annotation, str) else annotation  # noqa: S307

    return {k: evaluate(v) for k, v in cls.__dict__.get("__annotations__", {}).items()}


def _integers(args: dict, args_type: type) -> dict:
    """Numbers arrive as floats (the wire has only doubles); give ``int`` inputs back as ints."""
    ints = {k for k, t in args_type.__annotations__.items() if t is int}
    return {k: int(v) if k in ints and isinstance(v, float) and v.is_integer() else v for k, v in args.items()}


class TenantKeyArgs(tenant_key.TenantKeyArgs, total=False):
    """Inputs of kms-iac:index:TenantKey (see components/tenant_key.py)."""


TenantKeyArgs.__annotations__ = _evaluated(tenant_key.TenantKeyArgs)
# Required: the keyword arguments of TenantKey.__init__ without a default (tenant).
TenantKeyArgs.__required_keys__ = frozenset(
    p.name for p in inspect.signature(tenant_key.TenantKey.__init__).parameters.values()
    if p.name in TenantKeyArgs.__annotations__ and p.default is inspect.Parameter.empty)
TenantKeyArgs.__optional_keys__ = frozenset(TenantKeyArgs.__annotations__) - TenantKeyArgs.__required_keys__


class TenantKey(tenant_key.TenantKey):
    __doc__ = tenant_key.TenantKey.__doc__

    def __init__(self, name: str, args: TenantKeyArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(name, **_integers(args, TenantKeyArgs), opts=opts)


TenantKey.__annotations__ = {**_evaluated(tenant_key.TenantKey),
                             # region -> replica key ARN
                             "replica_arns": pulumi.Output[dict[str, str]]}

COMPONENTS = [TenantKey]


class _Provider(KmsIacProvider):
    """The kms-iac provider, whose schema also declares the components."""

    def __init__(self, engine_address: Optional[str], components: ComponentProvider) -> None:
        super().__init__(engine_address)
        self.components = components

    async def get_schema(self, request: GetSchemaRequest) -> GetSchemaResponse:
        schema = json.loads((await super().get_schema(request)).schema)
        inferred = json.loads(self.components.schema)
        schema["resources"].update(inferred.get("resources", {}))
        schema.setdefault("types", {}).update(inferred.get("types", {}))
        return GetSchemaResponse(schema=json.dumps(schema))


class _Servicer(KmsIacServicer):
    """The provider's gRPC service (one-line errors); Construct is the SDK's component provider service."""

    def __init__(self, args, provider: _Provider, engine_address: Optional[str]) -> None:
        super().__init__(args, VERSION, provider, engine_address=engine_address)
        self._components = component_server.ProviderServicer(provider.components, args,
                                                             engine_address=engine_address)

    async def Construct(self, request, context):
        return await self._components.Construct(request, context)


def main(args: list[str]) -> None:
    argp = argparse.ArgumentParser(description="kms-iac component package (Pulumi provider plugin)")
    argp.add_argument("engine", help="Pulumi engine address")
    known, _ = argp.parse_known_args(args)
    components = ComponentProvider(COMPONENTS, PACKAGE, version=VERSION)
    provider = _Provider(known.engine, components)
    serve(_Servicer(args, provider, known.engine))


if __name__ == "__main__":
    main(sys.argv[1:])
