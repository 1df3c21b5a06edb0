"""CKV_KMSIAC_14: KMS014, Asymmetric keys are strong enough for their use.

Generated from the rule registry by scripts/generate_checkov_checks.py; the logic is _base.py.
"""

from _base import CFN_KEYS, TF_KEYS, cloudformation_check, terraform_check

RULE = "KMS014"
ID = "CKV_KMSIAC_14"
NAME = "Asymmetric keys are strong enough for their use"
CATEGORY = "ENCRYPTION"
CFN_RESOURCES = CFN_KEYS
TF_RESOURCES = TF_KEYS

cfn_check = cloudformation_check(RULE, ID, NAME, CATEGORY, CFN_RESOURCES)
tf_check = terraform_check(RULE, ID, NAME, CATEGORY, TF_RESOURCES)
