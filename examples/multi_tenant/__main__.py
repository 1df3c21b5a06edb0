"""The main job's stack: a key per tenant from tenants.yaml, one of them in a CloudHSM key
store and one shared with a partner account, plus a release-signing key.

``./run.sh`` deploys it with the real Pulumi engine to the embedded local backend and
prints the compliance report. Point it at AWS with ``pulumi config set kms-iac:target aws``
(and your own role ARNs in tenants.yaml; the key store then needs your CloudHSM cluster's
id, trust anchor certificate and kmsuser password as stack config).
"""

from pathlib import Path

import pulumi

from kms_iac.components import CloudHsmKeyStore, SigningKey, TenantKeyFleet
from kms_iac.components.fleet import load_tenants_file

config = pulumi.Config()
tenants, defaults = load_tenants_file(Path(__file__).with_name("tenants.yaml"))

# Tenants that ask for "custom_key_store: cloudhsm" get the stack's CloudHSM key store.
store = None
if any(isinstance(t, dict) and t.get("custom_key_store") == "cloudhsm" for t in tenants):
    store = CloudHsmKeyStore("regulated", custom_key_store_name="regulated-tenants",
                             cluster_id=config.get("hsmClusterId"),
                             trust_anchor_certificate=config.get("hsmTrustAnchorCertificate"),
                             key_store_password=config.get_secret("hsmKeyStorePassword"))
    tenants = [{**t, "custom_key_store": store.custom_key_store_id}
               if isinstance(t, dict) and t.get("custom_key_store") == "cloudhsm" else t for t in tenants]

fleet = TenantKeyFleet("tenants", tenants=tenants, defaults=defaults)
signing = SigningKey("release-signing", tenant="platform", key_spec="ECC_NIST_P256",
                     key_administrators=defaults.get("key_administrators", []),
                     signers=["arn:aws:iam::111122223333:role/release-pipeline"],
                     verifiers=["arn:aws:iam::111122223333:role/deployer"])

pulumi.export("keys", fleet.keys)
pulumi.export("aliases", fleet.aliases)
pulumi.export("signing_key_arn", signing.key_arn)
pulumi.export("signing_alias", signing.alias_name)
if store is not None:
    pulumi.export("key_store_id", store.custom_key_store_id)
