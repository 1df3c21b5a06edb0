"""The two front doors, side by side.

Parity: one scenario of calls against the embedded client and against the server gives
the same response shapes, values, error codes and messages (key ids and ARNs aside).

Shared data dir: a ``kms-iac local serve`` process and an embedded client in this
process open the same data dir at the same time. Each sees the other's keys, opens the
other's ciphertexts, and sees the other's state changes on the very next call (the
SQLite ``data_version`` check drops stale caches); concurrent writers through both
doors all succeed.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from kms_iac.backend.audit import read_events
from kms_iac.backend.core import Backend
from kms_iac.backend.embedded import embedded_client
from tests.helpers import ServerProcess

ACCOUNT = "111122223333"
REGION = "us-east-1"
_KEY_ID = re.compile(r"\b(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})\b")
_HEX = re.compile(r"\b[0-9a-f]{32,64}\b")
NO_RETRIES = botocore.config.Config(retries={"mode": "standard", "max_attempts": 1})


def norm(value):
    """Key ids (and so ARNs), material ids and run-unique names replaced by placeholders."""
    if isinstance(value, str):
        return _HEX.sub("<hex>", _KEY_ID.sub("<key-id>", value))
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [norm(v) for v in value]
    return value


def shape(resp) -> dict:
    """A response's structure: member names at every level, values only where deterministic."""
    if isinstance(resp, dict):
        return {k: shape(v) for k, v in resp.items() if k != "ResponseMetadata"}
    if isinstance(resp, list):
        return [shape(v) for v in resp]
    if isinstance(resp, (bytes, bytearray)):
        return f"<{len(resp)} bytes>" if len(resp) <= 64 else "<blob>"
    if isinstance(resp, float) or type(resp).__name__ == "datetime":
        return "<timestamp>"
    return norm(resp)


def call(client, op: str, **params):
    """(``ok``, shape) or (error code, normalized message, HTTP status, error members)."""
    try:
        resp = getattr(client, op)(**params)
    except ClientError as err:
        e = err.response["Error"]
        return ("error", e["Code"], norm(e.get("Message", "")), err.response["ResponseMetadata"]["HTTPStatusCode"], sorted(e))
    return ("ok", shape(resp), resp["ResponseMetadata"]["HTTPStatusCode"])


def scenario(client) -> dict:
    """The same calls, in the same order, whatever the front door."""
    run = uuid.uuid4().hex
    out: dict = {}
    created = client.create_key(
        Description="front door parity",
        Tags=[{"TagKey": "team", "TagValue": "platform"}, {"TagKey": "env", "TagValue": "test"}],
    )
    out["CreateKey"] = ("ok", shape(created), created["ResponseMetadata"]["HTTPStatusCode"])
    key_id = created["KeyMetadata"]["KeyId"]
    alias = f"alias/parity-{run}"
    out["CreateAlias"] = call(client, "create_alias", AliasName=alias, TargetKeyId=key_id)
    out["DescribeKey(alias)"] = call(client, "describe_key", KeyId=alias)
    context = {"Department": "Finance", "purpose": "parity"}
    enc = client.encrypt(KeyId=alias, Plaintext=b"parity plaintext", EncryptionContext=context)
    out["Encrypt"] = ("ok", shape(enc), 200)
    out["Decrypt"] = call(client, "decrypt", CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=context)
    out["Decrypt.Plaintext"] = client.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=context)["Plaintext"]
    out["GenerateDataKey"] = call(client, "generate_data_key", KeyId=key_id, KeySpec="AES_256")
    out["ListAliases(key)"] = call(client, "list_aliases", KeyId=key_id)
    out["ListResourceTags"] = call(client, "list_resource_tags", KeyId=key_id)
    out["GetKeyRotationStatus"] = call(client, "get_key_rotation_status", KeyId=key_id)
    out["GetKeyPolicy"] = call(client, "get_key_policy", KeyId=key_id, PolicyName="default")
    # errors
    out["NotFound"] = call(client, "describe_key", KeyId=str(uuid.uuid4()))
    out["NotFound(alias)"] = call(client, "encrypt", KeyId=f"alias/missing-{run}", Plaintext=b"x")
    out["Validation(window)"] = call(client, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=3)
    out["Validation(alias)"] = call(client, "create_alias", AliasName=f"parity-{run}", TargetKeyId=key_id)
    out["AlreadyExists"] = call(client, "create_alias", AliasName=alias, TargetKeyId=key_id)
    out["InvalidCiphertext(context)"] = call(
        client, "decrypt", CiphertextBlob=enc["CiphertextBlob"], EncryptionContext={"Department": "Sales"}
    )
    out["InvalidCiphertext(garbage)"] = call(client, "decrypt", CiphertextBlob=b"definitely not a kms blob")
    out["DisableKey"] = call(client, "disable_key", KeyId=key_id)
    out["Disabled(encrypt)"] = call(client, "encrypt", KeyId=key_id, Plaintext=b"x")
    out["Disabled(decrypt)"] = call(client, "decrypt", CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=context)
    out["ScheduleKeyDeletion"] = call(client, "schedule_key_deletion", KeyId=key_id, PendingWindowInDays=7)
    out["InvalidState(encrypt)"] = call(client, "encrypt", KeyId=key_id, Plaintext=b"x")
    out["DescribeKey(pending)"] = call(client, "describe_key", KeyId=key_id)
    return out


def test_same_answers_through_both_front_doors(embedded, server):
    via_embedded = scenario(embedded)
    via_server = scenario(server.client())
    assert via_embedded.keys() == via_server.keys()
    for step in via_embedded:
        assert via_embedded[step] == via_server[step], step
    # and the scenario really covered what it claims to
    codes = {step: r[1] for step, r in via_server.items() if isinstance(r, tuple) and r[0] == "error"}
    assert codes == {
        "NotFound": "NotFoundException",
        "NotFound(alias)": "NotFoundException",
        "Validation(window)": "ValidationException",
        "Validation(alias)": "ValidationException",
        "AlreadyExists": "AlreadyExistsException",
        "InvalidCiphertext(context)": "InvalidCiphertextException",
        "InvalidCiphertext(garbage)": "InvalidCiphertextException",
        "Disabled(encrypt)": "DisabledException",
        "Disabled(decrypt)": "DisabledException",
        "InvalidState(encrypt)": "KMSInvalidStateException",
    }
    assert via_server["NotFound"][2] == "Key 'arn:aws:kms:us-east-1:111122223333:key/<key-id>' does not exist"
    assert via_server["Disabled(encrypt)"][2] == "arn:aws:kms:us-east-1:111122223333:key/<key-id> is disabled."
    assert via_server["Validation(window)"][2] == (
        "1 validation error detected: Value '3' at 'pendingWindowInDays' failed to satisfy constraint: "
        "Member must have value greater than or equal to 7"
    )
    assert via_server["Decrypt.Plaintext"] == b"parity plaintext"
    md = via_server["CreateKey"][1]["KeyMetadata"]
    assert md["Description"] == "front door parity" and md["KeyState"] == "Enabled"


def test_same_http_headers_through_both_front_doors(embedded, server):
    """Same response headers (bar Content-Length, which only a real HTTP response has)."""
    out = []
    for client in (embedded, server.client()):
        ok = client.list_keys(Limit=1)["ResponseMetadata"]
        with pytest.raises(ClientError) as err:
            client.describe_key(KeyId=str(uuid.uuid4()))
        bad = err.value.response["ResponseMetadata"]
        out.append(
            [(m["HTTPStatusCode"], sorted(set(m["HTTPHeaders"]) - {"content-length"}), m["HTTPHeaders"]["content-type"])
             for m in (ok, bad)]
        )
        assert ok["RequestId"] == ok["HTTPHeaders"]["x-amzn-requestid"]
    assert out[0] == out[1]
    assert out[0][1][0] == 400


# -- one data dir, two front doors at once -------------------------------------------------


class Shared:
    def __init__(self, root) -> None:
        self.dir = root / "shared-kms"
        self.server = ServerProcess(self.dir).start()  # first: it creates the root key
        self.backend = Backend(self.dir)
        self.embedded = embedded_client(backend=self.backend, config=NO_RETRIES)
        self.remote = self.server.client()

    def close(self) -> None:
        self.backend.close()
        assert self.server.stop() == 0


@pytest.fixture
def shared(tmp_path):
    s = Shared(tmp_path)
    try:
        yield s
    finally:
        s.close()


def _all_key_ids(client) -> list[str]:
    return [k["KeyId"] for page in client.get_paginator("list_keys").paginate(Limit=7) for k in page["Keys"]]


def test_keys_and_aliases_visible_through_both(shared):
    a = shared.remote.create_key(Description="made by the server")["KeyMetadata"]
    b = shared.embedded.create_key(Description="made in-process")["KeyMetadata"]
    assert shared.embedded.describe_key(KeyId=a["KeyId"])["KeyMetadata"] == a
    assert shared.remote.describe_key(KeyId=b["Arn"])["KeyMetadata"] == b
    shared.embedded.create_alias(AliasName="alias/shared-b", TargetKeyId=b["KeyId"])
    assert shared.remote.describe_key(KeyId="alias/shared-b")["KeyMetadata"]["KeyId"] == b["KeyId"]
    shared.remote.tag_resource(KeyId=b["KeyId"], Tags=[{"TagKey": "owner", "TagValue": "server"}])
    assert shared.embedded.list_resource_tags(KeyId=b["KeyId"])["Tags"] == [{"TagKey": "owner", "TagValue": "server"}]
    shared.remote.update_key_description(KeyId=b["KeyId"], Description="renamed by the server")
    assert shared.embedded.describe_key(KeyId="alias/shared-b")["KeyMetadata"]["Description"] == "renamed by the server"
    assert sorted(_all_key_ids(shared.remote)) == sorted(_all_key_ids(shared.embedded)) == sorted([a["KeyId"], b["KeyId"]])


def test_ciphertexts_cross_between_front_doors(shared):
    key = shared.remote.create_key()["KeyMetadata"]["KeyId"]
    ctx = {"crossing": "yes"}
    from_server = shared.remote.encrypt(KeyId=key, Plaintext=b"sealed by the server", EncryptionContext=ctx)
    got = shared.embedded.decrypt(CiphertextBlob=from_server["CiphertextBlob"], EncryptionContext=ctx)
    assert got["Plaintext"] == b"sealed by the server" and got["KeyId"] == from_server["KeyId"]
    from_embedded = shared.embedded.encrypt(KeyId=key, Plaintext=b"sealed in-process", EncryptionContext=ctx)
    assert shared.remote.decrypt(CiphertextBlob=from_embedded["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == b"sealed in-process"
    dk = shared.embedded.generate_data_key(KeyId=key, NumberOfBytes=48)
    assert shared.remote.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]
    re_enc = shared.remote.re_encrypt(
        CiphertextBlob=from_embedded["CiphertextBlob"], SourceEncryptionContext=ctx, DestinationKeyId=key
    )
    assert shared.embedded.decrypt(CiphertextBlob=re_enc["CiphertextBlob"])["Plaintext"] == b"sealed in-process"


def test_state_changes_seen_immediately_by_the_other_door(shared):
    key = shared.embedded.create_key()["KeyMetadata"]["KeyId"]
    blob = shared.embedded.encrypt(KeyId=key, Plaintext=b"warm the caches")["CiphertextBlob"]
    assert shared.embedded.decrypt(CiphertextBlob=blob)["Plaintext"] == b"warm the caches"
    assert shared.remote.decrypt(CiphertextBlob=blob)["Plaintext"] == b"warm the caches"

    # disabled through the server: refused in-process on the very next call
    shared.remote.disable_key(KeyId=key)
    for op in (lambda: shared.embedded.encrypt(KeyId=key, Plaintext=b"x"),
               lambda: shared.embedded.decrypt(CiphertextBlob=blob)):
        with pytest.raises(ClientError) as err:
            op()
        assert err.value.response["Error"]["Code"] == "DisabledException"
        assert err.value.response["Error"]["Message"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key} is disabled."
    assert shared.embedded.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"

    # re-enabled through the server: usable in-process at once
    shared.remote.enable_key(KeyId=key)
    assert shared.embedded.decrypt(CiphertextBlob=blob)["Plaintext"] == b"warm the caches"

    # the other way round: disabled in-process, refused by the server (whose caches are warm too)
    shared.embedded.disable_key(KeyId=key)
    with pytest.raises(ClientError) as err:
        shared.remote.decrypt(CiphertextBlob=blob)
    assert err.value.response["Error"]["Code"] == "DisabledException"
    shared.embedded.enable_key(KeyId=key)
    assert shared.remote.decrypt(CiphertextBlob=blob)["Plaintext"] == b"warm the caches"

    # rotated through the server: the embedded door encrypts under the new material at once
    before = shared.embedded.describe_key(KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"]
    shared.remote.rotate_key_on_demand(KeyId=key)
    after = shared.remote.describe_key(KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert after != before
    assert shared.embedded.describe_key(KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"] == after
    new_blob = shared.embedded.encrypt(KeyId=key, Plaintext=b"new material")["CiphertextBlob"]
    assert shared.remote.decrypt(CiphertextBlob=new_blob)["KeyMaterialId"] == after
    assert shared.remote.decrypt(CiphertextBlob=blob)["KeyMaterialId"] == before

    # scheduled for deletion in-process: the server refuses at once
    shared.embedded.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    with pytest.raises(ClientError) as err:
        shared.remote.encrypt(KeyId=key, Plaintext=b"x")
    assert err.value.response["Error"]["Code"] == "KMSInvalidStateException"
    assert shared.remote.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "PendingDeletion"


@pytest.mark.slow
def test_concurrent_creates_through_both_doors(shared):
    per_door, workers_per_door = 50, 10
    # clients are made up front: boto3 sessions are not safe to share while creating clients
    server_clients = [shared.server.client() for _ in range(workers_per_door)]
    embedded_clients = [
        embedded_client(backend=shared.backend, session=boto3.session.Session(), config=NO_RETRIES)
        for _ in range(workers_per_door)
    ]
    start = threading.Barrier(2 * workers_per_door)

    def worker(client, door: str, n: int) -> list[str]:
        start.wait(timeout=300)
        ids = []
        for i in range(n):
            md = client.create_key(Description=f"{door} {i}", Tags=[{"TagKey": "door", "TagValue": door}])["KeyMetadata"]
            ids.append(md["KeyId"])
        return ids

    n = per_door // workers_per_door
    with ThreadPoolExecutor(max_workers=2 * workers_per_door) as pool:
        futures = [pool.submit(worker, c, "server", n) for c in server_clients]
        futures += [pool.submit(worker, c, "embedded", n) for c in embedded_clients]
        results = [f.result(timeout=300) for f in futures]

    created = [kid for ids in results for kid in ids]
    assert len(created) == 2 * per_door == len(set(created))
    for client in (shared.remote, shared.embedded):
        listed = _all_key_ids(client)
        assert len(listed) == len(set(listed)) == 2 * per_door
        assert set(listed) == set(created)
    # every key is whole: metadata, tags and usable material, whichever door made it
    for kid in created[:: 10]:
        doors = shared.remote.list_resource_tags(KeyId=kid)["Tags"]
        assert [t["TagKey"] for t in doors] == ["door"]
        blob = shared.embedded.encrypt(KeyId=kid, Plaintext=b"ok")["CiphertextBlob"]
        assert shared.remote.decrypt(CiphertextBlob=blob)["Plaintext"] == b"ok"
    # both processes appended to one audit log without tearing a line
    lines = (shared.dir / "audit.log").read_bytes().splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == len(list(read_events(shared.dir)))
    creates = [e for e in events if e["eventName"] == "CreateKey"]
    assert len(creates) == 2 * per_door and not any("errorCode" in e for e in creates)
    assert {e["resources"][0]["ARN"].rsplit("/", 1)[1] for e in creates} == set(created)
