"""Example: a key per tenant on the bundled local KMS backend (embedded, no server).

This is what the main job (``./run.sh``) runs until the Pulumi components and rules
land: it provisions one customer managed key per tenant with an alias, tags and a key
policy, turns rotation on, proves envelope encryption end to end, and prints a report
of the fleet and of the audit trail. Run it twice: keys persist in the data dir, so the
second run finds them instead of creating new ones.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kms_iac.backend.embedded import embedded_client

TENANTS = ["acme", "globex", "initech"]
ACCOUNT = "111122223333"


def tenant_policy(tenant: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Id": f"{tenant}-key-policy",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Allow use by the tenant's application role", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/{tenant}-app"},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": tenant}}},
        ],
    })


def ensure_tenant_key(kms, tenant: str) -> str:
    alias = f"alias/tenant/{tenant}"
    try:
        return kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
    except kms.exceptions.NotFoundException:
        pass
    md = kms.create_key(
        Description=f"Customer managed key for tenant {tenant}",
        Policy=tenant_policy(tenant),
        Tags=[{"TagKey": "tenant", "TagValue": tenant}, {"TagKey": "managed-by", "TagValue": "kms-iac"}],
    )["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=md["KeyId"])
    kms.enable_key_rotation(KeyId=md["KeyId"], RotationPeriodInDays=365)
    return md["KeyId"]


def envelope_round_trip(kms, key_id: str, tenant: str) -> bool:
    """Encrypt 1 MiB locally under a data key; store only the encrypted data key."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    context = {"tenant": tenant, "purpose": "demo"}
    dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
    payload = os.urandom(1024 * 1024)
    nonce = os.urandom(12)
    sealed = AESGCM(dk["Plaintext"]).encrypt(nonce, payload, None)
    stored_key = dk["CiphertextBlob"]
    del dk  # the plaintext data key is dropped; only the encrypted one is kept
    plain_key = kms.decrypt(CiphertextBlob=stored_key, EncryptionContext=context)["Plaintext"]
    return AESGCM(plain_key).decrypt(nonce, sealed, None) == payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("KMS_IAC_DATA_DIR", ".kms-iac"))
    args = parser.parse_args()
    console = Console()
    kms = embedded_client(Path(args.data_dir))
    console.print(f"[bold]kms-iac[/bold] local backend (embedded) at [cyan]{Path(args.data_dir).resolve()}[/cyan]")

    table = Table(title="Tenant keys")
    for col in ("tenant", "alias", "key id", "state", "rotation", "policy → root", "envelope test"):
        table.add_column(col)
    for tenant in TENANTS:
        key_id = ensure_tenant_key(kms, tenant)
        md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        rot = kms.get_key_rotation_status(KeyId=key_id)
        policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
        root_ok = any(
            st.get("Effect") == "Allow" and f"arn:aws:iam::{ACCOUNT}:root" in json.dumps(st.get("Principal"))
            for st in policy["Statement"]
        )
        ok = envelope_round_trip(kms, key_id, tenant)
        table.add_row(
            tenant, f"alias/tenant/{tenant}", key_id, md["KeyState"],
            f"every {rot['RotationPeriodInDays']} days" if rot["KeyRotationEnabled"] else "[red]off[/red]",
            "[green]yes[/green]" if root_ok else "[red]missing[/red]",
            "[green]ok[/green]" if ok else "[red]FAILED[/red]",
        )
    console.print(table)
    console.print(
        "Compliance rules (KMS001–KMS016) and the Pulumi components are not built yet; "
        "this report shows the backend's own view of the fleet."
    )
    console.print(f"Audit log: [cyan]kms-iac local audit --data-dir {args.data_dir}[/cyan]")


if __name__ == "__main__":
    main()
