"""A key per tenant: customer managed key, alias, key policy, rotation and tags.

The main job (``./run.sh``) deploys this program with the real Pulumi engine to the
embedded local backend. Point it at AWS with ``pulumi config set kms-iac:target aws``.
"""

import json

import pulumi

from kms_iac import resources as kms

config = pulumi.Config()
account = config.get("account") or "111122223333"
tenants = config.get_object("tenants") or ["acme", "globex", "initech"]


def tenant_policy(tenant: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Id": f"{tenant}-key-policy",
        "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Allow use by the tenant's application role", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{account}:role/{tenant}-app"},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": tenant}}},
        ],
    })


for tenant in tenants:
    key = kms.Key(
        tenant,
        description=f"Customer managed key for tenant {tenant}",
        policy=tenant_policy(tenant),
        enable_key_rotation=True,
        rotation_period_in_days=365,
        deletion_window_in_days=30,
        tags={"tenant": tenant, "managed-by": "kms-iac"},
    )
    kms.Alias(tenant, name=f"alias/tenant/{tenant}", target_key_id=key.key_id)
    pulumi.export(f"{tenant}_key_arn", key.arn)
