"""CloudHSM custom key stores: CreateCustomKeyStore, DescribeCustomKeyStores,
ConnectCustomKeyStore, DisconnectCustomKeyStore, UpdateCustomKeyStore,
DeleteCustomKeyStore, and the local "clusters" (SoftHSM2 tokens) behind them.

A store's password (the token's user PIN) is kept wrapped under the root key. Keys
in a store are generated in the token and used only there (see ``hsm.py``). While a
store is not CONNECTED its keys are in key state Unavailable; connecting restores the
state each key had (Enabled or Disabled).
"""

from __future__ import annotations

import datetime
import os
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from kms_iac.backend import hsm, keystate
from kms_iac.backend.core import DB_FILE, Call
from kms_iac.backend.datadir import database_error, open_data_dir
from kms_iac.backend.errors import (
    CloudHsmClusterInUseException,
    CloudHsmClusterNotFoundException,
    CloudHsmClusterNotRelatedException,
    CustomKeyStoreHasCMKsException,
    CustomKeyStoreInvalidStateException,
    CustomKeyStoreNameInUseException,
    CustomKeyStoreNotFoundException,
    IncorrectTrustAnchorException,
    KMSInternalException,
    KMSInvalidStateException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.pagination import paginate
from kms_iac.backend.store import KeyRecord, Store

CLOUDHSM = "AWS_CLOUDHSM"
CONNECTED, CONNECTING, DISCONNECTED, DISCONNECTING, FAILED = (
    "CONNECTED", "CONNECTING", "DISCONNECTED", "DISCONNECTING", "FAILED")
_COLS = ("cks_id", "account", "region", "name", "store_type", "cluster_id", "trust_anchor", "wrapped_password",
         "connection_state", "connection_error_code", "created")


@dataclass
class KeyStoreRecord:
    cks_id: str
    account: str
    region: str
    name: str
    store_type: str
    cluster_id: str | None
    trust_anchor: str | None
    wrapped_password: bytes | None
    connection_state: str
    connection_error_code: str | None
    created: float


@dataclass
class ClusterRecord:
    cluster_id: str
    name: str
    token_label: str
    token_serial: str
    trust_anchor: str
    created: float


# -- clusters (the local stand-in for CloudHSM clusters) ---------------------------------


def _new_cluster_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    return "cluster-" + "".join(secrets.choice(alphabet) for _ in range(11))


def _trust_anchor(cluster_id: str, name: str) -> str:
    """A self-signed CA certificate standing for the cluster's trust anchor."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kms-iac local CloudHSM"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, name[:64] or cluster_id),
        x509.NameAttribute(NameOID.COMMON_NAME, cluster_id),
    ])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def create_cluster(data_dir: Path | str, name: str, user_pin: str | None = None, so_pin: str | None = None,
                   when: float | None = None) -> dict:
    """Initialise a SoftHSM2 token in ``data_dir`` and record it as a cluster.

    Returns what CreateCustomKeyStore takes: ClusterId, TrustAnchorCertificate, KeyStorePassword.
    """
    import time

    data_dir = Path(data_dir)
    user_pin = secrets.token_urlsafe(12) if user_pin is None else user_pin
    so_pin = secrets.token_urlsafe(12) if so_pin is None else so_pin
    if not 7 <= len(user_pin) <= 32:
        raise ValueError("the user PIN (KeyStorePassword) must be 7 to 32 characters long, as AWS requires")
    if not 4 <= len(so_pin) <= 255:
        raise ValueError("the SO PIN must be 4 to 255 characters long")
    for label, pin in (("user PIN", user_pin), ("SO PIN", so_pin)):
        if not pin.isprintable() or pin != pin.strip():
            raise ValueError(f"the {label} must be printable characters without leading or trailing spaces")
    open_data_dir(data_dir)  # checked (and started) before the token is made: a bad data dir changes nothing
    cluster_id = _new_cluster_id()
    serial = hsm.init_token(data_dir, cluster_id, so_pin, user_pin)
    cert = _trust_anchor(cluster_id, name)
    try:
        store = Store(data_dir / DB_FILE)
    except sqlite3.Error as exc:
        raise database_error(data_dir / DB_FILE, exc) from None
    try:
        with store.write() as c:
            c.execute(
                "INSERT INTO hsm_clusters (cluster_id, name, token_label, token_serial, trust_anchor, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (cluster_id, name, cluster_id, serial, cert, when if when is not None else time.time()),
            )
    finally:
        store.close()
    return {"ClusterId": cluster_id, "TrustAnchorCertificate": cert, "KeyStorePassword": user_pin}


def get_cluster(store: Store, cluster_id: str) -> ClusterRecord | None:
    row = store.execute(
        "SELECT cluster_id, name, token_label, token_serial, trust_anchor, created FROM hsm_clusters WHERE cluster_id=?",
        (cluster_id,),
    )
    return ClusterRecord(*row[0]) if row else None


def _same_cert(a: str, b: str) -> bool:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificate(a.encode()) == x509.load_pem_x509_certificate(b.encode())
    except ValueError:
        return False


# -- key store records -------------------------------------------------------------------


def _rows(call: Call, where: str = "", args: tuple = ()) -> list[KeyStoreRecord]:
    sql = f"SELECT {', '.join(_COLS)} FROM custom_key_stores WHERE account=? AND region=?"
    return [KeyStoreRecord(*r) for r in call.store.execute(sql + where, (call.ctx.account, call.ctx.region, *args))]


def get_store(call: Call, cks_id: str) -> KeyStoreRecord:
    rows = _rows(call, " AND cks_id=?", (cks_id,))
    if not rows:
        raise CustomKeyStoreNotFoundException(None)
    return rows[0]


def _store_by_id_any(call: Call, cks_id: str) -> KeyStoreRecord | None:
    rows = call.store.execute(f"SELECT {', '.join(_COLS)} FROM custom_key_stores WHERE cks_id=?", (cks_id,))
    return KeyStoreRecord(*rows[0]) if rows else None


def _password(call: Call, ks: KeyStoreRecord) -> str:
    assert ks.wrapped_password is not None
    return call.backend.wrapper.open_blob(_pw_label(ks.cks_id), ks.wrapped_password).decode()


def _pw_label(cks_id: str) -> bytes:
    return f"custom-key-store-password:{cks_id}".encode()


def _token(call: Call, ks: KeyStoreRecord) -> hsm.TokenRef:
    cluster = get_cluster(call.store, ks.cluster_id or "")
    if cluster is None:
        raise KMSInternalException("The custom key store's cluster no longer exists.")
    return hsm.TokenRef(call.backend.data_dir, cluster.token_label, _password(call, ks))


def _set(c: sqlite3.Connection, cks_id: str, **changes) -> None:
    sets = ", ".join(f"{k}=?" for k in changes)
    c.execute(f"UPDATE custom_key_stores SET {sets} WHERE cks_id=?", (*changes.values(), cks_id))


def _describe(ks: KeyStoreRecord) -> dict:
    out: dict = {
        "CustomKeyStoreId": ks.cks_id,
        "CustomKeyStoreName": ks.name,
        "CloudHsmClusterId": ks.cluster_id,
        "TrustAnchorCertificate": ks.trust_anchor,
        "ConnectionState": ks.connection_state,
        "CreationDate": ks.created,
        "CustomKeyStoreType": ks.store_type,
    }
    if ks.connection_state == FAILED and ks.connection_error_code:
        out["ConnectionErrorCode"] = ks.connection_error_code
    return out


def _keys_in(call: Call, cks_id: str) -> list[KeyRecord]:
    return [k for k in call.store.all_keys() if k.custom_key_store_id == cks_id]


def _make_unavailable(call: Call, c: sqlite3.Connection, cks_id: str) -> None:
    for k in _keys_in(call, cks_id):
        if k.state in (keystate.ENABLED, keystate.DISABLED):
            c.execute("INSERT OR REPLACE INTO cks_saved_key_states (key_id, region, state) VALUES (?, ?, ?)",
                      (k.key_id, k.region, k.state))
            call.store.update_key(c, k, state=keystate.UNAVAILABLE)


def _make_available(call: Call, c: sqlite3.Connection, cks_id: str) -> None:
    for k in _keys_in(call, cks_id):
        if k.state != keystate.UNAVAILABLE:
            continue
        row = c.execute("SELECT state FROM cks_saved_key_states WHERE key_id=? AND region=?",
                        (k.key_id, k.region)).fetchone()
        call.store.update_key(c, k, state=row[0] if row else keystate.ENABLED)
        c.execute("DELETE FROM cks_saved_key_states WHERE key_id=? AND region=?", (k.key_id, k.region))


# -- operations -------------------------------------------------------------------------


@operation("CreateCustomKeyStore", mutates=True)
def create_custom_key_store(call: Call, params: dict) -> dict:
    store_type = params.get("CustomKeyStoreType") or CLOUDHSM
    if store_type != CLOUDHSM:
        raise UnsupportedOperationException(
            f"CustomKeyStoreType {store_type} is not supported by the kms-iac local backend; only AWS_CLOUDHSM is.")
    name = params["CustomKeyStoreName"]
    missing = [p for p in ("CloudHsmClusterId", "TrustAnchorCertificate", "KeyStorePassword") if not params.get(p)]
    if missing:
        raise ValidationException(f"{', '.join(missing)} is required for a custom key store of type {CLOUDHSM}.")
    cluster = get_cluster(call.store, params["CloudHsmClusterId"])
    if cluster is None:
        raise CloudHsmClusterNotFoundException(f"CloudHSM cluster {params['CloudHsmClusterId']} not found.")
    if _rows(call, " AND name=?", (name,)):
        raise CustomKeyStoreNameInUseException(f"Custom key store name {name} is already in use.")
    if call.store.execute("SELECT 1 FROM custom_key_stores WHERE cluster_id=?", (cluster.cluster_id,)):
        raise CloudHsmClusterInUseException(
            f"CloudHSM cluster {cluster.cluster_id} is already associated with a custom key store.")
    if not _same_cert(params["TrustAnchorCertificate"], cluster.trust_anchor):
        raise IncorrectTrustAnchorException(
            f"The trust anchor certificate does not match the trust anchor of cluster {cluster.cluster_id}.")
    cks_id = "cks-" + os.urandom(9).hex()[:17]
    wrapped = call.backend.wrapper.seal_blob(_pw_label(cks_id), params["KeyStorePassword"].encode())
    with call.write() as c:
        c.execute(
            f"INSERT INTO custom_key_stores ({', '.join(_COLS)}) VALUES ({', '.join('?' * len(_COLS))})",
            (cks_id, call.ctx.account, call.ctx.region, name, CLOUDHSM, cluster.cluster_id, cluster.trust_anchor,
             wrapped, DISCONNECTED, None, call.now),
        )
    return {"CustomKeyStoreId": cks_id}


@operation("DescribeCustomKeyStores")
def describe_custom_key_stores(call: Call, params: dict) -> dict:
    cks_id, name = params.get("CustomKeyStoreId"), params.get("CustomKeyStoreName")
    if cks_id and name:
        raise ValidationException("Specify either CustomKeyStoreId or CustomKeyStoreName, not both.")
    if cks_id:
        rows = _rows(call, " AND cks_id=?", (cks_id,))
    elif name:
        rows = _rows(call, " AND name=?", (name,))
    else:
        rows = _rows(call)
    if (cks_id or name) and not rows:
        raise CustomKeyStoreNotFoundException(None)
    page, extra = paginate(rows, params, sort_key=lambda r: f"{r.created:020.6f}{r.cks_id}")
    return {"CustomKeyStores": [_describe(r) for r in page], **extra}


@operation("ConnectCustomKeyStore", mutates=True)
def connect_custom_key_store(call: Call, params: dict) -> dict:
    ks = get_store(call, params["CustomKeyStoreId"])
    if ks.connection_state in (DISCONNECTING, FAILED):
        raise CustomKeyStoreInvalidStateException(
            f"Custom key store {ks.cks_id} is {ks.connection_state}; to reconnect a FAILED store, disconnect it first.")
    if ks.connection_state == CONNECTED:
        return {}
    cluster = get_cluster(call.store, ks.cluster_id or "")
    error = None
    if cluster is None:
        error = "CLUSTER_NOT_FOUND"
    else:
        try:
            hsm.MANAGER.login(hsm.conf_path(call.backend.data_dir), cluster.token_label, _password(call, ks))
        except hsm.InvalidCredentials:
            error = "INVALID_CREDENTIALS"
        except hsm.TokenNotFound:
            error = "CLUSTER_NOT_FOUND"
        except hsm.HsmUnavailable:
            error = "NETWORK_ERRORS"
    with call.write() as c:
        if error is None:
            _set(c, ks.cks_id, connection_state=CONNECTED, connection_error_code=None)
            _make_available(call, c, ks.cks_id)
        else:
            _set(c, ks.cks_id, connection_state=FAILED, connection_error_code=error)
    return {}


@operation("DisconnectCustomKeyStore", mutates=True)
def disconnect_custom_key_store(call: Call, params: dict) -> dict:
    ks = get_store(call, params["CustomKeyStoreId"])
    if ks.connection_state in (DISCONNECTING, DISCONNECTED):
        raise CustomKeyStoreInvalidStateException(f"Custom key store {ks.cks_id} is {ks.connection_state}.")
    with call.write() as c:
        _set(c, ks.cks_id, connection_state=DISCONNECTED, connection_error_code=None)
        _make_unavailable(call, c, ks.cks_id)
    cluster = get_cluster(call.store, ks.cluster_id or "")
    if cluster is not None:
        hsm.MANAGER.logout(hsm.conf_path(call.backend.data_dir), cluster.token_label)
    return {}


@operation("UpdateCustomKeyStore", mutates=True)
def update_custom_key_store(call: Call, params: dict) -> dict:
    ks = get_store(call, params["CustomKeyStoreId"])
    new_name, password, cluster_id = (params.get("NewCustomKeyStoreName"), params.get("KeyStorePassword"),
                                      params.get("CloudHsmClusterId"))
    for p in ("XksProxyUriEndpoint", "XksProxyUriPath", "XksProxyVpcEndpointServiceName",
              "XksProxyAuthenticationCredential", "XksProxyConnectivity"):
        if params.get(p) is not None:
            raise ValidationException(f"{p} is not valid for a custom key store of type {CLOUDHSM}.")
    only_name = password is None and cluster_id is None
    if ks.connection_state != DISCONNECTED and not (only_name and ks.connection_state == CONNECTED):
        raise CustomKeyStoreInvalidStateException(
            f"Custom key store {ks.cks_id} must be disconnected to update it (it is {ks.connection_state}).")
    changes: dict = {}
    if new_name is not None and new_name != ks.name:
        if _rows(call, " AND name=?", (new_name,)):
            raise CustomKeyStoreNameInUseException(f"Custom key store name {new_name} is already in use.")
        changes["name"] = new_name
    if cluster_id is not None and cluster_id != ks.cluster_id:
        cluster = get_cluster(call.store, cluster_id)
        if cluster is None:
            raise CloudHsmClusterNotFoundException(f"CloudHSM cluster {cluster_id} not found.")
        # a "related" cluster shares the original's backups; locally, a token is related only to itself
        raise CloudHsmClusterNotRelatedException(
            f"CloudHSM cluster {cluster_id} is not related to the custom key store's cluster {ks.cluster_id}.")
    if password is not None:
        changes["wrapped_password"] = call.backend.wrapper.seal_blob(_pw_label(ks.cks_id), password.encode())
    if changes:
        with call.write() as c:
            _set(c, ks.cks_id, **changes)
    return {}


@operation("DeleteCustomKeyStore", mutates=True)
def delete_custom_key_store(call: Call, params: dict) -> dict:
    ks = get_store(call, params["CustomKeyStoreId"])
    if ks.connection_state != DISCONNECTED:
        raise CustomKeyStoreInvalidStateException(
            f"Custom key store {ks.cks_id} must be disconnected to delete it (it is {ks.connection_state}).")
    if _keys_in(call, ks.cks_id):
        raise CustomKeyStoreHasCMKsException(
            f"Custom key store {ks.cks_id} contains KMS keys; schedule their deletion and wait until they are deleted.")
    with call.write() as c:
        c.execute("DELETE FROM custom_key_stores WHERE cks_id=?", (ks.cks_id,))
    return {}


# -- keys in a CloudHSM key store (used by CreateKey and the cryptographic operations) ----


def store_for_new_key(call: Call, params: dict, origin: str, multi_region: bool) -> KeyStoreRecord:
    """Check CreateKey's custom-key-store arguments; return the (connected) store."""
    cks_id = params.get("CustomKeyStoreId")
    if origin != CLOUDHSM and cks_id:
        raise UnsupportedOperationException(f"Origin {origin} is not valid with a CustomKeyStoreId; use Origin {CLOUDHSM}.")
    if not cks_id:
        raise ValidationException(f"CustomKeyStoreId is required when Origin is {CLOUDHSM}.")
    if multi_region:
        raise UnsupportedOperationException("Multi-Region keys cannot be created in a custom key store.")
    ks = get_store(call, cks_id)
    if ks.store_type != CLOUDHSM:
        raise UnsupportedOperationException(f"Origin {CLOUDHSM} requires a custom key store of type {CLOUDHSM}.")
    if ks.connection_state != CONNECTED:
        raise CustomKeyStoreInvalidStateException(
            f"Custom key store {ks.cks_id} is not connected (ConnectionState {ks.connection_state}).")
    return ks


def create_hsm_key(call: Call, c: sqlite3.Connection, key: KeyRecord, ks: KeyStoreRecord) -> None:
    """Generate the key's first material version inside the token; SQLite gets only the version number."""
    try:
        hsm.MANAGER.generate_key(*_token_args(call, ks), hsm.key_label(key.key_id, 1))
    except hsm.InvalidCredentials:
        raise CustomKeyStoreInvalidStateException(
            f"Custom key store {ks.cks_id} could not log in to its cluster (INVALID_CREDENTIALS).") from None
    call.store.update_key(c, key, current_version=1)


def _token_args(call: Call, ks: KeyStoreRecord) -> tuple:
    t = _token(call, ks)
    return t.conf, t.label, t.pin


def token_for_key(call: Call, key: KeyRecord) -> hsm.TokenRef:
    """The token holding ``key``'s material; the key is unavailable unless its store is connected."""
    ks = _store_by_id_any(call, key.custom_key_store_id or "")
    if ks is None or ks.connection_state != CONNECTED:
        raise KMSInvalidStateException(f"{key.arn} is unavailable.")
    return _token(call, ks)


def cluster_of(call: Call, cks_id: str) -> str | None:
    ks = _store_by_id_any(call, cks_id)
    return ks.cluster_id if ks else None


def hsm_seal(call: Call, key: KeyRecord, plaintext: bytes, context: dict | None) -> bytes:
    token = token_for_key(call, key)
    try:
        return hsm.seal(token, key.key_id, key.current_version, plaintext, context)
    except hsm.InvalidCredentials:
        raise KMSInvalidStateException(f"{key.arn} is unavailable.") from None


def hsm_open(call: Call, key: KeyRecord, header, blob: bytes, context: dict | None) -> bytes:
    """Open a blob with the token (raises crypto.AuthenticationFailed / hsm.HsmKeyMissing on mismatch)."""
    token = token_for_key(call, key)
    try:
        return hsm.open_blob(token, header, blob, context)
    except hsm.InvalidCredentials:
        raise KMSInvalidStateException(f"{key.arn} is unavailable.") from None


def hsm_random(call: Call, cks_id: str, n: int) -> bytes:
    """GenerateRandom with a CustomKeyStoreId: the token's generator; the store must be connected."""
    ks = get_store(call, cks_id)
    if ks.store_type != CLOUDHSM:
        raise UnsupportedOperationException(f"GenerateRandom is not supported for custom key stores of type {ks.store_type}.")
    if ks.connection_state != CONNECTED:
        raise CustomKeyStoreInvalidStateException(
            f"Custom key store {ks.cks_id} is not connected (ConnectionState {ks.connection_state}).")
    return hsm.MANAGER.random(*_token_args(call, ks), n)


def token_key_attributes(call: Call, key: KeyRecord, version: int = 1) -> dict:
    """What the token says about a key's material (tests: CKA_EXTRACTABLE is false)."""
    t = token_for_key(call, key)
    return hsm.MANAGER.key_attributes(t.conf, t.label, t.pin, hsm.key_label(key.key_id, version))


__all__ = ["create_cluster", "create_hsm_key", "hsm_open", "hsm_seal", "store_for_new_key"]
