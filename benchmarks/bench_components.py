"""``pulumi up`` of a TenantKeyFleet of N tenants vs the same keys and aliases written as
plain ``kms.Key``/``kms.Alias`` resources: what the components cost.

Both programs deploy the same 2 resources per tenant (a key with the policy builder's
policy, rotation and tags, and its alias) to the embedded backend; the component program
adds the TenantKeyFleet and TenantKey component resources (and a getCallerIdentity call
per tenant) on top. Prints wall time per tenant, the provider's busy share, and the
component/plain ratio per fleet size. Run with ``--skip-checkpoints`` to take Pulumi's
file-backend checkpoint rewrites (quadratic in stack size) out of both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_pulumi import run  # noqa: E402
from kms_iac.engine import pulumi_bin_dir  # noqa: E402

COMPONENTS = """
import pulumi
from kms_iac.components import TenantKeyFleet
n = int(pulumi.Config().require("tenants"))
fleet = TenantKeyFleet("fleet", tenants=[f"tenant-{i:04d}" for i in range(n)],
                       defaults={"key_administrators": ["arn:aws:iam::111122223333:role/KeyAdmin"]})
pulumi.export("count", fleet.keys.apply(len))
"""

PLAIN = """
import pulumi
from kms_iac import resources as kms
from kms_iac.policy.builder import build_key_policy, to_json
n = int(pulumi.Config().require("tenants"))
policy = to_json(build_key_policy("111122223333", key_administrators=["arn:aws:iam::111122223333:role/KeyAdmin"]))
for i in range(n):
    t = f"tenant-{i:04d}"
    key = kms.Key(f"fleet-{t}", description=f"{t} tenant key", policy=policy, enable_key_rotation=True,
                  rotation_period_in_days=365, deletion_window_in_days=30, tags={"tenant": t})
    kms.Alias(f"fleet-{t}-alias", name=f"alias/tenants/{t}", target_key_id=key.key_id)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500")
    parser.add_argument("--skip-checkpoints", action="store_true")
    args = parser.parse_args()
    pulumi_bin = pulumi_bin_dir()
    print(f"{'tenants':>8} {'program':>10} {'wall s':>8} {'ms/tenant':>10} {'provider share':>14}")
    for n in (int(x) for x in args.sizes.split(",")):
        plain = run(n, pulumi_bin, args.skip_checkpoints, PLAIN)
        comp = run(n, pulumi_bin, args.skip_checkpoints, COMPONENTS)
        for label, r in (("plain", plain), ("components", comp)):
            print(f"{n:>8} {label:>10} {r['wall_s']:>8.1f} {r['wall_s'] / n * 1000:>10.1f} {r['provider_share']:>13.0%}")
        print(f"{n:>8} {'ratio':>10} components/plain = x{comp['wall_s'] / plain['wall_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
