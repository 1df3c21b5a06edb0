"""The key an application uses: one tenant key for the envelope-encryption app beside it."""

import pulumi

from kms_iac.components import TenantKey

key = TenantKey("files", tenant="files", key_administrators=["arn:aws:iam::111122223333:role/KeyAdmin"],
                key_users=["arn:aws:iam::111122223333:role/files-app"])
pulumi.export("key_arn", key.key_arn)
pulumi.export("alias", key.alias_name)
