"""The programs kms-iac runs but does not import: the pinned Pulumi CLI with its language
hosts (:mod:`.pulumi_cli`) and checkov in its own virtualenv (:mod:`.checkov_env`).

One implementation for every caller: ``scripts/ensure_pulumi.sh`` and
``scripts/ensure_checkov.sh`` (setup, tests) are thin wrappers over ``python -m
kms_iac.toolchain``; ``kms-iac pulumi``, ``kms-iac checkov`` and ``kms-iac setup`` call these
functions from an installed wheel. Standard library only.
"""
