"""The HTTP front door: KMS JSON 1.1 over HTTP/1.1 with keep-alive.

An asyncio protocol (uvloop) with httptools' C parser: requests are answered in the event
loop (the work per request is microseconds of crypto and a cached SQLite read), except the
CPU-heavy ones (RSA, ML-DSA: milliseconds), which a thread pool answers so the loop keeps
serving every other connection. The requests read in one turn of the loop are answered
together once every connection's input is read, and their answers go out together after one
write of their audit records. ``run`` forks one worker process per CPU by default, all
sharing the data dir; the parent accepts connections and hands them to the workers in turn.
Parser errors get a 400 and a closed connection, never a traceback.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import gc
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import httptools

from kms_iac.backend.clock import OffsetClock
from kms_iac.backend.core import Backend, Offload
from kms_iac.backend.errors import KMSError, KMSInternalException, ValidationException
from kms_iac.backend.protocol import CONTENT_TYPE, MAX_BODY_BYTES, answer, encode, error_response

log = logging.getLogger("kms_iac.backend")
ADMIN_TARGET = "KmsIacAdmin."
MAX_HEADER_BYTES = 64 * 1024  # request line + headers; httptools itself buffers without a limit
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 413: b"Payload Too Large", 500: b"Internal Server Error"}
_STATUS_LINES = {status: b"HTTP/1.1 %d %s\r\n" % (status, reason) for status, reason in _REASONS.items()}
_HEADER_NAMES: dict[bytes, str] = {}  # header names as sent -> lower-cased text
_JSON_FIELDS = b"Content-Type: " + CONTENT_TYPE.encode() + b"\r\nx-amzn-RequestId: "


def _response(status: int, headers: dict[str, str], body: bytes, keep_alive: bool) -> bytes:
    head = _STATUS_LINES.get(status) or b"HTTP/1.1 %d Error\r\n" % status
    if len(headers) == 2 and headers.get("Content-Type") == CONTENT_TYPE and "x-amzn-RequestId" in headers:
        fields = _JSON_FIELDS + headers["x-amzn-RequestId"].encode("latin-1") + b"\r\n"  # every KMS answer
    else:
        fields = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")
    tail = b"Content-Length: %d\r\n\r\n" % len(body) if keep_alive else \
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    return head + fields + tail + body


class _Request:
    """One parsed request, kept while an earlier one on its connection is still being answered."""

    __slots__ = ("method", "path", "headers", "body", "keep_alive", "error")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes, keep_alive: bool,
                 error: KMSError | None = None) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.error = error  # answered with this error (keep_alive False: and the connection closed)


class KmsHttpProtocol(asyncio.Protocol):
    """One client connection.

    Requests are answered in the event loop, in order. One whose work would block the loop
    for milliseconds (RSA, ML-DSA: see :meth:`kms_iac.backend.core.Call.compute`) is answered on
    the server's thread pool instead; until it is, reading pauses and requests already parsed
    behind it (pipelining) wait in ``waiting``, so answers keep the order of the requests.
    """

    def __init__(self, server: "KmsServer") -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = "127.0.0.1"
        self.waiting: collections.deque[_Request] | None = None  # not None while a request is on the pool
        self.closing = False  # its last answer is queued with the close: answer nothing more
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
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
        """Answer ``err`` and close, after the requests parsed before it (queued like a request)."""
        self.server.defer(self, _Request("", "", {}, b"", False, err))

    def _send(self, data: bytes, close: bool) -> None:
        if close:
            self.closing = True
        self.server.send(self.transport, data, close)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_headers_complete(self) -> None:
        self.in_body = True

    def on_header(self, name: bytes, value: bytes) -> None:
        key = _HEADER_NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_HEADER_NAMES) < 256:  # the few names clients send, remembered; never an unbounded cache
                _HEADER_NAMES[name] = key
        self.headers[key] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body_len += len(body)
        if self.body_len > MAX_BODY_BYTES:
            self.too_large = True
            self.body = []
        elif not self.too_large:
            self.body.append(body)

    def on_message_complete(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.closing:
            return
        parser = self.parser
        if parser.should_upgrade():
            return  # data_received answers it once, when httptools raises HttpParserUpgrade
        body = self.body
        request = _Request(parser.get_method().decode("latin-1"), self.url.decode("latin-1").split("?", 1)[0],
                           self.headers, body[0] if len(body) == 1 else b"".join(body),
                           parser.should_keep_alive() and not self.too_large)
        if self.too_large:
            request.error = ValidationException(
                f"Request body of {self.body_len} bytes exceeds the maximum of {MAX_BODY_BYTES} bytes.")
        self.server.defer(self, request)

    # answering
    def take(self, request: _Request) -> None:
        """Answer a request of this turn, or queue it behind one the pool is answering."""
        if self.waiting is not None:
            self.waiting.append(request)
        else:
            self._answer(request)

    def _answer(self, request: _Request) -> bool:
        """Answer now, or hand the request to the pool (False: the pool's answer comes later)."""
        transport = self.transport
        if transport is None or transport.is_closing() or self.closing:
            return True
        if request.error is not None:
            status, rheaders, rbody = error_response(request.error, "-")
        else:
            try:
                status, rheaders, rbody = self.server.respond(request, self.peer, self.server.heavy)
            except Offload:
                if self.waiting is None:
                    self.waiting = collections.deque()
                    transport.pause_reading()
                future = asyncio.get_running_loop().run_in_executor(self.server.pool, self.server.respond,
                                                                    request, self.peer, None)
                future.add_done_callback(lambda f: self._answered(request, f))
                return False
        self._send(_response(status, rheaders, rbody, request.keep_alive), close=not request.keep_alive)
        return True

    def _answered(self, request: _Request, future: "asyncio.Future") -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.closing:
            return
        try:
            status, rheaders, rbody = future.result()
        except Exception:  # answer() never raises but for bugs: still a KMS answer
            log.exception("internal error answering a request")
            status, rheaders, rbody = error_response(KMSInternalException("An internal error has occurred."), "-")
        self._send(_response(status, rheaders, rbody, request.keep_alive), close=not request.keep_alive)
        if not request.keep_alive:
            return
        waiting = self.waiting
        while waiting:
            if not self._answer(waiting.popleft()):
                return  # on the pool: its answer goes on from here
        self.waiting = None
        if not transport.is_closing() and not self.closing:
            transport.resume_reading()


class KmsServer:
    """Owns the backend and the listening socket; stops cleanly on SIGTERM/SIGINT."""

    def __init__(self, backend: Backend, host: str = "127.0.0.1", port: int = 4599, clock_control: bool = False,
                 sock: socket.socket | None = None, handoff: socket.socket | None = None) -> None:
        self.backend = backend
        self.sock = sock
        self.handoff = handoff  # a worker's end of its socket pair: connections the parent accepted (see run())
        self.host = host
        self.port = port
        self.clock_control = clock_control
        self._server: asyncio.base_events.Server | None = None
        self._flusher: asyncio.Task | None = None
        self.pool: ThreadPoolExecutor | None = None  # CPU-heavy requests (RSA, ML-DSA), made in serve()
        self.heavy: set[tuple[str, str]] = set()  # (operation, KeyId) answered on the pool before
        self._outbox: list[tuple[asyncio.Transport, bytes, bool]] = []  # answers of this loop turn
        self._parsed: list[tuple[KmsHttpProtocol, _Request]] = []  # requests read in this loop turn
        self._turn_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None  # serve()'s (get_running_loop asks getpid() each time)

    def defer(self, protocol: KmsHttpProtocol, request: _Request) -> None:
        """Queue a request read in this turn of the event loop. The turn's requests are answered
        together once every connection's input has been read (see :meth:`_end_turn`): one
        request's Python runs right after another's, with the interpreter's working set still
        in the CPU's caches, rather than after a socket read's trip through the kernel."""
        self._parsed.append((protocol, request))
        self._schedule_turn_end()

    def send(self, transport: asyncio.Transport | None, data: bytes, close: bool) -> None:
        """Queue an answer. Queued answers go out at the end of this turn of the event loop, after
        one write of their requests' audit records (see :mod:`kms_iac.backend.audit`)."""
        if transport is None:
            return
        self._outbox.append((transport, data, close))
        self._schedule_turn_end()

    def _schedule_turn_end(self) -> None:
        if not self._turn_scheduled:
            self._turn_scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._end_turn)

    def _end_turn(self) -> None:
        """Answer the turn's requests in the order they came, then write their audit records once
        and send the answers."""
        parsed, self._parsed = self._parsed, []
        for protocol, request in parsed:
            try:
                protocol.take(request)
            except Exception:  # a bug, not a bad request: still a KMS answer, and the turn goes on
                log.exception("internal error answering a request")
                protocol.take(_Request("", "", {}, b"", False, KMSInternalException("An internal error has occurred.")))
        self._turn_scheduled = False  # (after the answers: those sent just now go out below)
        outbox, self._outbox = self._outbox, []
        self.backend.audit.flush()  # before any answer leaves: no answer without its record
        for transport, data, close in outbox:
            if not transport.is_closing():
                transport.write(data)
                if close:
                    transport.close()

    def respond(self, request: "_Request", peer: str, heavy: set | None) -> tuple[int, dict[str, str], bytes]:
        """One request's answer (headers lower-cased); Offload on the event loop for heavy work."""
        target = request.headers.get("x-amz-target", "")
        if target.startswith(ADMIN_TARGET):
            return self.admin(target[len(ADMIN_TARGET):], request.body)
        return answer(self.backend, request.headers, request.body, peer, request.method, request.path, heavy)

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

    def _take_connections(self) -> None:
        """Serve the connections the parent handed over (one message, one descriptor each)."""
        loop = self._loop
        assert loop is not None and self.handoff is not None
        while True:
            try:
                message, fds, _flags, _address = socket.recv_fds(self.handoff, 1, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message, fds = b"", []
            if not message and not fds:  # the parent is gone (and this worker goes with it)
                loop.remove_reader(self.handoff.fileno())
                return
            for fd in fds:
                loop.create_task(self._adopt(socket.socket(fileno=fd)))

    async def _adopt(self, conn: socket.socket) -> None:
        """Serve one handed-over connection (closed if the loop cannot take it, e.g. already reset)."""
        try:
            conn.setblocking(False)
            await self._loop.connect_accepted_socket(lambda: KmsHttpProtocol(self), conn)  # type: ignore[union-attr]
        except OSError:
            conn.close()

    async def _flush_usage_periodically(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.backend.flush_usage()
            except Exception:  # the store is busy or closing; try again next tick
                pass

    async def serve(self, ready_line: bool = True) -> None:
        loop = self._loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        if self.handoff is not None:  # a worker: the parent accepts, this takes what it hands over
            self.handoff.setblocking(False)
            loop.add_reader(self.handoff.fileno(), self._take_connections)
        elif self.sock is not None:  # bound by run() before the data dir was opened
            self._server = await loop.create_server(lambda: KmsHttpProtocol(self), sock=self.sock, backlog=1024)
        else:
            self._server = await loop.create_server(lambda: KmsHttpProtocol(self), self.host, self.port,
                                                    reuse_address=True, backlog=1024)
        # Everything made so far (modules, the service model, the backend) lives as long as the
        # server: moved out of the collector's sight, so its full collections, which requests'
        # surviving objects set off now and then, do not walk it all each time
        gc.collect()
        gc.freeze()
        # CPU-heavy requests go to threads (cryptography releases the GIL in RSA and ML-DSA), so
        # the loop keeps answering everything else; as many as cores, as the loop needs one too
        self.pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="kms-iac-heavy")
        self.backend.offload_from = threading.get_ident()
        self.backend.audit.hold()  # records of a loop turn's requests: one write, before their answers
        if self._server is not None:
            self.port = self._server.sockets[0].getsockname()[1]
        if ready_line:
            print(f"listening on http://{self.host}:{self.port}", flush=True)
        self._flusher = asyncio.create_task(self._flush_usage_periodically())
        await stop.wait()
        if self._server is not None:
            self._server.close()
        if self.handoff is not None:
            loop.remove_reader(self.handoff.fileno())
            self.handoff.close()
        self._flusher.cancel()
        if self._server is not None and sys.version_info < (3, 12):
            await self._server.wait_closed()
        self.pool.shutdown(wait=True)  # requests on the pool finish before the store closes
        self.backend.offload_from = None
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


def _die_with(parent: int) -> None:
    """Make this worker die when the server process does (Linux: PR_SET_PDEATHSIG), so a server
    killed with SIGKILL leaves no worker holding its port and data dir, as a single process would."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the parent's SIGTERM handler still stops workers on a clean exit
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _handoff_pair() -> tuple[socket.socket, socket.socket]:
    """The parent's and a worker's ends of the socket pair that connections are passed over:
    message-preserving where the system has it (Linux), a stream elsewhere (macOS); either way
    each connection travels as one byte carrying one descriptor, and is read one byte at a time."""
    try:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except (AttributeError, OSError):
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def _hand_out(listener: socket.socket, workers: list[socket.socket]) -> None:
    """The parent's accept loop: every connection goes to the next worker in turn.

    Workers sharing one listening socket each accepted what they could: the first to wake took
    every connection waiting, so a client opening 16 connections at once often had all of them
    on one worker, working one core while the other idled (half the throughput, by chance).
    Handing connections out in turn (as Node's cluster module does on Linux, for the same
    reason) spreads them evenly. Keep-alive clients pay this once per connection."""
    listener.setblocking(True)
    turn = 0
    while True:
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.05)  # out of descriptors or memory: let the workers close some
            elif exc.errno == errno.EBADF:
                return
            continue
        with conn:
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            for _ in range(len(workers)):  # a worker that is gone is skipped
                worker = workers[turn % len(workers)]
                turn += 1
                try:
                    socket.send_fds(worker, [b"c"], [conn.fileno()])
                    break
                except OSError:
                    continue


def run(make_backend: Callable[[], Backend], host: str, port: int, clock_control: bool = False, workers: int = 1) -> None:
    """Serve until SIGTERM/SIGINT.

    The socket is bound first (:class:`ListenError` if it cannot be), then the backend opens
    its data dir (:class:`~kms_iac.backend.datadir.DataDirError` if it cannot be used): either
    failure leaves the data dir as it was. With ``workers > 1`` the parent binds the socket,
    opens the data dir once (so it is checked, and created, before any worker starts), forks
    that many worker processes (each with its own Backend on the same data dir, which the store
    makes safe), then accepts connections and hands each to the next worker in turn over a
    socket pair (:func:`_hand_out`), and prints the ready line.
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
    parent = os.getpid()
    pairs = [_handoff_pair() for _ in range(workers)]
    for index in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _die_with(parent)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into SIGTERM for us
                sock.close()
                for n, (ours, theirs) in enumerate(pairs):
                    ours.close()
                    if n != index:
                        theirs.close()
                handoff = pairs[index][1]
                asyncio.run(KmsServer(make_backend(), host, port, clock_control, handoff=handoff).serve(ready_line=False))
            except BaseException:  # noqa: BLE001 - a worker must never return into the parent's code
                log.exception("worker failed")
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    bound_port = sock.getsockname()[1]
    for _ours, theirs in pairs:
        theirs.close()
    threading.Thread(target=_hand_out, args=(sock, [ours for ours, _ in pairs]), name="kms-iac-accept",
                     daemon=True).start()

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
