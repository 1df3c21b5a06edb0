"""CKV_KMSIAC_15: KMS015, Key is single-Region.

Generated from the rule registry by scripts/generate_checkov_checks.py; the logic is _base.py.
"""

from _base import CFN_KEYS, TF_KEYS, cloudformation_check, terraform_check

RULE = "KMS015"
ID = "CKV_KMSIAC_15"
NAME = "Key is single-Region"
CATEGORY = "ENCRYPTION"
CFN_RESOURCES = CFN_KEYS
TF_RESOURCES = TF_KEYS

cfn_check = cloudformation_check(RULE, ID, NAME, CATEGORY, CFN_RESOURCES)
tf_check = terraform_check(RULE, ID, NAME, CATEGORY, TF_RESOURCES)
