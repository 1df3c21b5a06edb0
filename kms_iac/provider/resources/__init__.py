"""One module per resource of the kms-iac provider."""

from __future__ import annotations

from kms_iac.provider.resources.alias import AliasHandler
from kms_iac.provider.resources.base import ResourceHandler
from kms_iac.provider.resources.external_key import ExternalKeyHandler
from kms_iac.provider.resources.custom_key_store import CustomKeyStoreHandler
from kms_iac.provider.resources.grant import GrantHandler
from kms_iac.provider.resources.hsm_cluster import HsmClusterHandler
from kms_iac.provider.resources.key import KeyHandler
from kms_iac.provider.resources.replica_key import ReplicaKeyHandler

HANDLERS: dict[str, ResourceHandler] = {h.spec.token: h for h in (KeyHandler(), AliasHandler(), ReplicaKeyHandler(), ExternalKeyHandler(), GrantHandler(), CustomKeyStoreHandler(), HsmClusterHandler())}
