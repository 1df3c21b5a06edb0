"""The ``kms-iac`` Pulumi resource provider (a plugin the Pulumi engine launches).

Implemented on the Pulumi SDK's provider protocol (``pulumi.provider.experimental``):
real Check/Diff/Create/Read/Update/Delete, so ``pulumi import`` and ``pulumi refresh``
work and other Pulumi languages can use it through its schema.
"""

PACKAGE = "kms-iac"
VERSION = "0.1.0"
