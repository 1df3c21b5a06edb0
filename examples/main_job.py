"""The main job: deploy the example multi-tenant stack (root ``Pulumi.yaml``) with the
real Pulumi engine to the embedded local backend, then print a report of the fleet and
its compliance report (the rules over the deployed keys, read live from the data dir).

State lives in ``.kms-iac/`` of the project: keys in the backend's data dir, Pulumi's
state in ``.kms-iac/pulumi/``. Running it again is a no-op update.
"""

from __future__ import annotations

import argparse
import os
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


def report(console: Console, data_dir: Path, outputs: dict) -> None:
    kms = embedded_client(data_dir)
    table = Table(title="Tenant keys (deployed by pulumi up)")
    for col in ("tenant", "alias", "key id", "spec", "origin", "state", "rotation", "envelope test"):
        table.add_column(col)
    for tenant, arn in sorted(deployed_keys(outputs).items()):
        md = kms.describe_key(KeyId=arn)["KeyMetadata"]
        aliases = [a["AliasName"] for a in kms.list_aliases(KeyId=md["KeyId"])["Aliases"]]
        symmetric = md["KeySpec"] == "SYMMETRIC_DEFAULT"
        if symmetric and md["Origin"] == "AWS_KMS":
            rot = kms.get_key_rotation_status(KeyId=arn)
            rotation = f"every {rot['RotationPeriodInDays']} days" if rot["KeyRotationEnabled"] else "[red]off[/red]"
        else:
            rotation = "n/a"
        envelope = ("[green]ok[/green]" if envelope_round_trip(kms, md["KeyId"], tenant) else "[red]FAILED[/red]") \
            if symmetric else "n/a (signing)"
        table.add_row(tenant, ", ".join(aliases), md["KeyId"], md["KeySpec"], md["Origin"], md["KeyState"], rotation,
                      envelope)
    console.print(table)


def compliance_report(console: Console, data_dir: Path, outputs: dict) -> int:
    """The rules KMS001-KMS016 over the deployed keys, read live from the data dir: the same front
    door as ``kms-iac scan live --data-dir``. Returns the number of unsuppressed failures."""
    from kms_iac.backend.embedded import shared_backend
    from kms_iac.rules.adapters.live_data_dir import scan_data_dir
    from kms_iac.rules.config import load_config
    from kms_iac.rules.engine import failing
    from kms_iac.rules.engine import evaluate
    from kms_iac.rules.report import print_text

    deployed = set(deployed_keys(outputs).values())
    inventory = scan_data_dir(data_dir, backend=shared_backend(data_dir))  # this process's embedded backend
    views = [v for v in inventory.keys if v.arn in deployed]
    findings = evaluate(views, load_config(ROOT))
    console.rule("Compliance report (KMS001-KMS016, live keys in the data dir)")
    print_text(findings, console)
    others = len(inventory.keys) - len(views)
    if others:
        console.print(f"({others} other key(s) in the data dir, not part of this stack, were left out)")
    console.print(f"Same report for pipelines: [cyan].venv/bin/kms-iac scan live --data-dir "
                  f"{data_dir.relative_to(ROOT)} --format sarif[/cyan]")
    return len(failing(findings))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="local")
    args = parser.parse_args()
    console = Console() if sys.stdout.isatty() else Console(width=150)  # logs: no wrapping at 80 columns
    state_root = ROOT / ".kms-iac"
    data_dir = state_root / "data"
    console.print("[bold]kms-iac main job[/bold]: pulumi up of the multi-tenant fleet (examples/multi_tenant/tenants.yaml) "
                  "on the embedded local backend")
    project = PulumiProject(state_root / "pulumi", pulumi_bin_dir(), stack=args.stack, project_dir=ROOT,
                            config={"kms-iac:target": "local", "kms-iac:dataDir": str(data_dir)})
    up = project.run("up", "--yes", "--skip-preview", check=False)
    console.print(up.stdout.rstrip())
    if up.returncode != 0:
        console.print(f"[red]pulumi up failed[/red]\n{up.stderr}")
        return up.returncode
    outputs = project.outputs()
    report(console, data_dir, outputs)
    compliance_report(console, data_dir, outputs)
    console.print(f"Audit log: [cyan].venv/bin/kms-iac local audit --data-dir {data_dir.relative_to(ROOT)}[/cyan]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
