"""kms-iac's Pulumi components: what platform teams write against.

    from kms_iac.components import TenantKey, TenantKeyFleet
    fleet = TenantKeyFleet("tenants", tenants_file="tenants.yaml")
    pulumi.export("keys", fleet.keys)

Every component builds its key policy with the shared policy builder, so what it
deploys passes kms-iac's rules (KMS001-KMS016) by default.
"""

from ._inputs import ComponentInputError
from .cloudhsm_key_store import CloudHsmKeyStore
from .cross_account import CrossAccountKeyAccess
from .fleet import TenantKeyFleet
from .imported_key import ImportedKey
from .specialised_keys import HmacKey, SigningKey
from .tenant_key import TenantKey

__all__ = ["TenantKey", "TenantKeyFleet", "CrossAccountKeyAccess", "SigningKey", "HmacKey", "CloudHsmKeyStore",
           "ImportedKey", "ComponentInputError"]
