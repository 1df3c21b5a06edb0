"""The provider: routes the engine's requests to one handler per resource type."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

from pulumi.provider.experimental.provider import (
    CheckFailure,
    CheckRequest,
    CheckResponse,
    ConfigureRequest,
    ConfigureResponse,
    CreateRequest,
    CreateResponse,
    DeleteRequest,
    DiffRequest,
    DiffResponse,
    GetSchemaRequest,
    GetSchemaResponse,
    InvokeRequest,
    InvokeResponse,
    PropertyDiff,
    PropertyDiffKind,
    Provider,
    ReadRequest,
    ReadResponse,
    UpdateRequest,
    UpdateResponse,
)

from kms_iac.provider.engine_log import EngineLog
from kms_iac.provider.props import unwrap, unwrap_map, wrap_map
from kms_iac.provider.resources import HANDLERS
from kms_iac.provider.resources.base import ResourceHandler
from kms_iac.provider.resources.hsm_cluster import HsmClusterHandler
from kms_iac.provider.schema import build_schema
from kms_iac.provider.spec import check_types, coerce, diff
from kms_iac.provider.target import Target, caller_identity


GET_CALLER_IDENTITY = "kms-iac:index:getCallerIdentity"
_TIMINGS = os.environ.get("KMS_IAC_PROVIDER_TIMINGS")  # benchmarks: where to append per-call timings


async def _timed(kind: str, token: str, fn, *args):
    """Run a blocking handler call in a thread; with KMS_IAC_PROVIDER_TIMINGS set, record its duration."""
    start = time.time()
    try:
        return await asyncio.to_thread(fn, *args)
    finally:
        if _TIMINGS:
            with open(_TIMINGS, "a") as f:
                f.write(json.dumps({"op": kind, "type": token, "start": start, "end": time.time()}) + "\n")


class KmsIacProvider(Provider):
    def __init__(self, engine_address: str | None = None) -> None:
        self.target = Target("local")
        self._client = None
        self._client_lock = threading.Lock()
        self.log = EngineLog(engine_address)

    # -- configuration ---------------------------------------------------------------

    async def get_schema(self, request: GetSchemaRequest) -> GetSchemaResponse:
        return GetSchemaResponse(schema=json.dumps(build_schema()))

    @staticmethod
    def _config(variables: dict[str, str], args: dict) -> dict[str, str]:
        cfg = {k.split(":", 1)[-1]: v for k, v in (variables or {}).items()}
        for k, v in (args or {}).items():
            value = unwrap(v)
            if isinstance(value, str) and value:
                cfg[k] = value
        return cfg

    async def check_config(self, request: CheckRequest) -> CheckResponse:
        values, _ = unwrap_map(request.new_inputs)
        try:
            Target.from_config({k: v for k, v in values.items() if isinstance(v, str)})
        except ValueError as exc:
            return CheckResponse(inputs=request.new_inputs, failures=[CheckFailure("target", str(exc))])
        return CheckResponse(inputs=request.new_inputs)

    async def configure(self, request: ConfigureRequest) -> ConfigureResponse:
        self.target = Target.from_config(self._config(request.variables, request.args))
        self._client = None
        for handler in HANDLERS.values():
            handler.regional = self.target.client  # type: ignore[method-assign]
            if isinstance(handler, HsmClusterHandler):  # the local target's SoftHSM2 clusters live in its data dir
                handler.data_dir = self.target.local_data_dir()
        return ConfigureResponse(accept_secrets=True, supports_preview=True, accept_resources=True, accept_outputs=False)

    def kms(self):
        with self._client_lock:
            if self._client is None:
                self._client = self.target.client()
            return self._client

    # -- functions ---------------------------------------------------------------------

    async def invoke(self, request: InvokeRequest) -> InvokeResponse:
        """``kms-iac:index:getCallerIdentity``: the account the target acts in, so components
        can write the account-root statement of a key policy without being told the account."""
        if request.tok != GET_CALLER_IDENTITY:
            raise ValueError(f"kms-iac has no function {request.tok}")
        identity = await asyncio.get_running_loop().run_in_executor(None, caller_identity, self.kms())
        return InvokeResponse(return_value=wrap_map(identity, set()))

    # -- resources ---------------------------------------------------------------------

    @staticmethod
    def _values(handler: ResourceHandler, props: dict | None) -> tuple[dict, set[str]]:
        values, secrets = unwrap_map(props)
        return coerce(handler.spec, values), secrets

    @staticmethod
    def _handler(token: str) -> ResourceHandler:
        # The SDK passes the URN's type, which for a child of a component is qualified by its
        # parents' types ("kms-iac:index:TenantKey$kms-iac:index:Key"): the resource's own is last.
        token = token.rsplit("$", 1)[-1]
        try:
            return HANDLERS[token]
        except KeyError:
            raise ValueError(f"kms-iac has no resource type {token}") from None

    async def check(self, request: CheckRequest) -> CheckResponse:
        handler = self._handler(request.type)
        news, secrets = self._values(handler, request.new_inputs)
        inputs, failures = check_types(handler.spec, news)
        failures += handler.validate(inputs)
        secrets |= {p.name for p in handler.spec.props if p.secret}
        return CheckResponse(inputs=wrap_map(inputs, secrets), failures=[CheckFailure(p, r) for p, r in failures])

    async def diff(self, request: DiffRequest) -> DiffResponse:
        handler = self._handler(request.type)
        olds, _ = self._values(handler, request.old_state)
        news, _ = self._values(handler, request.new_inputs)
        ignored = set(request.ignore_changes or [])
        changes, replaces = diff(handler.spec, olds, news)
        changes = [c for c in changes if c not in ignored]
        replaces = [r for r in replaces if r not in ignored]
        if replaces:
            note = handler.replacement_note(olds)
            if note:
                self.log.warn(request.urn, note)
        detailed = {
            c: PropertyDiff(PropertyDiffKind.UPDATE_REPLACE if c in replaces else PropertyDiffKind.UPDATE, True)
            for c in changes
        }
        return DiffResponse(changes=bool(changes), replaces=replaces, diffs=changes, detailed_diff=detailed,
                            delete_before_replace=False)

    async def create(self, request: CreateRequest) -> CreateResponse:
        handler = self._handler(request.type)
        inputs, secrets = self._values(handler, request.properties)
        if request.preview:
            return CreateResponse(resource_id="", properties=wrap_map(handler.preview_outputs(inputs), secrets))
        resource_id, state = await _timed("create", request.type, handler.create, self.kms(), request.name, inputs)
        return CreateResponse(resource_id=resource_id, properties=wrap_map(state, secrets | self._secret_props(handler)))

    async def read(self, request: ReadRequest) -> ReadResponse:
        handler = self._handler(request.type)
        state, secrets = self._values(handler, request.properties)
        inputs, _ = self._values(handler, request.inputs)
        state = await _timed("read", request.type, handler.read, self.kms(), request.name, request.resource_id,
                             {**inputs, **state})
        if state is None:
            return ReadResponse(resource_id="", properties={}, inputs={})
        new_inputs = {p.name: state[p.name] for p in handler.spec.inputs if p.name in state}
        secrets |= self._secret_props(handler)
        return ReadResponse(resource_id=request.resource_id, properties=wrap_map(state, secrets),
                            inputs=wrap_map(new_inputs, secrets))

    async def update(self, request: UpdateRequest) -> UpdateResponse:
        handler = self._handler(request.type)
        olds, _ = self._values(handler, request.olds)
        news, secrets = self._values(handler, request.news)
        changes, _ = diff(handler.spec, olds, news)
        if request.preview:
            return UpdateResponse(properties=wrap_map({**olds, **news}, secrets))
        state = await _timed("update", request.type, handler.update, self.kms(), request.name, request.resource_id,
                             olds, news, changes)
        return UpdateResponse(properties=wrap_map(state, secrets | self._secret_props(handler)))

    async def delete(self, request: DeleteRequest) -> None:
        handler = self._handler(request.type)
        state, _ = self._values(handler, request.properties)
        await _timed("delete", request.type, handler.delete, self.kms(), request.name, request.resource_id, state)

    @staticmethod
    def _secret_props(handler: ResourceHandler) -> set[str]:
        return {p.name for p in handler.spec.props if p.secret}
