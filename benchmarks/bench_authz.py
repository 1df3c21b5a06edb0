"""Cost of authorization: Encrypt throughput and server CPU per request of the same
backend with authentication + authorization off (no principals file) and on (SigV4
verification, key policy + IAM policy + grants evaluation), measured side by side in
interleaved rounds. Target: authorization costs at most 15% of Encrypt throughput.

Client-bound (Python clients on the same machine): ``bench_server.py``, with wrk, gives the
server-side cost (servers kms-iac and kms-iac+authz, and ``--unique-signatures`` for requests
each signed on their own).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "111122223333"
APP = {"arn": f"arn:aws:iam::{ACCOUNT}:role/App", "access_key_id": "AKIAKMSIACBENCHAPP01", "secret_access_key": "bench-app-secret",
       "policies": [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}]}]}
ADMIN = {"arn": f"arn:aws:iam::{ACCOUNT}:role/Admin", "access_key_id": "AKIAKMSIACBENCHADM01", "secret_access_key": "bench-admin-secret",
         "policies": [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}]}
KEY_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "DenyOutsideContext", "Effect": "Deny", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*",
     "Condition": {"Null": {"kms:EncryptionContext:tenant": "true"}}},
    {"Sid": "App", "Effect": "Allow", "Principal": {"AWS": APP["arn"]}, "Action": ["kms:Encrypt", "kms:Decrypt"],
     "Resource": "*", "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "bench"}}}]}


def start(data_dir: Path, principals: Path | None) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "kms_iac", "local", "serve", "--port", "0", "--data-dir", str(data_dir)]
    if principals:
        cmd += ["--principals", str(principals)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline()  # type: ignore[union-attr]
    return proc, int(line.rsplit(":", 1)[1])


def signed(port: int, target: str, body: dict, creds: tuple[str, str]) -> tuple[bytes, dict]:
    data = json.dumps(body).encode()
    req = botocore.awsrequest.AWSRequest("POST", f"http://127.0.0.1:{port}/", data=data, headers={
        "X-Amz-Target": f"TrentService.{target}", "Content-Type": "application/x-amz-json-1.1"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(*creds), "kms", "us-east-1").add_auth(req)
    return data, dict(req.headers)


def call(port: int, target: str, body: dict, creds: tuple[str, str]) -> dict:
    data, headers = signed(port, target, body, creds)
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("POST", "/", body=data, headers=headers)
    r = c.getresponse()
    doc = json.loads(r.read())
    if r.status != 200:
        raise RuntimeError(f"{target}: {doc}")
    return doc


def client(port: int, data: bytes, headers: dict, seconds: float, start_at: float, q) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port)
    while time.time() < start_at:
        time.sleep(0.001)
    n, end = 0, start_at + seconds
    while time.time() < end:
        c.request("POST", "/", body=data, headers=headers)
        r = c.getresponse()
        r.read()
        n += r.status == 200
    q.put(n)


def cpu(pid: int) -> float:
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def measure(proc: subprocess.Popen, port: int, data: bytes, headers: dict, seconds: float, procs: int) -> tuple[float, float]:
    q: mp.Queue = mp.Queue()
    start_at = time.time() + 0.5
    ps = [mp.Process(target=client, args=(port, data, headers, seconds, start_at, q)) for _ in range(procs)]
    for p in ps:
        p.start()
    while time.time() < start_at:
        time.sleep(0.001)
    c0 = cpu(proc.pid)
    for p in ps:
        p.join()
    c1 = cpu(proc.pid)
    n = sum(q.get() for _ in ps)
    return n / seconds, (c1 - c0) / max(n, 1) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--procs", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kms-bench-authz-"))
    principals = work / "principals.yaml"
    principals.write_text(yaml.safe_dump({"accounts": {ACCOUNT: {"principals": [APP, ADMIN]}}}))
    servers = {}
    try:
        for mode in ("off", "on"):
            proc, port = start(work / mode, principals if mode == "on" else None)
            creds = (ADMIN["access_key_id"], ADMIN["secret_access_key"]) if mode == "on" else ("AKIDBENCH", "x")
            key = call(port, "CreateKey", {"Policy": json.dumps(KEY_POLICY)}, creds)["KeyMetadata"]["KeyId"]
            app_creds = (APP["access_key_id"], APP["secret_access_key"]) if mode == "on" else ("AKIDBENCH", "x")
            body = {"KeyId": key, "Plaintext": base64.b64encode(b"x" * 256).decode(), "EncryptionContext": {"tenant": "bench"}}
            call(port, "Encrypt", body, app_creds)  # the request is allowed
            servers[mode] = (proc, port, body, app_creds)
        results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
        for r in range(args.rounds):
            for mode in (("off", "on") if r % 2 == 0 else ("on", "off")):
                proc, port, body, creds = servers[mode]
                data, headers = signed(port, "Encrypt", body, creds)  # fresh signature each round
                results[mode].append(measure(proc, port, data, headers, args.seconds, args.procs))
                print(f"round {r + 1} authorization {mode}: {results[mode][-1][0]:,.0f} ops/s, "
                      f"{results[mode][-1][1]:.0f} µs server CPU/request", file=sys.stderr)
    finally:
        for proc, *_ in servers.values():
            proc.terminate()
            proc.wait()
    med = {m: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for m, v in results.items()}
    print(f"Encrypt, {args.procs} client processes, {args.rounds} rounds x {args.seconds:.0f}s (median)")
    print(f"{'authorization':>14} {'ops/s':>9} {'server CPU µs/req':>18}")
    for m in ("off", "on"):
        print(f"{m:>14} {med[m][0]:>9,.0f} {med[m][1]:>18.0f}")
    cost = 1 - med["on"][0] / med["off"][0]
    print(f"throughput cost of authorization: {cost:.1%} (target <= 15%: {'met' if cost <= 0.15 else 'NOT met'}); "
          f"server CPU per request +{med['on'][1] / med['off'][1] - 1:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
