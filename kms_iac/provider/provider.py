"""The provider: routes the engine's requests to one handler per resource type.

Every failure reaches the engine as one line naming the resource, what failed and why
(``kms-iac:index:Alias orders: UpdateAlias failed: ValidationException: ...``); a target
that cannot work fails Configure (see :meth:`Target.check_usable`).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import traceback
from typing import Callable

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

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, NoCredentialsError

from kms_iac.provider.engine_log import EngineLog
from kms_iac.provider.errors import ProviderError
from kms_iac.provider.orphans import URN_TAG, OrphanIndex
from kms_iac.provider.props import UNKNOWN, unwrap, unwrap_map, wrap_map
from kms_iac.provider.resources import HANDLERS
from kms_iac.provider.resources.base import ResourceHandler, kms_error
from kms_iac.provider.resources.hsm_cluster import HsmClusterHandler
from kms_iac.provider.schema import build_schema
from kms_iac.provider.spec import check_types, coerce, diff
from kms_iac.provider.target import Target, caller_identity, connection_reason


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


def _label(token: str, name: str) -> str:
    """How messages name a resource: its own type token (not its parents') and its name."""
    return f"{token.rsplit('$', 1)[-1]} {name}".rstrip()


class KmsIacProvider(Provider):
    def __init__(self, engine_address: str | None = None) -> None:
        self.target = Target("local")
        self._client = None
        self._client_lock = threading.Lock()
        self.log = EngineLog(engine_address)
        self.orphans = OrphanIndex()
        # URN -> what to do once the engine has received that Create's answer (see handed_over)
        self._handing_over: dict[str, Callable[[], None]] = {}
        self._handing_over_lock = threading.Lock()

    async def _run(self, kind: str, token: str, label: str, urn: str, fn, *args):
        """A handler call in a thread, with any failure turned into one ProviderError line."""
        try:
            return await _timed(kind, token, fn, *args)
        except ProviderError:
            raise
        except ClientError as exc:  # a KMS refusal a handler did not word itself
            raise kms_error(label, exc.operation_name, exc) from None
        except NoCredentialsError:
            raise ProviderError(f"{label}: {kind} failed: no AWS credentials for {self.target.describe()}") from None
        except ConnectionError as exc:
            raise ProviderError(f"{label}: {kind} failed: cannot reach {self.target.describe()}: "
                                f"{connection_reason(exc)}") from None
        except BotoCoreError as exc:
            raise ProviderError(f"{label}: {kind} failed: {exc}") from None
        except Exception as exc:  # a bug: one line for the user, the traceback for --debug
            self.log.debug(urn, "".join(traceback.format_exception(exc)))
            raise ProviderError(f"{label}: {kind} failed: {type(exc).__name__}: {exc}") from None

    # -- configuration ---------------------------------------------------------------

    async def get_schema(self, request: GetSchemaRequest) -> GetSchemaResponse:
        return GetSchemaResponse(schema=json.dumps(build_schema()))

    @staticmethod
    def _config(variables: dict[str, str], args: dict) -> tuple[dict[str, str], bool]:
        """The provider's settings, and whether all of them are known (a preview may not know some yet)."""
        cfg = {k.split(":", 1)[-1]: v for k, v in (variables or {}).items()}
        known = True
        for k, v in (args or {}).items():
            value = unwrap(v)
            if value is UNKNOWN:
                known = False
            elif isinstance(value, str) and value:
                cfg[k] = value
        return cfg, known

    async def check_config(self, request: CheckRequest) -> CheckResponse:
        values, _ = unwrap_map(request.new_inputs)
        try:
            Target.from_config({k: v for k, v in values.items() if isinstance(v, str)})
        except ValueError as exc:
            return CheckResponse(inputs=request.new_inputs, failures=[CheckFailure("target", str(exc))])
        return CheckResponse(inputs=request.new_inputs)

    async def configure(self, request: ConfigureRequest) -> ConfigureResponse:
        """Point every handler at the target; fail here, in one line, when the target cannot work.

        Pulumi configures a provider for previews too, so a dead endpoint fails ``pulumi
        preview`` as well, before any resource is looked at: nothing a preview would show
        could be applied. A configuration not known yet (a preview of a provider whose
        settings come from other resources) is not probed.
        """
        cfg, known = self._config(request.variables, request.args)
        try:
            self.target = Target.from_config(cfg)
        except ValueError as exc:
            raise ProviderError(f"kms-iac provider: {exc}") from None
        if known:
            await asyncio.to_thread(self.target.check_usable)
        self._client = None
        for handler in HANDLERS.values():
            handler.regional = self.target.client  # type: ignore[method-assign]
            handler.log = self.log
            # Orphan keys are looked up where listing the keys is cheap, never on AWS (see orphans.py).
            handler.orphans = None if self.target.is_aws else self.orphans
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
            raise ProviderError(f"kms-iac provider: there is no function {request.tok}")
        identity = await self._run("invoke", request.tok, request.tok, "", lambda: caller_identity(self.kms()))
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
            raise ProviderError(f"kms-iac provider: there is no resource type {token}") from None

    async def check(self, request: CheckRequest) -> CheckResponse:
        handler = self._handler(request.type)
        news, secrets = self._values(handler, request.new_inputs)
        inputs, failures = check_types(handler.spec, news)
        failures += handler.validate(inputs)
        secrets |= {p.name for p in handler.spec.props if p.secret}
        return CheckResponse(inputs=wrap_map(inputs, secrets), failures=[CheckFailure(p, r) for p, r in failures])

    async def diff(self, request: DiffRequest) -> DiffResponse:
        handler = self._handler(request.type)
        self.orphans.claim(request.resource_id)  # a key the state knows is never an orphan
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
        label = _label(request.type, request.name)
        resource_id, state = await self._run("create", request.type, label, request.urn,
                                             lambda: handler.create(self.kms(), label, inputs, request.urn))
        self.orphans.created(resource_id)
        with self._handing_over_lock:
            self._handing_over[request.urn] = lambda: handler.handed_over(self.kms(), label, resource_id, request.urn,
                                                                          inputs)
        return CreateResponse(resource_id=resource_id, properties=wrap_map(state, secrets | self._secret_props(handler)))

    def create_answered(self, urn: str, received: bool) -> None:
        """Called by the gRPC service once a Create's answer was sent (``received``) or the engine
        went away first. Only a key the engine received stops being an orphan candidate: one
        whose answer was lost (the engine was killed) keeps its ``creating`` tag to be adopted."""
        with self._handing_over_lock:
            then = self._handing_over.pop(urn, None)
        if then is None or not received:
            return
        try:
            then()
        except Exception as exc:  # noqa: BLE001 - the create itself succeeded; say why the tag stayed
            self.log.warn(urn, f"the key's {URN_TAG} tag still says creating: {exc}")

    async def read(self, request: ReadRequest) -> ReadResponse:
        handler = self._handler(request.type)
        self.orphans.claim(request.resource_id)
        state, secrets = self._values(handler, request.properties)
        inputs, _ = self._values(handler, request.inputs)
        label = _label(request.type, request.name)
        state = await self._run("read", request.type, label, request.urn,
                                lambda: handler.read(self.kms(), label, request.resource_id, {**inputs, **state}))
        if state is None:
            return ReadResponse(resource_id="", properties={}, inputs={})
        new_inputs = {p.name: state[p.name] for p in handler.spec.inputs if p.name in state}
        secrets |= self._secret_props(handler)
        return ReadResponse(resource_id=request.resource_id, properties=wrap_map(state, secrets),
                            inputs=wrap_map(new_inputs, secrets))

    async def update(self, request: UpdateRequest) -> UpdateResponse:
        handler = self._handler(request.type)
        self.orphans.claim(request.resource_id)
        olds, _ = self._values(handler, request.olds)
        news, secrets = self._values(handler, request.news)
        changes, _ = diff(handler.spec, olds, news)
        if request.preview:
            return UpdateResponse(properties=wrap_map({**olds, **news}, secrets))
        label = _label(request.type, request.name)
        state = await self._run("update", request.type, label, request.urn,
                                lambda: handler.update(self.kms(), label, request.resource_id, olds, news, changes))
        return UpdateResponse(properties=wrap_map(state, secrets | self._secret_props(handler)))

    async def delete(self, request: DeleteRequest) -> None:
        handler = self._handler(request.type)
        if self.orphans.created_here(request.resource_id):
            # The old half of a replacement whose create adopted this very resource (an
            # alias kept, or a key left by a create that was interrupted just after it was
            # handed over): deleting it would delete the new one.
            self.log.warn(request.urn, f"kept {request.resource_id}: the replacement created in this deployment is "
                                       "this same resource, so deleting the old one would delete the new one")
            return
        self.orphans.claim(request.resource_id)
        state, _ = self._values(handler, request.properties)
        label = _label(request.type, request.name)
        await self._run("delete", request.type, label, request.urn,
                        lambda: handler.delete(self.kms(), label, request.resource_id, state))

    @staticmethod
    def _secret_props(handler: ResourceHandler) -> set[str]:
        return {p.name for p in handler.spec.props if p.secret}
