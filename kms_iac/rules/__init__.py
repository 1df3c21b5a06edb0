"""The rule engine: KMS001-KMS016 over one normalised key view.

Rules import the policy package and :mod:`kms_iac.rules.view`, never the backend or the
provider, so checkov's own environment can load them with nothing but the standard
library and PyYAML.
"""
