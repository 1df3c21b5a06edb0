"""CKV_KMSIAC_5: KMS005, Cross-account use is narrowed by a condition.

Generated from the rule registry by scripts/generate_checkov_checks.py; the logic is _base.py.
"""

from _base import CFN_KEYS, TF_KEYS, TF_KEY_POLICY, cloudformation_check, terraform_check

RULE = "KMS005"
ID = "CKV_KMSIAC_5"
NAME = "Cross-account use is narrowed by a condition"
CATEGORY = "ENCRYPTION"
CFN_RESOURCES = CFN_KEYS
TF_RESOURCES = TF_KEYS + TF_KEY_POLICY

cfn_check = cloudformation_check(RULE, ID, NAME, CATEGORY, CFN_RESOURCES)
tf_check = terraform_check(RULE, ID, NAME, CATEGORY, TF_RESOURCES)
