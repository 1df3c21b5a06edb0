"""CKV_KMSIAC_6: KMS006, Separation of duties between key administrators and key users.

Generated from the rule registry by scripts/generate_checkov_checks.py; the logic is _base.py.
"""

from _base import CFN_KEYS, TF_KEYS, TF_KEY_POLICY, cloudformation_check, terraform_check

RULE = "KMS006"
ID = "CKV_KMSIAC_6"
NAME = "Separation of duties between key administrators and key users"
CATEGORY = "ENCRYPTION"
CFN_RESOURCES = CFN_KEYS
TF_RESOURCES = TF_KEYS + TF_KEY_POLICY

cfn_check = cloudformation_check(RULE, ID, NAME, CATEGORY, CFN_RESOURCES)
tf_check = terraform_check(RULE, ID, NAME, CATEGORY, TF_RESOURCES)
