"""CloudHSM custom key stores on the local backend, backed by a real SoftHSM2 token."""

from __future__ import annotations

import json
import re

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from cryptography import x509

from kms_iac.backend import hsm
from kms_iac.backend.clock import DAY
from kms_iac.backend.ops.custom_key_stores import create_cluster, token_key_attributes
from kms_iac.cli.main import cli

pytestmark = pytest.mark.skipif(
    not hsm.available(), reason="SoftHSM2 (softhsm2-util, libsofthsm2.so) or python-pkcs11 is not installed; "
    "scripts/setup.sh installs them"
)

PIN = "kmsuser-pass1"


def _code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


@pytest.fixture
def cluster(backend):
    return create_cluster(backend.data_dir, "test-cluster", user_pin=PIN, so_pin="so-pin-1234")


@pytest.fixture
def store_id(embedded, cluster):
    return embedded.create_custom_key_store(
        CustomKeyStoreName="ExampleKeyStore", CloudHsmClusterId=cluster["ClusterId"],
        TrustAnchorCertificate=cluster["TrustAnchorCertificate"], KeyStorePassword=cluster["KeyStorePassword"],
    )["CustomKeyStoreId"]


def _describe(kms, store_id: str) -> dict:
    return kms.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]


def test_create_cluster_cli_prints_one_json_object(tmp_path):
    data_dir = tmp_path / "kms"
    result = CliRunner().invoke(cli, ["local", "hsm", "create-cluster", "my-cluster", "--data-dir", str(data_dir),
                                      "--user-pin", "user-pin-123", "--so-pin", "so-pin-123"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out) == {"ClusterId", "TrustAnchorCertificate", "KeyStorePassword"}
    assert re.fullmatch(r"cluster-[2-7a-z]{11}", out["ClusterId"])
    assert out["KeyStorePassword"] == "user-pin-123"
    cert = x509.load_pem_x509_certificate(out["TrustAnchorCertificate"].encode())
    assert cert.issuer == cert.subject  # self-signed trust anchor
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    conf = data_dir / "hsm" / "softhsm2.conf"
    assert str(data_dir.resolve() / "hsm" / "tokens") in conf.read_text()
    assert any((data_dir / "hsm" / "tokens").iterdir())
    # a random password when none is given, and each cluster is its own token
    second = json.loads(CliRunner().invoke(cli, ["local", "hsm", "create-cluster", "other", "--data-dir", str(data_dir)]).output)
    assert second["ClusterId"] != out["ClusterId"] and 7 <= len(second["KeyStorePassword"]) <= 32


def test_full_lifecycle(embedded, backend, clock, cluster, store_id):
    kms = embedded
    assert re.fullmatch(r"cks-[0-9a-f]{17}", store_id)
    d = _describe(kms, store_id)
    assert d["ConnectionState"] == "DISCONNECTED" and "ConnectionErrorCode" not in d
    assert d["CloudHsmClusterId"] == cluster["ClusterId"] and d["CustomKeyStoreType"] == "AWS_CLOUDHSM"
    assert d["TrustAnchorCertificate"] == cluster["TrustAnchorCertificate"]
    assert kms.describe_custom_key_stores(CustomKeyStoreName="ExampleKeyStore")["CustomKeyStores"][0]["CustomKeyStoreId"] == store_id
    assert [s["CustomKeyStoreId"] for s in kms.describe_custom_key_stores()["CustomKeyStores"]] == [store_id]

    # keys need a connected store
    with pytest.raises(ClientError) as e:
        kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")
    assert _code(e) == "CustomKeyStoreInvalidStateException"

    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert _describe(kms, store_id)["ConnectionState"] == "CONNECTED"
    md = kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM", Description="in the HSM")["KeyMetadata"]
    key_id = md["KeyId"]
    assert md["Origin"] == "AWS_CLOUDHSM" and md["CustomKeyStoreId"] == store_id
    assert md["CloudHsmClusterId"] == cluster["ClusterId"] and md["KeyState"] == "Enabled"

    ctx = {"purpose": "test"}
    ct = kms.encrypt(KeyId=key_id, Plaintext=b"secret data", EncryptionContext=ctx)["CiphertextBlob"]
    out = kms.decrypt(CiphertextBlob=ct, EncryptionContext=ctx)
    assert out["Plaintext"] == b"secret data" and out["KeyId"].endswith(key_id)
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=ct, EncryptionContext={"purpose": "other"})
    assert _code(e) == "InvalidCiphertextException"
    tampered = ct[:-1] + bytes([ct[-1] ^ 1])
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=tampered, EncryptionContext=ctx)
    assert _code(e) == "InvalidCiphertextException"
    dk = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert len(dk["Plaintext"]) == 32
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]
    dk2 = kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=16)
    assert len(kms.decrypt(CiphertextBlob=dk2["CiphertextBlob"])["Plaintext"]) == 16
    re_ct = kms.re_encrypt(CiphertextBlob=ct, SourceEncryptionContext=ctx, DestinationKeyId=key_id)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=re_ct)["Plaintext"] == b"secret data"

    # rotation is not for custom key store keys
    with pytest.raises(ClientError) as e:
        kms.enable_key_rotation(KeyId=key_id)
    assert _code(e) == "UnsupportedOperationException"

    # updating the password or deleting needs a disconnected store; renaming does not
    for call in (lambda: kms.update_custom_key_store(CustomKeyStoreId=store_id, KeyStorePassword=PIN),
                 lambda: kms.delete_custom_key_store(CustomKeyStoreId=store_id)):
        with pytest.raises(ClientError) as e:
            call()
        assert _code(e) == "CustomKeyStoreInvalidStateException"
    kms.update_custom_key_store(CustomKeyStoreId=store_id, NewCustomKeyStoreName="Renamed")
    assert _describe(kms, store_id)["CustomKeyStoreName"] == "Renamed"

    # disconnected: keys are Unavailable and refuse cryptographic use
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    assert _describe(kms, store_id)["ConnectionState"] == "DISCONNECTED"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Unavailable"
    arn = md["Arn"]
    for call in (lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"),
                 lambda: kms.decrypt(CiphertextBlob=ct, EncryptionContext=ctx),
                 lambda: kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")):
        with pytest.raises(ClientError) as e:
            call()
        assert _code(e) == "KMSInvalidStateException"
        assert e.value.response["Error"]["Message"] == f"{arn} is unavailable."
    with pytest.raises(ClientError) as e:
        kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    assert _code(e) == "CustomKeyStoreInvalidStateException"

    # reconnect: the key is back, old ciphertexts decrypt
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=ct, EncryptionContext=ctx)["Plaintext"] == b"secret data"

    # a disabled key stays disabled across a disconnect/connect
    kms.disable_key(KeyId=key_id)
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Unavailable"
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    kms.enable_key(KeyId=key_id)

    # a store with keys cannot be deleted, even while they wait for deletion
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    with pytest.raises(ClientError) as e:
        kms.delete_custom_key_store(CustomKeyStoreId=store_id)
    assert _code(e) == "CustomKeyStoreHasCMKsException"
    sched = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert sched["KeyState"] == "PendingDeletion"
    with pytest.raises(ClientError) as e:
        kms.delete_custom_key_store(CustomKeyStoreId=store_id)
    assert _code(e) == "CustomKeyStoreHasCMKsException"

    clock.advance(7 * DAY + 1)
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=key_id)
    assert _code(e) == "NotFoundException"
    kms.delete_custom_key_store(CustomKeyStoreId=store_id)
    with pytest.raises(ClientError) as e:
        kms.describe_custom_key_stores(CustomKeyStoreId=store_id)
    assert _code(e) == "CustomKeyStoreNotFoundException"
    assert kms.describe_custom_key_stores()["CustomKeyStores"] == []


def test_wrong_password_fails_with_invalid_credentials(embedded, cluster):
    kms = embedded
    sid = kms.create_custom_key_store(
        CustomKeyStoreName="BadPassword", CloudHsmClusterId=cluster["ClusterId"],
        TrustAnchorCertificate=cluster["TrustAnchorCertificate"], KeyStorePassword="not-the-pin",
    )["CustomKeyStoreId"]
    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    d = _describe(kms, sid)
    assert d["ConnectionState"] == "FAILED" and d["ConnectionErrorCode"] == "INVALID_CREDENTIALS"
    with pytest.raises(ClientError) as e:  # a FAILED store must be disconnected before reconnecting
        kms.connect_custom_key_store(CustomKeyStoreId=sid)
    assert _code(e) == "CustomKeyStoreInvalidStateException"
    with pytest.raises(ClientError) as e:
        kms.create_key(CustomKeyStoreId=sid, Origin="AWS_CLOUDHSM")
    assert _code(e) == "CustomKeyStoreInvalidStateException"
    kms.disconnect_custom_key_store(CustomKeyStoreId=sid)
    assert "ConnectionErrorCode" not in _describe(kms, sid)
    kms.update_custom_key_store(CustomKeyStoreId=sid, KeyStorePassword=PIN)
    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    assert _describe(kms, sid)["ConnectionState"] == "CONNECTED"


def test_create_custom_key_store_refusals(embedded, backend, cluster, store_id):
    kms = embedded
    args = {"CloudHsmClusterId": cluster["ClusterId"], "TrustAnchorCertificate": cluster["TrustAnchorCertificate"],
                "KeyStorePassword": PIN}
    with pytest.raises(ClientError) as e:
        kms.create_custom_key_store(CustomKeyStoreName="ExampleKeyStore", **args)
    assert _code(e) == "CustomKeyStoreNameInUseException"
    with pytest.raises(ClientError) as e:
        kms.create_custom_key_store(CustomKeyStoreName="Second", **args)
    assert _code(e) == "CloudHsmClusterInUseException"
    with pytest.raises(ClientError) as e:
        kms.create_custom_key_store(CustomKeyStoreName="Third", **{**args, "CloudHsmClusterId": "cluster-doesnotexist"})
    assert _code(e) == "CloudHsmClusterNotFoundException"
    other = create_cluster(backend.data_dir, "other", user_pin=PIN)
    with pytest.raises(ClientError) as e:  # another cluster's trust anchor
        kms.create_custom_key_store(CustomKeyStoreName="Fourth", CloudHsmClusterId=other["ClusterId"],
                                    TrustAnchorCertificate=cluster["TrustAnchorCertificate"], KeyStorePassword=PIN)
    assert _code(e) == "IncorrectTrustAnchorException"
    with pytest.raises(ClientError) as e:
        kms.describe_custom_key_stores(CustomKeyStoreName="NoSuchStore")
    assert _code(e) == "CustomKeyStoreNotFoundException"
    with pytest.raises(ClientError) as e:
        kms.connect_custom_key_store(CustomKeyStoreId="cks-0123456789abcdef0")
    assert _code(e) == "CustomKeyStoreNotFoundException"
    with pytest.raises(ClientError) as e:
        kms.create_key(CustomKeyStoreId="cks-0123456789abcdef0", Origin="AWS_CLOUDHSM")
    assert _code(e) == "CustomKeyStoreNotFoundException"


def test_key_material_never_leaves_the_token(embedded, backend, store_id):
    kms = embedded
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    key_id = kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key_id, Plaintext=b"x")
    key = backend.store.get_key(key_id, backend.region)
    from kms_iac.backend.core import Call

    call = Call(backend, backend.context(), backend.clock.now(), "test")
    attrs = token_key_attributes(call, key)
    assert attrs == {"extractable": False, "sensitive": True, "token": True, "bits": 256}
    assert backend.store.execute("SELECT COUNT(*) FROM materials WHERE key_id=?", (key_id,)) == [(0,)]
    # the password is stored wrapped, never in the clear
    db = (backend.data_dir / "kms.sqlite3").read_bytes()
    wal = backend.data_dir / "kms.sqlite3-wal"
    if wal.exists():
        db += wal.read_bytes()
    assert PIN.encode() not in db


def test_generate_random_from_the_token(embedded, store_id):
    kms = embedded
    with pytest.raises(ClientError) as e:
        kms.generate_random(NumberOfBytes=16, CustomKeyStoreId=store_id)
    assert _code(e) == "CustomKeyStoreInvalidStateException"
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert len(kms.generate_random(NumberOfBytes=33, CustomKeyStoreId=store_id)["Plaintext"]) == 33


def test_through_the_server_process(server):
    """A cluster made by the CLI while the server runs; the server finds the new token and uses it."""
    kms = server.client()
    cl = create_cluster(server.data_dir, "server-cluster", user_pin=PIN)
    sid = kms.create_custom_key_store(CustomKeyStoreName=f"srv-{cl['ClusterId']}", CloudHsmClusterId=cl["ClusterId"],
                                      TrustAnchorCertificate=cl["TrustAnchorCertificate"], KeyStorePassword=PIN)["CustomKeyStoreId"]
    kms.connect_custom_key_store(CustomKeyStoreId=sid)
    assert _describe(kms, sid)["ConnectionState"] == "CONNECTED"
    key_id = kms.create_key(CustomKeyStoreId=sid, Origin="AWS_CLOUDHSM")["KeyMetadata"]["KeyId"]
    ct = kms.encrypt(KeyId=key_id, Plaintext=b"via http")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=ct)["Plaintext"] == b"via http"
    kms.disconnect_custom_key_store(CustomKeyStoreId=sid)
    with pytest.raises(ClientError) as e:
        kms.decrypt(CiphertextBlob=ct)
    assert _code(e) == "KMSInvalidStateException"
