"""The HTTP front door: KMS JSON 1.1 over HTTP/1.1 with keep-alive.

An asyncio protocol with httptools' C parser: requests are answered in the event loop
(the work per request is microseconds of crypto and a cached SQLite read), which is
what lets one Python process outrun moto's threaded WSGI server. Parser errors get a
400 and a closed connection, never a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import os
import signal
import socket
import sys
from typing import Callable

import httptools

from kms_iac.backend.clock import OffsetClock
from kms_iac.backend.core import Backend
from kms_iac.backend.errors import KMSError, KMSInternalException, ValidationException
from kms_iac.backend.protocol import MAX_BODY_BYTES, encode, error_response, handle_http

log = logging.getLogger("kms_iac.backend")
ADMIN_TARGET = "KmsIacAdmin."
MAX_HEADER_BYTES = 64 * 1024  # request line + headers; httptools itself buffers without a limit
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 413: b"Payload Too Large", 500: b"Internal Server Error"}


def _response(status: int, headers: dict[str, str], body: bytes, keep_alive: bool) -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Error"))]
    for k, v in headers.items():
        lines.append(f"{k}: {v}".encode("latin-1"))
    lines.append(b"Content-Length: %d" % len(body))
    if not keep_alive:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class KmsHttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: "KmsServer") -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = "127.0.0.1"
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.body_len = 0
        self.too_large = False
        self.header_bytes = 0
        self.in_body = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = peer[0]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ValidationException("HTTP upgrade is not supported."))
        except httptools.HttpParserCallbackError:  # our own callback raised: a bug, not a bad request
            log.exception("internal error answering a request")
            self._fail(KMSInternalException("An internal error has occurred."))
        except httptools.HttpParserError:
            self._fail(ValidationException("Malformed HTTP request."))
            return
        if not self.in_body:  # still in the request line or headers: bound what httptools buffers
            self.header_bytes += len(data)
            if self.header_bytes > MAX_HEADER_BYTES:
                self._fail(ValidationException(f"Request line and headers exceed {MAX_HEADER_BYTES} bytes."))

    def _fail(self, err: KMSError) -> None:
        if self.transport is not None and not self.transport.is_closing():
            status, headers, body = error_response(err, "-")
            self.transport.write(_response(status, headers, body, keep_alive=False))
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_headers_complete(self) -> None:
        self.in_body = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body_len += len(body)
        if self.body_len > MAX_BODY_BYTES:
            self.too_large = True
            self.body = []
        elif not self.too_large:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.parser.should_upgrade():
            return  # data_received answers it once, when httptools raises HttpParserUpgrade
        keep_alive = self.parser.should_keep_alive()
        method = self.parser.get_method().decode("latin-1")
        headers = {k.lower(): v for k, v in self.headers}
        if self.too_large:
            err = ValidationException(f"Request body of {self.body_len} bytes exceeds the maximum of {MAX_BODY_BYTES} bytes.")
            status, rheaders, rbody = error_response(err, "-")
            keep_alive = False
        elif headers.get("x-amz-target", "").startswith(ADMIN_TARGET):
            status, rheaders, rbody = self.server.admin(headers["x-amz-target"][len(ADMIN_TARGET):], b"".join(self.body))
        else:
            path = self.url.decode("latin-1").split("?", 1)[0]
            status, rheaders, rbody = handle_http(self.server.backend, headers, b"".join(self.body), self.peer, method, path)
        self.transport.write(_response(status, rheaders, rbody, keep_alive))
        if not keep_alive:
            self.transport.close()


class KmsServer:
    """Owns the backend and the listening socket; stops cleanly on SIGTERM/SIGINT."""

    def __init__(self, backend: Backend, host: str = "127.0.0.1", port: int = 4599, clock_control: bool = False,
                 sock: socket.socket | None = None) -> None:
        self.backend = backend
        self.sock = sock
        self.host = host
        self.port = port
        self.clock_control = clock_control
        self._server: asyncio.base_events.Server | None = None
        self._flusher: asyncio.Task | None = None

    def admin(self, action: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Test-only controls (enabled with ``--clock-control``): move the backend's clock."""
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        if not self.clock_control or not isinstance(self.backend.clock, OffsetClock):
            return 400, headers, encode({"__type": "UnknownOperationException"})
        try:
            doc = json.loads(body or b"{}")
            if action == "AdvanceClock":
                seconds = float(doc.get("Seconds", 0))
                if not math.isfinite(seconds) or not 0 <= self.backend.clock.now() + seconds < 253402300800:
                    return 400, headers, encode({"__type": "ValidationException",
                                                 "message": "Seconds must keep the clock between 1970 and 9999"})
                now = self.backend.clock.advance(seconds)
                return 200, headers, encode({"Now": now})
            if action == "GetClock":
                return 200, headers, encode({"Now": self.backend.clock.now()})
        except (ValueError, TypeError, AttributeError):
            return 400, headers, encode({"__type": "SerializationException", "message": "Bad admin request"})
        return 400, headers, encode({"__type": "UnknownOperationException"})

    async def _flush_usage_periodically(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.backend.flush_usage()
            except Exception:  # the store is busy or closing; try again next tick
                pass

    async def serve(self, ready_line: bool = True) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        if self.sock is not None:  # bound by run() (before the data dir was opened), or a worker's inherited one
            self._server = await loop.create_server(lambda: KmsHttpProtocol(self), sock=self.sock, backlog=1024)
        else:
            self._server = await loop.create_server(lambda: KmsHttpProtocol(self), self.host, self.port,
                                                    reuse_address=True, backlog=1024)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        if ready_line:
            print(f"listening on http://{self.host}:{self.port}", flush=True)
        self._flusher = asyncio.create_task(self._flush_usage_periodically())
        await stop.wait()
        self._server.close()
        self._flusher.cancel()
        await self._server.wait_closed() if sys.version_info < (3, 12) else None
        self.backend.close()


def _install_uvloop() -> None:
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass


class ListenError(Exception):
    """The server cannot listen on HOST:PORT. ``bad_address``: the host is not an address of this
    machine (a usage mistake) rather than the port being taken or forbidden."""

    def __init__(self, message: str, bad_address: bool) -> None:
        super().__init__(message)
        self.bad_address = bad_address


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening, non-blocking socket on ``host:port``, or :class:`ListenError` saying why not.

    Bound before the backend opens its data dir, so a wrong address or a taken port changes
    nothing on disk.
    """
    if not host.strip():
        raise ListenError("--host is empty; use an IP address of this machine (127.0.0.1, 0.0.0.0 for all "
                          "interfaces, ::1) or a name resolving to one", bad_address=True)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        # IPv4 first for names with both (localhost): what clients given "localhost" try and
        # what this server always listened on
        family, kind, proto, _, address = next((a for a in found if a[0] == socket.AF_INET), found[0])
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise ListenError(f"--host {host!r} is not an address to listen on ({reason}); use an IP address of this "
                          "machine (127.0.0.1, 0.0.0.0 for all interfaces, ::1) or a name resolving to one",
                          bad_address=True) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        where = f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(f"cannot listen on {where}: the port is already in use; stop the program using it or "
                              "choose another --port (0 picks a free one)", bad_address=False) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ListenError(f"cannot listen on {where}: {host} is not an address of this machine; use one of its "
                              "addresses (127.0.0.1, 0.0.0.0 for all interfaces)", bad_address=True) from None
        if exc.errno == errno.EACCES:
            raise ListenError(f"cannot listen on {where}: permission denied (ports below 1024 need privileges); "
                              "choose a --port above 1023", bad_address=False) from None
        raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}; check --host and --port",
                          bad_address=False) from None
    sock.setblocking(False)
    return sock


def run(make_backend: Callable[[], Backend], host: str, port: int, clock_control: bool = False, workers: int = 1) -> None:
    """Serve until SIGTERM/SIGINT.

    The socket is bound first (:class:`ListenError` if it cannot be), then the backend opens
    its data dir (:class:`~kms_iac.backend.datadir.DataDirError` if it cannot be used): either
    failure leaves the data dir as it was. With ``workers > 1`` the parent binds the socket,
    opens the data dir once (so it is checked, and created, before any worker starts), forks
    that many worker processes (each with its own Backend on the same data dir, which the store
    makes safe) and prints the ready line; the kernel spreads connections over the workers.
    """
    _install_uvloop()
    sock = bind_socket(host, port)
    try:
        backend = make_backend()
    except BaseException:
        sock.close()
        raise
    if workers <= 1:
        asyncio.run(KmsServer(backend, host, port, clock_control, sock=sock).serve())
        return
    backend.close()  # checked and created; each worker opens its own (SQLite connections must not cross fork)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM for us
                asyncio.run(KmsServer(make_backend(), host, port, clock_control, sock=sock).serve(ready_line=False))
            except BaseException:  # noqa: BLE001 - a worker must never return into the parent's code
                log.exception("worker failed")
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    bound_port = sock.getsockname()[1]
    sock.close()

    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    print(f"listening on http://{host}:{bound_port}", flush=True)
    failed = False
    for pid in children:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        failed |= os.waitstatus_to_exitcode(status) != 0
        forward(signal.SIGTERM, None)  # one worker gone: stop the others too
    sys.exit(1 if failed else 0)
