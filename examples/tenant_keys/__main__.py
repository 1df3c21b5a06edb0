"""Per-tenant keys: one TenantKey per tenant, plus a fleet from a list with shared defaults."""

import pulumi

from kms_iac.components import TenantKey, TenantKeyFleet

ADMIN = "arn:aws:iam::111122223333:role/KeyAdmin"

acme = TenantKey("acme", tenant="acme", key_administrators=[ADMIN],
                 key_users=["arn:aws:iam::111122223333:role/acme-app"], rotation_period_in_days=180)
fleet = TenantKeyFleet("fleet", tenants=["globex", {"tenant": "initech", "deletion_window_in_days": 14}],
                       defaults={"key_administrators": [ADMIN], "alias_prefix": "customers"})

pulumi.export("acme_key_arn", acme.key_arn)
pulumi.export("acme_alias", acme.alias_name)
pulumi.export("fleet_keys", fleet.keys)
pulumi.export("fleet_aliases", fleet.aliases)
