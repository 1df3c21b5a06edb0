#!/usr/bin/env python3
"""Profile one kms-iac server worker under wrk load with py-spy, and print the top entries.

The server runs with ``--workers 1`` (its only process is the worker), wrk replays one
pre-signed request (as in bench_server.py), and ``py-spy record`` samples the worker for
the window. The collapsed stacks are summed into two tables: functions by *self* time
(where the CPU actually goes) and by *inclusive* time (what each layer costs, callees
included), as percentages of the samples.

py-spy comes from PyPI (``pip install py-spy``); it is installed into this interpreter's
environment when missing. Example::

    python benchmarks/profile_server.py --op Encrypt --seconds 10 [--principals] [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_server  # noqa: E402
import peers  # noqa: E402


def ensure_py_spy() -> str:
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists() and not shutil.which("py-spy"):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    return str(exe) if exe.exists() else str(shutil.which("py-spy"))


def _frame_name(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``file.py:func``; py-spy's raw frames carry the line."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{Path(path).name}:{name}" if path else name


def summarize(raw: str, top: int) -> str:
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    out = [f"{total} samples", "", f"top {top} by self time:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in self_time.most_common(top)]
    out += ["", f"top {top} by inclusive time:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--op", default="Encrypt", choices=bench_server.OPS)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--principals", action="store_true", help="serve with a principals file (authorization on)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    ap.add_argument("--unique-signatures", type=int, default=0, metavar="N",
                    help="cycle through N requests each signed on its own (as SDK clients sign) instead of one replayed")
    ap.add_argument("--raw", type=Path, help="also keep py-spy's collapsed stacks here")
    args = ap.parse_args()
    wrk = bench_server.ensure_wrk()
    spy = ensure_py_spy()
    work = Path(tempfile.mkdtemp(prefix="kms-profile-"))
    name = "kms-iac+authz" if args.principals else "kms-iac"
    server = bench_server.start_server(name, 1, work)
    try:
        specs = (args.op[len("Sign-"):],) if args.op.startswith("Sign-") else ()
        server.keys = bench_server.setup_keys(server, specs)
        kms_op, params = bench_server.op_request(args.op, server.keys)
        body, headers = bench_server.sign_request(server.url, kms_op, params, server.credentials)
        problem = bench_server.check_answer(args.op, server.keys, *bench_server.send(server.url, body, headers))
        if problem:
            raise SystemExit(f"{args.op}: {problem}")
        worker = peers.process_tree(server.handle.proc.pid)[-1]
        raw_path = work / "stacks.txt"
        script = bench_server.wrk_script_cycling([
            bench_server.sign_request(server.url, kms_op, params, server.credentials, nonce=str(n))
            for n in range(args.unique_signatures)]) if args.unique_signatures else None
        load = wrk_run = bench_server.WrkRun(wrk, server.url, body, headers, args.seconds + 2, args.connections, 1,
                                             script)
        time.sleep(1.0)  # profile the steady state, not the connection set-up
        subprocess.run([spy, "record", "--pid", str(worker), "--rate", str(args.rate), "--duration",
                        str(int(args.seconds)), "--format", "raw", "--output", str(raw_path), "--nonblocking"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = load.result()
        raw = raw_path.read_text()
        if args.raw:
            args.raw.write_text(raw)
        sent = f"{args.unique_signatures} requests each signed on its own" if args.unique_signatures else \
            "one request replayed"
        print(f"{name} {args.op}, --workers 1, wrk 1 thread {args.connections} connections, {sent}: "
              f"{result.ops_per_s:,.0f} ops/s, p99 {result.p99_us / 1e3:.2f} ms; load average "
              + " ".join(f"{v:.2f}" for v in os.getloadavg()))
        print(summarize(raw, args.top))
        del wrk_run
    finally:
        server.handle.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
