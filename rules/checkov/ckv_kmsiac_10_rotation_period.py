"""CKV_KMSIAC_10: KMS010, Rotation period is at most the configured maximum.

Generated from the rule registry by scripts/generate_checkov_checks.py; the logic is _base.py.
"""

from _base import CFN_KEYS, TF_KEYS, cloudformation_check, terraform_check

RULE = "KMS010"
ID = "CKV_KMSIAC_10"
NAME = "Rotation period is at most the configured maximum"
CATEGORY = "ENCRYPTION"
CFN_RESOURCES = CFN_KEYS
TF_RESOURCES = TF_KEYS

cfn_check = cloudformation_check(RULE, ID, NAME, CATEGORY, CFN_RESOURCES)
tf_check = terraform_check(RULE, ID, NAME, CATEGORY, TF_RESOURCES)
