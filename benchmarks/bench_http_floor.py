#!/usr/bin/env python3
"""What a kms-iac worker spends outside the KMS operation: its HTTP front end answering a
constant, beside the real server answering Encrypt, under the same wrk load.

The floor server is kms-iac's own ``KmsServer`` (uvloop, httptools, the answer batching
and audit flush of each loop turn) with ``respond`` replaced by a fixed 200 answer, so the
difference between the two rows is the request's own work: authentication, validation,
the operation, the audit record and the JSON. Both run one worker, alternated in rounds;
the CPU per request is the server process's own (user + system) over the wrk window.

    python benchmarks/bench_http_floor.py [--seconds 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_server  # noqa: E402
import peers  # noqa: E402

FLOOR_SERVER = """
import asyncio, sys
from pathlib import Path
from kms_iac.backend.core import Backend
from kms_iac.backend import server
ANSWER = (200, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "00000000-0000-4000-8000-000000000000"},
          b'{"CiphertextBlob":"AQICAHg=","KeyId":"arn:aws:kms:us-east-1:111122223333:key/x","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}')
srv = server.KmsServer(Backend(Path(sys.argv[2])), "127.0.0.1", int(sys.argv[1]))
srv.respond = lambda request, peer, heavy: ANSWER
server._install_uvloop()
asyncio.run(srv.serve())
"""


def start_floor(work: Path) -> peers.ServerHandle:
    port = peers.free_port()
    data_dir = work / "floor"
    data_dir.mkdir(parents=True, exist_ok=True)
    return peers._launch("http-floor", [sys.executable, "-c", FLOOR_SERVER, str(port), str(data_dir)], port,
                         cwd=peers.REPO_ROOT, ready_line="listening on http://")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args(argv)
    wrk = bench_server.ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="kms-bench-floor-"))
    real = bench_server.Server("kms-iac", peers.start_kms_iac(workers=1), bench_server.ANY_CREDENTIALS)
    floor = start_floor(work)
    rows: dict[str, list[tuple[float, float | None]]] = {"kms-iac Encrypt": [], "HTTP floor (constant answer)": []}
    try:
        keys = bench_server.setup_keys(real, ())
        op, params = bench_server.op_request("Encrypt", keys)
        for round_no in range(args.rounds):
            for name, handle in (("kms-iac Encrypt", real.handle), ("HTTP floor (constant answer)", floor)):
                body, headers = bench_server.sign_request(handle.url, op, params, real.credentials)
                before = handle.cpu_seconds()
                result = bench_server.WrkRun(wrk, handle.url, body, headers, args.seconds, args.connections, 1).result()
                after = handle.cpu_seconds()
                if result.errors:
                    raise RuntimeError(f"{name}: {result.errors} failed requests")
                cpu = None if before is None or after is None else (after - before) / result.ok * 1e6
                rows[name].append((result.ops_per_s, cpu))
                bench_server.log(f"  round {round_no + 1}/{args.rounds} {name}: {result.ops_per_s:,.0f} ops/s, "
                                 f"{cpu or 0:,.0f} µs CPU/req")
    finally:
        real.handle.stop()
        floor.stop()
    print(f"\nwrk 1 thread, {args.connections} connections, one pre-signed Encrypt replayed, "
          f"{args.seconds:g} s x {args.rounds} alternated rounds (medians); one worker each")
    print(f"{'server':<30} {'ops/s':>9} {'CPU µs/req':>11}")
    medians = {}
    for name, values in rows.items():
        ops = statistics.median(v[0] for v in values)
        cpus = [v[1] for v in values if v[1] is not None]
        cpu = statistics.median(cpus) if cpus else None
        medians[name] = cpu
        print(f"{name:<30} {ops:>9,.0f} {'-' if cpu is None else f'{cpu:,.0f}':>11}")
    real_cpu, floor_cpu = medians["kms-iac Encrypt"], medians["HTTP floor (constant answer)"]
    if real_cpu and floor_cpu:
        print(f"the HTTP front end's floor is {floor_cpu / real_cpu:.0%} of an Encrypt's CPU; "
              f"the request's own work {real_cpu - floor_cpu:,.0f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
