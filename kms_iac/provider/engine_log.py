"""Diagnostics shown by the Pulumi engine next to a resource (e.g. in ``pulumi preview``)."""

from __future__ import annotations

import grpc
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc


class EngineLog:
    def __init__(self, engine_address: str | None) -> None:
        self._stub = None
        if engine_address:
            self._stub = engine_pb2_grpc.EngineStub(grpc.insecure_channel(engine_address))

    def warn(self, urn: str, message: str) -> None:
        self._log(engine_pb2.WARNING, urn, message)

    def debug(self, urn: str, message: str) -> None:
        """Shown with ``pulumi ... --debug`` or ``-v``: where a Python traceback belongs."""
        self._log(engine_pb2.DEBUG, urn, message)

    def _log(self, severity: int, urn: str, message: str) -> None:
        if self._stub is None:
            return
        try:
            self._stub.Log(engine_pb2.LogRequest(severity=severity, message=message, urn=urn))
        except grpc.RpcError:
            pass  # diagnostics are best effort; never fail an operation over them
