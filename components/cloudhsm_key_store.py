"""``CloudHsmKeyStore``: a connected custom key store, ready for ``TenantKey(custom_key_store=...)``."""

from __future__ import annotations

from typing import Optional

import pulumi

from ._inputs import ComponentInputError
from kms_iac import resources as kms


class CloudHsmKeyStore(pulumi.ComponentResource):
    """An AWS CloudHSM key store, connected when created.

    Give the cluster id, its trust anchor certificate and the kmsuser password of an
    existing CloudHSM cluster; or, on the local target, give none of them and the
    component creates a SoftHSM2-backed cluster in the backend's data dir first."""

    custom_key_store_id: pulumi.Output[str]
    cluster_id: pulumi.Output[str]
    connection_state: pulumi.Output[str]

    def __init__(self, name: str, *, custom_key_store_name: Optional[str] = None,
                 cluster_id: Optional[pulumi.Input[str]] = None,
                 trust_anchor_certificate: Optional[pulumi.Input[str]] = None,
                 key_store_password: Optional[pulumi.Input[str]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        given = [v is not None for v in (cluster_id, trust_anchor_certificate, key_store_password)]
        if any(given) and not all(given):
            raise ComponentInputError("CloudHsmKeyStore: give cluster_id, trust_anchor_certificate and "
                                      "key_store_password together, or none of them (local target: a new cluster)")
        super().__init__("kms-iac:index:CloudHsmKeyStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if not any(given):
            cluster = kms.HsmCluster(f"{name}-cluster", name=f"{name}-cluster", opts=child)
            cluster_id, trust_anchor_certificate = cluster.cluster_id, cluster.trust_anchor_certificate
            key_store_password = cluster.key_store_password
        store = kms.CustomKeyStore(name, custom_key_store_name=custom_key_store_name or name,
                                   cloud_hsm_cluster_id=cluster_id, trust_anchor_certificate=trust_anchor_certificate,
                                   key_store_password=pulumi.Output.secret(key_store_password), opts=child)
        self.custom_key_store_id = store.custom_key_store_id
        self.cluster_id = pulumi.Output.from_input(cluster_id)
        self.connection_state = store.connection_state
        self.register_outputs({"custom_key_store_id": self.custom_key_store_id, "cluster_id": self.cluster_id,
                               "connection_state": self.connection_state})
