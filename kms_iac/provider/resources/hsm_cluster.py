"""``kms-iac:index:HsmCluster``: a CloudHSM cluster for the local target, i.e. a SoftHSM2
token initialised in the backend's data dir.

On AWS, clusters are created with the AWS provider; this resource exists so a program
can stand up a CloudHSM key store end to end against the bundled backend. It needs the
data dir of the backend (the embedded one, or ``kms-iac:dataDir`` of a local server).
"""

from __future__ import annotations

from pathlib import Path

from kms_iac.backend.core import DB_FILE
from kms_iac.backend.store import Store
from kms_iac.provider.resources.base import ResourceHandler, fail
from kms_iac.provider.spec import Prop, ResourceSpec

SPEC = ResourceSpec(
    "HsmCluster",
    "A CloudHSM cluster on the local target (a SoftHSM2 token), for CustomKeyStore.",
    (
        Prop("name", "string", "A name for the cluster.", replaces=True, required=True),
        Prop("userPin", "string", "PIN of the token's user (the key store password); random when omitted.",
             replaces=True, secret=True),
        Prop("soPin", "string", "PIN of the token's security officer; random when omitted.", replaces=True, secret=True),
        Prop("clusterId", "string", "The cluster id (cluster-...).", output=True),
        Prop("trustAnchorCertificate", "string", "PEM of the cluster's trust anchor certificate.", output=True),
        Prop("keyStorePassword", "string", "The password CreateCustomKeyStore takes.", output=True, secret=True),
    ),
)


class HsmClusterHandler(ResourceHandler):
    spec = SPEC
    data_dir: Path | None = None  # set by the provider from its target; None on AWS

    def validate(self, inputs: dict) -> list[tuple[str, str]]:
        pin = inputs.get("userPin")
        if isinstance(pin, str) and not 7 <= len(pin) <= 32:
            return [("userPin", "userPin (the key store password) must be 7 to 32 characters, as AWS requires")]
        return []

    def _dir(self, name: str, what: str) -> Path:
        if self.data_dir is None:
            raise fail(name, what, "HsmCluster exists only on the local target (embedded, or a local server with "
                                   "kms-iac:dataDir set); on AWS create CloudHSM clusters with the AWS provider")
        return self.data_dir

    def create(self, kms, name: str, inputs: dict, urn: str = "") -> tuple[str, dict]:
        from kms_iac.backend.ops.custom_key_stores import create_cluster

        result = create_cluster(self._dir(name, "create"), inputs["name"], user_pin=inputs.get("userPin"), so_pin=inputs.get("soPin"))
        return result["ClusterId"], {**inputs, "clusterId": result["ClusterId"],
                                     "trustAnchorCertificate": result["TrustAnchorCertificate"],
                                     "keyStorePassword": result["KeyStorePassword"]}

    def read(self, kms, name: str, resource_id: str, state: dict) -> dict | None:
        from kms_iac.backend.ops.custom_key_stores import get_cluster

        store = Store(self._dir(name, "read") / DB_FILE)
        try:
            cluster = get_cluster(store, resource_id)
        finally:
            store.close()
        if cluster is None:
            return None
        return {**state, "name": state.get("name") or cluster.name, "clusterId": resource_id,
                "trustAnchorCertificate": cluster.trust_anchor}

    def update(self, kms, name: str, resource_id: str, olds: dict, news: dict, changes: list[str]) -> dict:
        return {**olds, **news}  # every input replaces; nothing changes in place

    def delete(self, kms, name: str, resource_id: str, state: dict) -> None:
        store = Store(self._dir(name, "delete") / DB_FILE)
        try:
            with store.write() as c:
                (used,) = c.execute("SELECT COUNT(*) FROM custom_key_stores WHERE cluster_id=?", (resource_id,)).fetchone()
                if used:
                    raise fail(name, "delete", f"cluster {resource_id} still backs a custom key store; delete that first")
                c.execute("DELETE FROM hsm_clusters WHERE cluster_id=?", (resource_id,))
        finally:
            store.close()
