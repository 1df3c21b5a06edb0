"""Entry point the Pulumi language host runs (`python rules/policy_pack ENGINE_ADDRESS`).

The pack itself lives in kms_iac.rules.pulumi_pack, next to the rules it serves, so it
is imported, type-checked and unit-tested like the rest of the package.
"""

from kms_iac.rules.pulumi_pack import serve

serve()
