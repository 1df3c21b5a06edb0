"""A customer managed KMS key per tenant, from tenants.yaml.

Each tenant gets a key with automatic rotation, the alias alias/tenants/<tenant>, the
``tenant`` tag and a key policy built from roles (administrators manage the key, users
encrypt and decrypt with it; the account root always keeps access). What this deploys
passes kms-iac's rules KMS001-KMS016: check with
``kms-iac pulumi preview --policy-pack "$(kms-iac policy-pack path)"``.

More components (TenantKey, SigningKey, HmacKey, CrossAccountKeyAccess, ImportedKey,
CloudHsmKeyStore): ``help(kms_iac.components)``.
"""

from pathlib import Path

import pulumi

from kms_iac.components import TenantKeyFleet

fleet = TenantKeyFleet("tenants", tenants_file=str(Path(__file__).with_name("tenants.yaml")))

pulumi.export("keys", fleet.keys)  # tenant -> key ARN
pulumi.export("aliases", fleet.aliases)  # tenant -> alias name
