"""Cross-account sharing, both ways: a key policy that lets a partner account's role use a
tenant's key (narrowed by kms:CallerAccount and kms:ViaService), and a grant-based share of
a key whose policy you do not own."""

import pulumi

from kms_iac.components import CrossAccountKeyAccess, TenantKey

PARTNER_ROLE = "arn:aws:iam::444455556666:role/analytics"

shared = TenantKey("hooli", tenant="hooli", key_administrators=["arn:aws:iam::111122223333:role/KeyAdmin"],
                   cross_account_principals=[{"arn": PARTNER_ROLE, "via_services": ["s3.us-east-1.amazonaws.com"]}])
etl = CrossAccountKeyAccess("etl-share", key_id=shared.key_id,
                            grantee_principals=["arn:aws:iam::444455556666:role/etl"],
                            operations=["Decrypt", "GenerateDataKey"],
                            encryption_context_subset={"tenant": "hooli"})

pulumi.export("key_arn", shared.key_arn)
pulumi.export("grant_ids", etl.grant_ids)
