"""How long ``kms-iac scan live`` takes over 10,000 keys, against its peer: a plain sequential
boto3 walk of the same keys against the same server.

Setup: 10,000 keys seeded through the backend core (kms_iac.backend.seed: one transaction) with
a mix of key policies (well-governed, no root, wildcard, unconditioned partner account),
rotation on or off with 365- and 730-day periods, aliases on most keys, tenant tags on most,
some disabled, some multi-Region, and a hundred scheduled for deletion (through the embedded
client). Then ``kms-iac local serve --workers 2`` on that data dir, and, measured in the same run:

- ``scan live --endpoint``: the real command in a subprocess (process start-up included), reading
  every key (DescribeKey, GetKeyPolicy, GetKeyRotationStatus, ListResourceTags, ListGrants; ListKeys
  and ListAliases per region) on a thread pool and running all sixteen rules;
- the same with ``--no-grants`` (ListGrants left out: four calls per key), and with one thread
  (against a server on the same machine the client's CPU bounds the scan, and threads add GIL
  contention);
- ``scan live --data-dir``: the same command reading the same data dir with no server round trips,
  while the server is running on it;
- the peer: a sequential boto3 walk in this process (ListKeys paginated, then DescribeKey,
  GetKeyPolicy and GetKeyRotationStatus per key), which reads less and evaluates nothing.

Then, on a second server with --remote-keys keys behind benchmarks/latency_proxy.py (--rtt-ms of
round trip per request, like a KMS across a network), the endpoint scan against the same walk.

Prints each wall time, the CPU seconds the scanning process and the server used (on a shared
machine CPU is the steadier figure), keys per second, and the walk's wall time divided by each
scan's (above 1: the scan is faster). The server and the temporary data dir are removed at the
end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ACCOUNT = "111122223333"
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"
ROOT_STMT = {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": ROOT_ARN}, "Action": "kms:*", "Resource": "*"}
USE = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
POLICIES = [  # (weight, policy)
    (6, {"Version": "2012-10-17", "Statement": [
        ROOT_STMT,
        {"Sid": "Admins", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/KeyAdmin"},
         "Action": ["kms:Describe*", "kms:Put*", "kms:Enable*", "kms:Disable*", "kms:ScheduleKeyDeletion"], "Resource": "*"},
        {"Sid": "Users", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/App"}, "Action": USE,
         "Resource": "*", "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "t"}}}]}),
    (1, {"Version": "2012-10-17", "Statement": [
        {"Sid": "AdminOnly", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/KeyAdmin"},
         "Action": "kms:*", "Resource": "*"}]}),
    (1, {"Version": "2012-10-17", "Statement": [
        ROOT_STMT, {"Sid": "Everyone", "Effect": "Allow", "Principal": "*", "Action": ["kms:Decrypt"], "Resource": "*"}]}),
    (2, {"Version": "2012-10-17", "Statement": [
        ROOT_STMT, {"Sid": "Partner", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
                    "Action": USE, "Resource": "*"}]}),
]


def seed_keys(data_dir: Path, n: int, rng: random.Random) -> None:
    """``n`` keys through the backend core's seed (one transaction), then some deletions scheduled."""
    from kms_iac.backend.core import Backend
    from kms_iac.backend.embedded import embedded_client
    from kms_iac.backend.seed import seed

    weights = [w for w, _ in POLICIES]
    keys = []
    for i in range(n):
        multi = rng.random() < 0.05
        spec: dict = {
            "id": f"mrk-{uuid.uuid4().hex}" if multi else str(uuid.uuid4()), "multi_region": multi,
            "description": f"bench key {i}", "policy": rng.choices(POLICIES, weights)[0][1],
            "state": "Disabled" if rng.random() < 0.1 else "Enabled",
        }
        if rng.random() < 0.6:
            spec["rotation"] = {"enabled": True, "period_days": rng.choice([365, 365, 730])}
        if rng.random() < 0.7:
            spec["aliases"] = [f"alias/bench/tenant-{i}"]
        if rng.random() < 0.8:
            spec["tags"] = {"tenant": f"tenant-{i}", "team": rng.choice(["a", "b", "c"])}
        keys.append(spec)
    backend = Backend(data_dir, synchronous="NORMAL")
    try:
        seed(backend, {"keys": keys})
        kms = embedded_client(backend=backend)
        for spec in rng.sample(keys, max(1, n // 100)):
            kms.schedule_key_deletion(KeyId=spec["id"], PendingWindowInDays=30)
    finally:
        backend.close()


def start_server(data_dir: Path, workers: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kms_iac", "local", "serve", "--host", "127.0.0.1", "--port", "0", "--workers", str(workers),
         "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, line.split()[-1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tree_cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process and its direct children (the server's forked workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def timed_scan(out: Path, *source: str, concurrency: int) -> tuple[float, float, int]:
    """Wall time and CPU time of the real command, and the number of keys it reported on."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_ACCESS_KEY_ID": "AKIAKMSIACBENCH00001",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "kms_iac", "scan", "live", *source, "--format", "json",
                           "--fail-on", "CRITICAL", "--concurrency", str(concurrency), "-o", str(out)],
                          env=env, cwd=out.parent, capture_output=True, text=True)
    elapsed, cpu1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"scan live {' '.join(source)} failed: {proc.stderr.strip()}")
    keys = {f["resource"] for f in json.loads(out.read_text())["findings"]}
    return elapsed, cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, len(keys)


def sequential_walk(url: str) -> tuple[float, float, int]:
    """The peer: what a script would do with boto3, one call after another."""
    import boto3
    import botocore.config

    kms = boto3.client("kms", endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIAKMSIACBENCH00001",
                       aws_secret_access_key="bench", config=botocore.config.Config(retries={"mode": "standard"}))
    t0, cpu0 = time.perf_counter(), time.process_time()
    n = 0
    for page in kms.get_paginator("list_keys").paginate():
        for k in page["Keys"]:
            kms.describe_key(KeyId=k["KeyId"])
            json.loads(kms.get_key_policy(KeyId=k["KeyId"], PolicyName="default")["Policy"])
            kms.get_key_rotation_status(KeyId=k["KeyId"])
            n += 1
    return time.perf_counter() - t0, time.process_time() - cpu0, n


def start_proxy(url: str, rtt_ms: float) -> tuple[subprocess.Popen, str]:
    """benchmarks/latency_proxy.py in front of ``url``: the local server answering like a remote KMS."""
    target = url.removeprefix("http://")
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "latency_proxy.py"), "--target", target,
                             "--rtt-ms", str(rtt_ms)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"latency proxy did not start: {line!r}")
    return proc, line.split()[-1]


Run = tuple[str, float, float, float, int]  # name, wall s, client CPU s, server CPU s, keys


def measure(runs: list[Run], server: subprocess.Popen, name: str, fn) -> None:
    s0 = tree_cpu_seconds(server.pid)
    wall, cpu, n = fn()
    runs.append((name, wall, cpu, tree_cpu_seconds(server.pid) - s0, n))


def table(title: str, runs: list[Run], keys: int) -> bool:
    """Print the runs against the last one (the peer); False when a source saw the wrong number of keys."""
    t_walk = runs[-1][1]
    print(f"\n{title}")
    print(f"{'':54} {'wall':>7} {'client':>7} {'server':>7} {'keys':>6} {'keys/s':>7} {'walk/this':>9}")
    for name, wall, cpu, server_cpu, n in runs:
        print(f"{name:54} {wall:7.1f} {cpu:7.1f} {server_cpu:7.1f} {n:6d} {n / wall:7.0f} {t_walk / wall:8.2f}x")
    print(f"(load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    if any(n != keys for *_, n in runs):
        print(f"WARNING: a source saw a different number of keys than the {keys} seeded")
        return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2, help="server worker processes")
    ap.add_argument("--concurrency", type=int, default=8, help="scan live --concurrency")
    ap.add_argument("--remote-keys", type=int, default=1000, help="keys for the remote-endpoint comparison (0: skip it)")
    ap.add_argument("--rtt-ms", type=float, default=10.0, help="round trip added by the proxy in that comparison")
    ap.add_argument("--seed", type=int, default=20261201)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="kms-iac-bench-scan-"))
    children: list[subprocess.Popen] = []
    ok = True
    try:
        data_dir = tmp / "kms"
        t0 = time.perf_counter()
        seed_keys(data_dir, args.keys, random.Random(args.seed))
        print(f"seeded {args.keys} keys through the backend core in {time.perf_counter() - t0:.1f} s")
        server, url = start_server(data_dir, args.workers)
        children.append(server)
        print(f"server: kms-iac local serve --workers {args.workers}; machine: {os.cpu_count()} cores")
        print("wall: elapsed seconds; client/server: CPU seconds used by the scanning process and by the server")

        c = args.concurrency
        runs: list[Run] = []
        measure(runs, server, f"scan live --endpoint (concurrency {c}, 5 calls/key)",
                lambda: timed_scan(tmp / "endpoint.json", "--endpoint", url, concurrency=c))
        measure(runs, server, "scan live --endpoint --no-grants (4 calls/key)",
                lambda: timed_scan(tmp / "endpoint-ng.json", "--endpoint", url, "--no-grants", concurrency=c))
        measure(runs, server, "scan live --endpoint --concurrency 1 (5 calls/key)",
                lambda: timed_scan(tmp / "endpoint-1.json", "--endpoint", url, concurrency=1))
        measure(runs, server, "scan live --data-dir (server running, unused)",
                lambda: timed_scan(tmp / "data-dir.json", "--data-dir", str(data_dir), concurrency=c))
        measure(runs, server, "peer: sequential boto3 walk (3 calls/key, no rules)", lambda: sequential_walk(url))
        ok = table(f"{args.keys} keys, local server on this machine", runs, args.keys)

        if args.remote_keys:
            remote_dir = tmp / "remote"
            seed_keys(remote_dir, args.remote_keys, random.Random(args.seed + 1))
            remote, remote_url = start_server(remote_dir, args.workers)
            children.append(remote)
            proxy, proxy_url = start_proxy(remote_url, args.rtt_ms)
            children.append(proxy)
            runs = []
            measure(runs, remote, f"scan live --endpoint (concurrency {c}, 5 calls/key)",
                    lambda: timed_scan(tmp / "remote.json", "--endpoint", proxy_url, concurrency=c))
            measure(runs, remote, "peer: sequential boto3 walk (3 calls/key, no rules)", lambda: sequential_walk(proxy_url))
            ok = table(f"{args.remote_keys} keys, the same server {args.rtt_ms:g} ms of round trip away "
                       f"(benchmarks/latency_proxy.py: a remote KMS)", runs, args.remote_keys) and ok
        return 0 if ok else 1
    finally:
        for child in reversed(children):
            stop(child)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
