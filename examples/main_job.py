"""The main job: deploy the example multi-tenant stack (root ``Pulumi.yaml``) with the
real Pulumi engine to the embedded local backend, then print a report of the fleet and
its compliance report (the rules over the deployed keys, read live from the data dir).

State lives in ``.kms-iac/`` of the project: keys in the backend's data dir, Pulumi's
state in ``.kms-iac/pulumi/``. Running it again is a no-op update.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kms_iac.backend.embedded import embedded_client  # noqa: E402
from kms_iac.engine import PulumiProject, pulumi_bin_dir  # noqa: E402


def envelope_round_trip(kms, key_id: str, tenant: str) -> bool:
    """Encrypt 1 MiB locally under a data key; keep only the encrypted data key."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    context = {"tenant": tenant}
    dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
    payload, nonce = os.urandom(1024 * 1024), os.urandom(12)
    sealed = AESGCM(dk["Plaintext"]).encrypt(nonce, payload, None)
    stored = dk["CiphertextBlob"]
    del dk
    key = kms.decrypt(CiphertextBlob=stored, EncryptionContext=context)["Plaintext"]
    return AESGCM(key).decrypt(nonce, sealed, None) == payload


def deployed_keys(outputs: dict) -> dict[str, str]:
    """Tenant (or role) -> key ARN, from the stack's outputs."""
    keys = dict(outputs.get("keys") or {})
    if outputs.get("signing_key_arn"):
        keys["platform (signing)"] = outputs["signing_key_arn"]
    return keys


def fleet_rows(data_dir: Path, outputs: dict) -> list[dict]:
    """What the fleet table (and ``--json``) shows per deployed key, read back from the backend:
    the stack's outputs say which keys are ours, the backend says what they are now."""
    kms = embedded_client(data_dir)
    rows = []
    for tenant, arn in sorted(deployed_keys(outputs).items()):
        md = kms.describe_key(KeyId=arn)["KeyMetadata"]
        symmetric = md["KeySpec"] == "SYMMETRIC_DEFAULT"
        rotation_days = None
        if symmetric and md["Origin"] == "AWS_KMS":
            rot = kms.get_key_rotation_status(KeyId=arn)
            rotation_days = rot["RotationPeriodInDays"] if rot["KeyRotationEnabled"] else 0
        rows.append({
            "tenant": tenant, "arn": arn, "key_id": md["KeyId"], "key_spec": md["KeySpec"],
            "origin": md["Origin"], "key_state": md["KeyState"],
            "aliases": [a["AliasName"] for a in kms.list_aliases(KeyId=md["KeyId"])["Aliases"]],
            # None: rotation does not apply (asymmetric, HMAC, imported, custom key store); 0: off.
            "rotation_period_in_days": rotation_days,
            "envelope_round_trip": envelope_round_trip(kms, md["KeyId"], tenant) if symmetric else None,
        })
    return rows


def print_fleet(console: Console, rows: list[dict]) -> None:
    table = Table(title="Tenant keys (deployed by pulumi up)")
    for col in ("tenant", "alias", "key id", "spec", "origin", "state", "rotation", "envelope test"):
        table.add_column(col)
    for r in rows:
        days = r["rotation_period_in_days"]
        rotation = "n/a" if days is None else f"every {days} days" if days else "[red]off[/red]"
        envelope = {None: "n/a (signing)", True: "[green]ok[/green]", False: "[red]FAILED[/red]"}[r["envelope_round_trip"]]
        table.add_row(r["tenant"], ", ".join(r["aliases"]), r["key_id"], r["key_spec"], r["origin"], r["key_state"],
                      rotation, envelope)
    console.print(table)


def compliance_findings(data_dir: Path, outputs: dict) -> tuple[list, int]:
    """The rules KMS001-KMS016 over the deployed keys, read live from the data dir: the same front
    door as ``kms-iac scan live --data-dir``. Returns the findings and how many other keys the
    data dir holds (left out: not part of this stack)."""
    from kms_iac.backend.embedded import shared_backend
    from kms_iac.rules.adapters.live_data_dir import scan_data_dir
    from kms_iac.rules.config import load_config
    from kms_iac.rules.engine import evaluate

    deployed = set(deployed_keys(outputs).values())
    inventory = scan_data_dir(data_dir, backend=shared_backend(data_dir))  # this process's embedded backend
    views = [v for v in inventory.keys if v.arn in deployed]
    return evaluate(views, load_config(ROOT)), len(inventory.keys) - len(views)


def shown(path: Path) -> str:
    """A path as the user should type it: relative to the project when it lies inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./run.sh",
        description="The main job: pulumi up of the example multi-tenant fleet (examples/multi_tenant/) on the "
                    "embedded local backend, then the fleet table and its compliance report. "
                    "`./run.sh destroy` tears the stack down (keys are scheduled for deletion, as on AWS).")
    parser.add_argument("action", nargs="?", choices=("up", "destroy"), default="up",
                        help="up (default): deploy and report; destroy: pulumi destroy of the stack")
    parser.add_argument("--stack", default="local", help="stack name (default: local)")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".kms-iac",
                        help="where the keys (DIR/data) and Pulumi's state (DIR/pulumi) live (default: .kms-iac)")
    parser.add_argument("--purge", action="store_true",
                        help="with destroy: afterwards remove the state dir (local keys and Pulumi state) entirely")
    parser.add_argument("--json", action="store_true",
                        help="print the report as one JSON object on stdout (pulumi's output goes to stderr)")
    return parser.parse_args(argv)


def destroy(console: Console, project: PulumiProject, args: argparse.Namespace, state_root: Path) -> int:
    """``pulumi destroy``, then, with ``--purge``, the state dir itself.

    As on AWS, a custom key store cannot be deleted while it holds keys, even keys scheduled for
    deletion: its key must first serve its waiting period (7-30 days). That leaves the CloudHSM
    key store behind after an otherwise complete destroy; it is said plainly, with the date a
    second destroy will succeed, instead of failing as if something were broken."""
    done = project.run("destroy", "--yes", "--continue-on-error", check=False)
    console.print(done.stdout.rstrip())
    left = [r for r in project.resources() if r.get("custom") and not r["type"].startswith("pulumi:providers:")]
    waiting = [r for r in left if r["type"] in ("kms-iac:index:CustomKeyStore", "kms-iac:index:HsmCluster")]
    blocked_by_waiting_period = (done.returncode != 0 and left == waiting and waiting
                                 and "CustomKeyStoreHasCMKsException" in done.stdout + done.stderr)
    if done.returncode != 0 and not blocked_by_waiting_period:
        console.print(f"[red]pulumi destroy failed[/red]\n{done.stderr}")
        return done.returncode
    purged = False
    if args.purge:
        shutil.rmtree(state_root, ignore_errors=True)
        (ROOT / f"Pulumi.{args.stack}.yaml").unlink(missing_ok=True)
        purged = True
        console.print(f"Removed {shown(state_root)} (the local backend's keys and the stack's state).")
    elif blocked_by_waiting_period:
        console.print("Every key is scheduled for deletion. The CloudHSM key store stays until its key's waiting "
                      "period ends (AWS refuses to delete a key store that holds keys): run [cyan]./run.sh destroy"
                      "[/cyan] again after then, or [cyan]./run.sh destroy --purge[/cyan] to remove the local "
                      f"backend's data and the stack's state ({shown(state_root)}) now.")
    if args.json:
        print(json.dumps({"stack": args.stack, "action": "destroy", "ok": True, "purged": purged,
                          "remaining": [] if purged else [r["urn"] for r in left]}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    as_json = args.json
    # Logs are not terminals: no wrapping at 80 columns. With --json, stdout carries only the JSON.
    console = Console(stderr=as_json, width=None if sys.stderr.isatty() or sys.stdout.isatty() else 150)
    state_root = args.state_dir.resolve()
    data_dir = state_root / "data"
    what = "pulumi destroy of" if args.action == "destroy" else "pulumi up of"
    console.print(f"[bold]kms-iac main job[/bold]: {what} the multi-tenant fleet (examples/multi_tenant/tenants.yaml) "
                  "on the embedded local backend")
    project = PulumiProject(state_root / "pulumi", pulumi_bin_dir(), stack=args.stack, project_dir=ROOT,
                            config={"kms-iac:target": "local", "kms-iac:dataDir": str(data_dir)})
    if args.action == "destroy":
        return destroy(console, project, args, state_root)
    up = project.run("up", "--yes", check=False)  # preview included, as a plain `pulumi up` does
    console.print(up.stdout.rstrip())
    if up.returncode != 0:
        console.print(f"[red]pulumi up failed[/red]\n{up.stderr}")
        return up.returncode
    outputs = project.outputs()
    rows = fleet_rows(data_dir, outputs)
    findings, others = compliance_findings(data_dir, outputs)
    from kms_iac.rules.engine import failing
    from kms_iac.rules.report import print_text

    failures = len(failing(findings))
    if as_json:
        print(json.dumps({"stack": args.stack, "action": "up", "data_dir": str(data_dir), "keys": rows,
                          "findings": [f.as_dict() for f in findings], "failures": failures,
                          "other_keys_in_data_dir": others}, indent=2))
        return 0
    print_fleet(console, rows)
    console.rule("Compliance report (KMS001-KMS016, live keys in the data dir)")
    print_text(findings, console)
    if others:
        console.print(f"({others} other key(s) in the data dir, not part of this stack, were left out)")
    console.print(f"Same report for pipelines: [cyan].venv/bin/kms-iac scan live --data-dir "
                  f"{shown(data_dir)} --format sarif[/cyan]")
    console.print(f"Audit log: [cyan].venv/bin/kms-iac local audit --data-dir {shown(data_dir)}[/cyan]")
    console.print("Tear down: [cyan]./run.sh destroy[/cyan]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
