"""The AWS Encryption SDK for Python (v4) using the local server as its KMS.

The SDK's ``StrictAwsKmsMasterKeyProvider`` builds its own boto3 KMS clients from the
botocore session it is given; ``AWS_ENDPOINT_URL_KMS`` (honoured by botocore >= 1.31)
sends them to the server. A dead proxy on 127.0.0.1 catches any request that would
otherwise have gone to real AWS, and each test checks the clients' endpoint first.

Handlers registered on the botocore session (and so copied into every client the SDK
creates) capture the data key plaintexts that cross the wire, so the audit log can be
checked for their absence.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from pathlib import Path

import boto3
import botocore.session
import pytest

aws_encryption_sdk = pytest.importorskip("aws_encryption_sdk")
from aws_encryption_sdk import CommitmentPolicy  # noqa: E402
from aws_encryption_sdk.exceptions import AWSEncryptionSDKClientError, DecryptKeyError  # noqa: E402
from cryptography.exceptions import InvalidSignature, InvalidTag  # noqa: E402

from kms_iac.backend.audit import AUDIT_FILE  # noqa: E402

REGION = "us-east-1"
MIB = 1024 * 1024
CONTEXT = {"Department": "Finance", "purpose": "esdk-test", "tenant": "t-123"}
SDK_UA = "AwsEncryptionSdkPython/"
# What a corrupted message may raise: the SDK's own errors, or cryptography's tag/signature failures.
TAMPER_ERRORS = (AWSEncryptionSDKClientError, InvalidTag, InvalidSignature)


class AuditTail:
    """The server's audit log from a given point on."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / AUDIT_FILE
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def raw(self) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return f.read()

    def events(self, name: str | None = None, arn: str | None = None) -> list[dict]:
        return _named([json.loads(line) for line in self.raw().splitlines() if line.strip()], name, arn)


def _named(events: list[dict], name: str | None = None, arn: str | None = None) -> list[dict]:
    """The events of operation ``name`` on key ``arn`` (either filter optional)."""
    return [
        e for e in events
        if (name is None or e["eventName"] == name)
        and (arn is None or arn in [r["ARN"] for r in e.get("resources", [])])
    ]


class Wire:
    """A botocore session for the SDK that records every data key plaintext it sees."""

    def __init__(self) -> None:
        self.data_keys: list[bytes] = []
        self.session = botocore.session.Session()
        self.session.set_credentials("AKIAKMSIACESDKTEST01", "esdk-test-secret")
        self.session.set_config_variable("region", REGION)
        self.session.register("after-call.kms.GenerateDataKey", self._from_response)
        self.session.register("after-call.kms.Decrypt", self._from_response)
        self.session.register("provide-client-params.kms.Encrypt", self._from_encrypt_request)

    def _from_response(self, parsed, **_kw) -> None:
        if isinstance(parsed, dict) and parsed.get("Plaintext"):
            self.data_keys.append(parsed["Plaintext"])

    def _from_encrypt_request(self, params, **_kw) -> None:
        if params.get("Plaintext"):
            self.data_keys.append(params["Plaintext"])


@pytest.fixture(scope="module")
def local_kms_env(server):
    """Route botocore's KMS clients to the server; anything else to a dead local proxy."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            mp.delenv(var, raising=False)
        mp.setenv("AWS_ENDPOINT_URL_KMS", server.url)
        mp.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
        mp.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        yield server


@pytest.fixture(scope="module")
def keys(local_kms_env) -> tuple[str, str]:
    kms = local_kms_env.client()
    a = kms.create_key(Description="esdk key A")["KeyMetadata"]["Arn"]
    b = kms.create_key(Description="esdk key B")["KeyMetadata"]["Arn"]
    return a, b


@pytest.fixture(scope="module")
def sdk():
    return aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)


def provider(server, wire: Wire, *key_arns: str):
    p = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=list(key_arns), botocore_session=wire.session)
    # The provider made its regional client up front: it must point at the server, never at AWS.
    endpoints = {region: c.meta.endpoint_url for region, c in p._regional_clients.items()}
    assert endpoints and set(endpoints.values()) == {server.url}, endpoints
    return p


@pytest.fixture(scope="module")
def big_message(local_kms_env, keys, sdk):
    """5 MiB of random bytes encrypted once under key A (shared by the tests below)."""
    server = local_kms_env
    wire = Wire()
    tail = AuditTail(server.data_dir)
    data = os.urandom(5 * MIB)
    ciphertext, header = sdk.encrypt(source=data, key_provider=provider(server, wire, keys[0]), encryption_context=CONTEXT)
    # the calls the encryption made, taken now: later tests add events for the same key
    return {"data": data, "ciphertext": ciphertext, "header": header, "wire": wire, "events": tail.events()}


def _assert_context(ec: dict) -> None:
    for k, v in CONTEXT.items():
        assert ec.get(k) == v, (k, ec)


def _assert_not_logged(data_dir: Path, secrets: list[bytes]) -> None:
    """None of ``secrets`` appears in the whole audit log, raw or in any common encoding."""
    raw = (Path(data_dir) / AUDIT_FILE).read_bytes()
    text = raw.decode()
    assert secrets
    for s in secrets:
        assert s not in raw
        assert base64.b64encode(s).decode() not in text
        assert base64.urlsafe_b64encode(s).decode() not in text
        assert s.hex() not in text.lower()


def test_five_mib_round_trip(local_kms_env, keys, sdk, big_message):
    server, key_a = local_kms_env, keys[0]
    data, ciphertext, header = big_message["data"], big_message["ciphertext"], big_message["header"]
    assert len(ciphertext) > len(data)
    assert data[:4096] not in ciphertext

    # one data key, wrapped by key A through the server
    edks = list(header.encrypted_data_keys)
    assert len(edks) == 1
    assert edks[0].key_provider.provider_id == "aws-kms"
    assert edks[0].key_provider.key_info.decode() == key_a
    _assert_context(header.encryption_context)

    wire = Wire()
    tail = AuditTail(server.data_dir)
    plaintext, dheader = sdk.decrypt(source=ciphertext, key_provider=provider(server, wire, key_a))
    assert plaintext == data
    _assert_context(dheader.encryption_context)
    assert dheader.encryption_context == header.encryption_context

    # the audit log: GenerateDataKey at encryption, Decrypt now, both for key A, by the SDK
    gdk = _named(big_message["events"], "GenerateDataKey", key_a)
    assert len(gdk) == 1 and "errorCode" not in gdk[0]
    assert gdk[0]["userAgent"].find(SDK_UA) >= 0
    assert gdk[0]["requestParameters"]["keyId"] == key_a
    assert gdk[0]["responseElements"] is None
    dec = tail.events("Decrypt", key_a)
    assert len(dec) == 1 and "errorCode" not in dec[0]
    assert SDK_UA in dec[0]["userAgent"]
    assert dec[0]["eventSource"] == "kms.amazonaws.com" and dec[0]["readOnly"] is True
    assert dec[0]["resources"] == [{"accountId": "111122223333", "type": "AWS::KMS::Key", "ARN": key_a}]

    # ...and no data key plaintext anywhere in it
    data_keys = big_message["wire"].data_keys + wire.data_keys
    assert len(data_keys) == 2 and data_keys[0] == data_keys[1] and len(data_keys[0]) == 32
    _assert_not_logged(server.data_dir, data_keys)


def test_audit_keeps_encryption_context_keys_verbatim(big_message, keys):
    """CloudTrail records the encryption context as given: ``Department`` stays ``Department``."""
    (gdk,) = _named(big_message["events"], "GenerateDataKey", keys[0])
    logged = gdk["requestParameters"]["encryptionContext"]
    for k, v in CONTEXT.items():
        assert logged.get(k) == v, logged


def test_streaming_round_trip(local_kms_env, keys, sdk, tmp_path):
    server, key_a = local_kms_env, keys[0]
    wire = Wire()
    src = tmp_path / "plain.bin"
    with open(src, "wb") as f:
        for _ in range(6):
            f.write(os.urandom(MIB))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()

    enc_path = tmp_path / "message.esdk"
    with open(src, "rb") as fin, open(enc_path, "wb") as fout:
        with sdk.stream(
            mode="e", source=fin, key_provider=provider(server, wire, key_a),
            encryption_context=CONTEXT, frame_length=64 * 1024,
        ) as encryptor:
            for chunk in encryptor:
                fout.write(chunk)
            _assert_context(encryptor.header.encryption_context)

    h = hashlib.sha256()
    size = 0
    with open(enc_path, "rb") as fin:
        with sdk.stream(mode="d", source=fin, key_provider=provider(server, wire, key_a)) as decryptor:
            while True:
                chunk = decryptor.read(256 * 1024)
                if not chunk:
                    break
                h.update(chunk)
                size += len(chunk)
            _assert_context(decryptor.header.encryption_context)
    assert size == 6 * MIB
    assert h.hexdigest() == digest


def test_tampered_body_fails(local_kms_env, keys, sdk, big_message):
    bad = bytearray(big_message["ciphertext"])
    bad[len(bad) // 2] ^= 0x01
    with pytest.raises(TAMPER_ERRORS):
        sdk.decrypt(source=bytes(bad), key_provider=provider(local_kms_env, Wire(), keys[0]))


def test_tampered_data_key_is_refused_by_kms(local_kms_env, keys, sdk, big_message):
    """A flipped byte in the encrypted data key: the server answers InvalidCiphertextException."""
    server, key_a = local_kms_env, keys[0]
    ciphertext = big_message["ciphertext"]
    (edk,) = big_message["header"].encrypted_data_keys
    blob = edk.encrypted_data_key
    at = ciphertext.find(blob)
    assert at > 0 and ciphertext.find(blob, at + 1) == -1
    bad = bytearray(ciphertext)
    bad[at + len(blob) - 5] ^= 0x01  # inside the KMS ciphertext's authenticated part
    tail = AuditTail(server.data_dir)
    with pytest.raises(DecryptKeyError):
        sdk.decrypt(source=bytes(bad), key_provider=provider(server, Wire(), key_a))
    refused = tail.events("Decrypt")
    assert [e.get("errorCode") for e in refused] == ["InvalidCiphertextException"]


def test_other_keys_provider_cannot_decrypt(local_kms_env, keys, sdk, big_message):
    server, key_b = local_kms_env, keys[1]
    tail = AuditTail(server.data_dir)
    with pytest.raises(DecryptKeyError):
        sdk.decrypt(source=big_message["ciphertext"], key_provider=provider(server, Wire(), key_b))
    # a strict provider does not even ask KMS about a data key wrapped by another key
    assert tail.events("Decrypt") == []


def test_two_keys_decrypt_with_the_second_only(local_kms_env, keys, sdk):
    server, (key_a, key_b) = local_kms_env, keys
    data = os.urandom(3 * MIB + 17)
    wire = Wire()
    tail = AuditTail(server.data_dir)
    ciphertext, header = sdk.encrypt(
        source=data, key_provider=provider(server, wire, key_a, key_b), encryption_context=CONTEXT
    )
    wrapped_by = sorted(e.key_provider.key_info.decode() for e in header.encrypted_data_keys)
    assert wrapped_by == sorted([key_a, key_b])
    # generator key A made the data key; key B wrapped the same data key with kms:Encrypt
    assert len(tail.events("GenerateDataKey", key_a)) == 1
    enc = tail.events("Encrypt", key_b)
    assert len(enc) == 1 and "errorCode" not in enc[0]
    assert tail.events("GenerateDataKey", key_b) == [] and tail.events("Encrypt", key_a) == []

    plaintext, dheader = sdk.decrypt(source=ciphertext, key_provider=provider(server, wire, key_b))
    assert plaintext == data
    _assert_context(dheader.encryption_context)
    assert len(tail.events("Decrypt", key_b)) == 1
    assert tail.events("Decrypt", key_a) == []

    # GenerateDataKey's plaintext, Encrypt's plaintext and Decrypt's plaintext: one data key, never logged
    assert len(wire.data_keys) == 3 and len(set(wire.data_keys)) == 1
    _assert_not_logged(server.data_dir, wire.data_keys)

    # with key B disabled, only key A can still open the message
    kms = server.client()
    kms.disable_key(KeyId=key_b)
    try:
        with pytest.raises(DecryptKeyError):
            sdk.decrypt(source=ciphertext, key_provider=provider(server, Wire(), key_b))
        assert tail.events("Decrypt", key_b)[-1]["errorCode"] == "DisabledException"
        assert sdk.decrypt(source=ciphertext, key_provider=provider(server, Wire(), key_a))[0] == data
    finally:
        kms.enable_key(KeyId=key_b)


def test_mpl_kms_keyring(local_kms_env, keys, sdk):
    """The Material Providers Library's AWS KMS keyring, when that optional library is installed."""
    mpl = pytest.importorskip(
        "aws_cryptographic_material_providers",
        reason="aws-cryptographic-material-providers (the MPL keyring API) is not installed; "
        "pip install 'aws-encryption-sdk[MPL]' to run this test",
    )
    del mpl
    from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders
    from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig
    from aws_cryptographic_material_providers.mpl.models import CreateAwsKmsKeyringInput

    server, key_a = local_kms_env, keys[0]
    kms_client = boto3.client(
        "kms", region_name=REGION, endpoint_url=server.url,
        aws_access_key_id="AKIAKMSIACESDKTEST01", aws_secret_access_key="esdk-test-secret",
    )
    providers = AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())
    keyring = providers.create_aws_kms_keyring(input=CreateAwsKmsKeyringInput(kms_key_id=key_a, kms_client=kms_client))
    data = os.urandom(2 * MIB)
    tail = AuditTail(server.data_dir)
    ciphertext, header = sdk.encrypt(source=data, keyring=keyring, encryption_context=CONTEXT)
    _assert_context(header.encryption_context)
    plaintext, dheader = sdk.decrypt(source=ciphertext, keyring=keyring, encryption_context=CONTEXT)
    assert plaintext == data
    _assert_context(dheader.encryption_context)
    assert len(tail.events("GenerateDataKey", key_a)) == 1
    assert len(tail.events("Decrypt", key_a)) == 1
    # and the keyring's message opens with the master key provider too
    assert sdk.decrypt(source=ciphertext, key_provider=provider(server, Wire(), key_a))[0] == data


def test_unique_context_values_reach_kms(local_kms_env, keys, sdk):
    """The encryption context is bound by KMS: the server sees exactly what the SDK sends."""
    server, key_a = local_kms_env, keys[0]
    marker = uuid.uuid4().hex
    tail = AuditTail(server.data_dir)
    ciphertext, _ = sdk.encrypt(source=b"small", key_provider=provider(server, Wire(), key_a), encryption_context={"run": marker})
    (gdk,) = tail.events("GenerateDataKey", key_a)
    ec = gdk["requestParameters"]["encryptionContext"]
    assert ec["run"] == marker
    assert "aws-crypto-public-key" in ec  # the signing suite's public key rides in the context
    assert sdk.decrypt(source=ciphertext, key_provider=provider(server, Wire(), key_a))[0] == b"small"
