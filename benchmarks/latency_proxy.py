"""A TCP proxy that adds a fixed round-trip time: a local KMS server made to answer like a remote one.

Benchmarks use it to compare clients the way they would behave against AWS KMS, where a
request's time is mostly the network round trip. Every chunk is forwarded half the round trip
after it arrived (in order, without adding up: a request sent as headers and body is delayed
once, not twice). Run as a program in its own process, so the proxy never competes with the
measured client for the GIL::

    python benchmarks/latency_proxy.py --target 127.0.0.1:4599 --rtt-ms 20
    listening on http://127.0.0.1:PORT

SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def forward() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(forward())
    try:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await sender
    except (ConnectionError, asyncio.CancelledError):
        sender.cancel()
    finally:
        writer.close()


async def _serve(target_host: str, target_port: int, rtt: float) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w, rtt / 2), _pipe(server_r, client_w, rtt / 2),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--rtt-ms", type=float, required=True, help="round-trip time to add, in milliseconds")
    args = ap.parse_args()
    host, port = args.target.rsplit(":", 1)
    asyncio.run(_serve(host, int(port), args.rtt_ms / 1000))


if __name__ == "__main__":
    main()
