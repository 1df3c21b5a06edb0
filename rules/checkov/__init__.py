"""kms-iac's checkov checks (CKV_KMSIAC_<n>), loaded with --external-checks-dir; checkov needs this file to load any."""
