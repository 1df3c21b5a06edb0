"""CKV_KMSIAC_9: KMS009, Imported key material does not expire.

Generated from the rule registry by scripts/generate_checkov_checks.py; the logic is _base.py.
"""

from _base import CFN_KEYS, TF_KEYS, cloudformation_check, terraform_check

RULE = "KMS009"
ID = "CKV_KMSIAC_9"
NAME = "Imported key material does not expire"
CATEGORY = "ENCRYPTION"
CFN_RESOURCES = CFN_KEYS
TF_RESOURCES = TF_KEYS

cfn_check = cloudformation_check(RULE, ID, NAME, CATEGORY, CFN_RESOURCES)
tf_check = terraform_check(RULE, ID, NAME, CATEGORY, TF_RESOURCES)
