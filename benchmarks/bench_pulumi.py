"""``pulumi up`` of N tenant keys (key + alias + key policy each) on the local backend.

Prints, for each fleet size: wall time of ``pulumi up``, time per resource, the time
during which at least one provider call was running (its handlers run in parallel
threads) and its share of the wall time, and the growth from the smallest to the
largest fleet (linear is N_large/N_small). Run it with and without
``--skip-checkpoints``: Pulumi's file state backend rewrites the whole checkpoint after
every resource step, which is quadratic in the stack size and not the provider's cost.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kms_iac.engine import PulumiProject, pulumi_bin_dir  # noqa: E402

PROGRAM = """
import json
import pulumi
from kms_iac import resources as kms

ACCOUNT = "111122223333"
n = int(pulumi.Config().require("tenants"))
for i in range(n):
    tenant = f"tenant-{i:04d}"
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
         "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "TenantUse", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/{tenant}"},
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
         "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": tenant}}}]})
    key = kms.Key(tenant, description=f"key of {tenant}", policy=policy, enable_key_rotation=True,
                  tags={"tenant": tenant})
    kms.Alias(tenant, name=f"alias/tenant/{tenant}", target_key_id=key.key_id)
"""


def run(n: int, pulumi_bin: Path, skip_checkpoints: bool = False, program: str = PROGRAM,
        resources_per_tenant: int = 2) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"kms-bench-pulumi-{n}-"))
    timings = work / "provider-timings.jsonl"
    project = PulumiProject(work, pulumi_bin, config={"kms-iac:target": "local", "kms-iac:dataDir": str(work / "kms"),
                                                      "tenants": str(n)},
                            env={"KMS_IAC_PROVIDER_TIMINGS": str(timings),
                                 **({"PULUMI_SKIP_CHECKPOINTS": "true"} if skip_checkpoints else {})})
    project.write_program(program)
    start = time.perf_counter()
    project.up()
    wall = time.perf_counter() - start
    calls = [json.loads(l) for l in timings.read_text().splitlines()] if timings.exists() else []
    busy = _union_seconds([(c["start"], c["end"]) for c in calls])
    resources = resources_per_tenant * n
    return {"tenants": n, "resources": resources, "wall_s": wall, "ms_per_resource": wall / resources * 1000,
            "provider_busy_s": busy, "provider_share": busy / wall, "provider_calls": len(calls),
            "provider_call_seconds_sum": sum(c["end"] - c["start"] for c in calls)}


def _union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Time during which at least one provider call was running (calls overlap: they run in threads)."""
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500", help="comma list of tenant counts (default 100,500)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-checkpoints", action="store_true",
                        help="set PULUMI_SKIP_CHECKPOINTS=true (the engine writes state once at the end)")
    args = parser.parse_args()
    pulumi_bin = pulumi_bin_dir()
    results = [run(int(n), pulumi_bin, args.skip_checkpoints) for n in args.sizes.split(",")]
    print(f"{'tenants':>8} {'resources':>9} {'wall s':>8} {'ms/resource':>11} {'provider busy s':>15} {'provider share':>14}")
    for r in results:
        print(f"{r['tenants']:>8} {r['resources']:>9} {r['wall_s']:>8.1f} {r['ms_per_resource']:>11.1f} "
              f"{r['provider_busy_s']:>15.1f} {r['provider_share']:>13.0%}")
    if len(results) >= 2:
        small, large = results[0], results[-1]
        print(f"growth {small['tenants']} -> {large['tenants']} tenants: wall x{large['wall_s'] / small['wall_s']:.2f} "
              f"for x{large['tenants'] / small['tenants']:.0f} resources "
              f"(per resource: {small['ms_per_resource']:.1f} -> {large['ms_per_resource']:.1f} ms)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
