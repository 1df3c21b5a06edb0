"""Bring your own key: material from a secret stack config value, imported into an
ImportedKey (origin EXTERNAL).

    pulumi config set --secret keyMaterial "$(head -c 32 /dev/urandom | base64)"
"""

import pulumi

from kms_iac.components import ImportedKey

key = ImportedKey("byok", tenant="initech", key_material_config="keyMaterial",
                  key_administrators=["arn:aws:iam::111122223333:role/KeyAdmin"])
pulumi.export("key_arn", key.key_arn)
