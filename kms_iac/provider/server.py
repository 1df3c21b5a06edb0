"""The provider's gRPC service: the Pulumi SDK's, with errors the engine shows as one clean line.

The SDK's service wraps every failure in ``Exception(f"{error}:\\n{traceback}")`` and lets
it escape, so gRPC reports ``Unexpected <class 'Exception'>: ...`` followed by Python
frames, and logs the exception again on the plugin's stderr (which the engine prints
too). Here each RPC ends a failure with ``context.abort``: the engine gets the
provider's own message (``<resource>: <what failed>: <why>``) as the gRPC status, and
nothing is written to stderr.
"""

from __future__ import annotations

import asyncio
import os
import sys

import grpc
from pulumi.provider.experimental.provider import Provider
from pulumi.provider.experimental.server import ProviderServicer
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import provider_pb2_grpc

from kms_iac.provider.errors import ProviderError

# The RPCs the SDK wraps with its traceback-appending decorator (Construct and Call have
# their own handling and are not served by this provider).
_RPCS = ("GetSchema", "CheckConfig", "DiffConfig", "Configure", "Invoke", "Check", "Diff", "Create", "Read",
         "Update", "Delete", "Parameterize")


def error_message(rpc: str, exc: BaseException) -> str:
    """The line the engine shows for a failed RPC."""
    # The SDK's wrapper raises a new Exception while handling the original: that is its context.
    if type(exc) is Exception and exc.__context__ is not None:
        exc = exc.__context__
    if isinstance(exc, ProviderError):
        return str(exc)
    return f"kms-iac provider: {rpc} failed: {type(exc).__name__}: {exc}"


def _one_line(rpc: str):
    sdk_method = getattr(ProviderServicer, rpc)

    async def method(self, request, context):
        try:
            return await sdk_method(self, request, context)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes the RPC's status
            await context.abort(grpc.StatusCode.UNKNOWN, error_message(rpc, exc))

    method.__name__ = rpc
    method.__doc__ = f"The SDK's {rpc}; a failure is reported as one line (see error_message)."
    return method


class KmsIacServicer(ProviderServicer):
    """The SDK's provider service with one-line errors, telling the provider whether each
    Create's answer reached the engine (``create_answered``)."""

    _create = _one_line("Create")

    async def Create(self, request, context):
        response = await self._create(request, context)
        answered = getattr(self._provider, "create_answered", None)
        if answered is not None and not request.preview:
            loop = asyncio.get_running_loop()

            def done(ctx) -> None:
                # Runs when the RPC ends: sent, or cancelled because the engine went away.
                received = not ctx.cancelled()
                loop.call_soon_threadsafe(self._later, answered, request.urn, received)

            context.add_done_callback(done)
        return response

    def _later(self, fn, *args) -> None:
        """Run a blocking follow-up in a thread, keeping a reference until it is done."""
        pending = self.__dict__.setdefault("_pending", set())
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        pending.add(task)
        task.add_done_callback(pending.discard)


for _rpc in _RPCS:
    if _rpc != "Create":
        setattr(KmsIacServicer, _rpc, _one_line(_rpc))


async def _stop_when_orphaned(server: grpc.aio.Server, period: float = 1.0) -> None:
    """Stop serving once the engine that started the plugin is gone.

    The engine starts plugins in their own process group, so a killed ``pulumi`` (a double
    Ctrl-C) leaves them running with nobody to answer; the plugin's parent then changes.
    Stopping lets calls in flight finish (a key being created is configured completely)
    and the process exit.
    """
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(period)
    await server.stop(grace=None)


def serve(servicer: ProviderServicer) -> None:
    """Serve ``servicer`` on a free loopback port and print the port: the plugin handshake."""

    async def run() -> None:
        server = grpc.aio.server(options=_GRPC_CHANNEL_OPTIONS)
        provider_pb2_grpc.add_ResourceProviderServicer_to_server(servicer, server)
        port = server.add_insecure_port(address="127.0.0.1:0")
        await server.start()
        sys.stdout.buffer.write(f"{port}\n".encode())
        sys.stdout.buffer.flush()
        watch = asyncio.ensure_future(_stop_when_orphaned(server))
        await server.wait_for_termination()
        watch.cancel()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


def main(args: list[str], version: str, provider: Provider, engine_address: str | None) -> None:
    serve(KmsIacServicer(args, version, provider, engine_address=engine_address))
