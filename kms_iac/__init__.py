"""kms-iac: AWS KMS keys as code.

The shared engine lives here: the bundled local KMS backend (``kms_iac.backend``),
the CLI (``kms_iac.cli``) and, as they arrive, the provider, the policy builder and
evaluator and the rule engine.
"""

__version__ = "0.1.0"
