"""CKV_KMSIAC_16: KMS016, No identity policy allows kms:Decrypt on all keys.

Generated from the rule registry by scripts/generate_checkov_checks.py; the logic is _base.py.
"""

from _base import CFN_IDENTITY, TF_IDENTITY, cloudformation_check, terraform_check

RULE = "KMS016"
ID = "CKV_KMSIAC_16"
NAME = "No identity policy allows kms:Decrypt on all keys"
CATEGORY = "IAM"
CFN_RESOURCES = CFN_IDENTITY
TF_RESOURCES = TF_IDENTITY

cfn_check = cloudformation_check(RULE, ID, NAME, CATEGORY, CFN_RESOURCES)
tf_check = terraform_check(RULE, ID, NAME, CATEGORY, TF_RESOURCES)
