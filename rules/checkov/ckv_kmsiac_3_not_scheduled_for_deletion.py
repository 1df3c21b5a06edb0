"""CKV_KMSIAC_3: KMS003, Key is not scheduled for deletion.

Generated from the rule registry by scripts/generate_checkov_checks.py; the logic is _base.py.
"""

from _base import CFN_KEYS, TF_KEYS, cloudformation_check, terraform_check

RULE = "KMS003"
ID = "CKV_KMSIAC_3"
NAME = "Key is not scheduled for deletion"
CATEGORY = "ENCRYPTION"
CFN_RESOURCES = CFN_KEYS
TF_RESOURCES = TF_KEYS

cfn_check = cloudformation_check(RULE, ID, NAME, CATEGORY, CFN_RESOURCES)
tf_check = terraform_check(RULE, ID, NAME, CATEGORY, TF_RESOURCES)
