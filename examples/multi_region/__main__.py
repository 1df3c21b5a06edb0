"""A multi-Region tenant key with replicas in two more Regions: one component, no provider
per Region to write. Each replica gets the tenant's alias in its Region."""

import pulumi

from kms_iac.components import TenantKey

key = TenantKey("global", tenant="global", replica_regions=["eu-west-1", "ap-southeast-2"],
                key_administrators=["arn:aws:iam::111122223333:role/KeyAdmin"])
pulumi.export("key_arn", key.key_arn)
pulumi.export("replica_arns", key.replica_arns)
