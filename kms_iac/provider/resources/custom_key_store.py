"""``kms-iac:index:CustomKeyStore``: an AWS CloudHSM key store, connected on create.

Name and password update in place (KMS requires the store disconnected for that, so
the update disconnects, updates and reconnects); the cluster and trust anchor replace
the store. Deleting disconnects and deletes it (KMS refuses while keys remain in it).
"""

from __future__ import annotations

import time

from botocore.exceptions import ClientError

from kms_iac.provider.resources.base import ResourceHandler, fail, kms_call, kms_error
from kms_iac.provider.spec import Prop, ResourceSpec

CONNECT_TIMEOUT = 120.0

SPEC = ResourceSpec(
    "CustomKeyStore",
    "An AWS CloudHSM key store: KMS keys whose material lives in your HSM cluster.",
    (
        Prop("customKeyStoreName", "string", "Name of the key store (unique in the account and Region).", required=True),
        Prop("cloudHsmClusterId", "string", "The CloudHSM cluster backing the store.", replaces=True, required=True),
        Prop("trustAnchorCertificate", "string", "PEM of the cluster's trust anchor certificate.", replaces=True, required=True),
        Prop("keyStorePassword", "string", "Password of the kmsuser crypto user in the cluster.", secret=True, required=True),
        Prop("customKeyStoreId", "string", "The key store id (cks-...).", output=True),
        Prop("connectionState", "string", "CONNECTED, DISCONNECTED, FAILED, ...", output=True),
    ),
)


def _describe(kms, store_id: str) -> dict | None:
    try:
        stores = kms.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("CustomKeyStoreNotFoundException", "NotFoundException"):
            return None
        raise
    return stores[0] if stores else None


class CustomKeyStoreHandler(ResourceHandler):
    spec = SPEC

    def validate(self, inputs: dict) -> list[tuple[str, str]]:
        cert = inputs.get("trustAnchorCertificate")
        if isinstance(cert, str) and "BEGIN CERTIFICATE" not in cert:
            return [("trustAnchorCertificate", "trustAnchorCertificate must be a PEM certificate")]
        return []

    def _connect(self, kms, name: str, store_id: str) -> None:
        kms_call(name, "ConnectCustomKeyStore", kms.connect_custom_key_store, CustomKeyStoreId=store_id)
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while True:
            store = _describe(kms, store_id) or {}
            state = store.get("ConnectionState")
            if state == "CONNECTED":
                return
            if state == "FAILED" or time.monotonic() > deadline:
                why = f"{store_id} is {state or 'not connected'}" + (f" ({store['ConnectionErrorCode']})" if store.get("ConnectionErrorCode") else "")
                raise fail(name, "ConnectCustomKeyStore", why + ("" if state == "FAILED" else f" after {CONNECT_TIMEOUT:.0f} s"))
            time.sleep(0.5)

    def create(self, kms, name: str, inputs: dict, urn: str = "") -> tuple[str, dict]:
        store_id = kms_call(name, "CreateCustomKeyStore", kms.create_custom_key_store,
                            CustomKeyStoreName=inputs["customKeyStoreName"], CloudHsmClusterId=inputs["cloudHsmClusterId"],
                            TrustAnchorCertificate=inputs["trustAnchorCertificate"],
                            KeyStorePassword=inputs["keyStorePassword"])["CustomKeyStoreId"]
        try:
            self._connect(kms, name, store_id)
        except Exception:
            try:
                kms.delete_custom_key_store(CustomKeyStoreId=store_id)
            except ClientError:
                pass
            raise
        state = self.read_back(kms, name, store_id, inputs)
        return store_id, state

    def read(self, kms, name: str, resource_id: str, state: dict) -> dict | None:
        store = _describe(kms, resource_id)
        if store is None:
            return None
        return {
            "customKeyStoreName": store["CustomKeyStoreName"], "cloudHsmClusterId": store.get("CloudHsmClusterId"),
            "trustAnchorCertificate": state.get("trustAnchorCertificate") or store.get("TrustAnchorCertificate"),
            "keyStorePassword": state.get("keyStorePassword"), "customKeyStoreId": resource_id,
            "connectionState": store.get("ConnectionState"),
        }

    def update(self, kms, name: str, resource_id: str, olds: dict, news: dict, changes: list[str]) -> dict:
        args: dict = {"CustomKeyStoreId": resource_id}
        if "customKeyStoreName" in changes:
            args["NewCustomKeyStoreName"] = news["customKeyStoreName"]
        if "keyStorePassword" in changes:
            args["KeyStorePassword"] = news["keyStorePassword"]
        if len(args) > 1:
            kms_call(name, "DisconnectCustomKeyStore", kms.disconnect_custom_key_store, CustomKeyStoreId=resource_id)
            kms_call(name, "UpdateCustomKeyStore", kms.update_custom_key_store, **args)
            self._connect(kms, name, resource_id)
        state = self.read_back(kms, name, resource_id, news)
        return state

    def delete(self, kms, name: str, resource_id: str, state: dict) -> None:
        if _describe(kms, resource_id) is None:
            return
        try:
            kms.disconnect_custom_key_store(CustomKeyStoreId=resource_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "CustomKeyStoreInvalidStateException":
                raise kms_error(name, "DisconnectCustomKeyStore", exc) from None
        kms_call(name, "DeleteCustomKeyStore", kms.delete_custom_key_store, CustomKeyStoreId=resource_id)
