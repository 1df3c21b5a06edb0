"""A regulated tenant whose key material never leaves a CloudHSM cluster (on the local
target, a SoftHSM2 token the component creates in the backend's data dir)."""

import pulumi

from kms_iac.components import CloudHsmKeyStore, TenantKey

store = CloudHsmKeyStore("regulated", custom_key_store_name="regulated")
key = TenantKey("umbrella", tenant="umbrella", custom_key_store=store.custom_key_store_id,
                key_administrators=["arn:aws:iam::111122223333:role/KeyAdmin"])

pulumi.export("key_store_id", store.custom_key_store_id)
pulumi.export("connection_state", store.connection_state)
pulumi.export("key_arn", key.key_arn)
