"""The wire protocol's error answers: typed 400s, AWS's shapes and messages, no store change."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

from kms_iac.backend.errors import ThrottlingException


def raw(server, target: str | None, body: bytes, sign: bool = True, region: str = "us-east-1") -> tuple[int, dict]:
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target:
        headers["X-Amz-Target"] = target
    if sign:
        req = botocore.awsrequest.AWSRequest("POST", server.url + "/", data=body, headers=headers)
        botocore.auth.SigV4Auth(botocore.credentials.Credentials("AKIDTEST", "secret"), "kms", region).add_auth(req)
        headers = dict(req.headers)
    try:
        with urllib.request.urlopen(urllib.request.Request(server.url + "/", data=body, headers=headers)) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("target,body,code", [
    ("TrentService.ListKeys", b"{not json", "SerializationException"),
    ("TrentService.ListKeys", b"[1, 2]", "SerializationException"),
    ("TrentService.DescribeKey", json.dumps({"KeyId": 5}).encode(), "SerializationException"),
    ("TrentService.Encrypt", json.dumps({"KeyId": "x", "Plaintext": "***not base64***"}).encode(), "SerializationException"),
    ("TrentService.ListKeys", json.dumps({"Limit": "ten"}).encode(), "SerializationException"),
    ("TrentService.ListKeys", json.dumps({"Limit": 0}).encode(), "ValidationException"),
    ("TrentService.DescribeKey", b"{}", "ValidationException"),
    ("TrentService.NoSuchOperation", b"{}", "UnknownOperationException"),
    ("Wrong.Target", b"{}", "UnknownOperationException"),
])
def test_bad_requests_are_typed_400s(server, target, body, code):
    status, doc = raw(server, target, body)
    assert status == 400 and doc["__type"] == code


def test_missing_fields_message(server):
    status, doc = raw(server, "TrentService.DescribeKey", b"{}")
    assert doc["message"] == "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null"


def test_several_violations_in_one_message(server):
    body = json.dumps({"KeyId": "", "NumberOfBytes": 2000}).encode()
    status, doc = raw(server, "TrentService.GenerateDataKey", body)
    assert status == 400 and doc["__type"] == "ValidationException"
    assert doc["message"].startswith("2 validation errors detected: Value '' at 'keyId' failed to satisfy constraint")
    assert "; Value '2000' at 'numberOfBytes'" in doc["message"]


def test_unsigned_requests_are_refused(server):
    status, doc = raw(server, "TrentService.ListKeys", b"{}", sign=False)
    assert status == 400 and doc == {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"}


def test_region_comes_from_the_signature(server):
    kms_eu = server.client(region="eu-west-1")
    md = kms_eu.create_key()["KeyMetadata"]
    assert md["Arn"].startswith("arn:aws:kms:eu-west-1:")
    us = {k["KeyId"] for k in server.client().list_keys()["Keys"]}
    assert md["KeyId"] not in us


def test_oversized_body(server):
    status, doc = raw(server, "TrentService.ListKeys", b" " * (2 * 1024 * 1024))
    assert status == 400 and doc["__type"] == "ValidationException"


def test_refused_mutation_changes_nothing(kms):
    kid = kms.create_key(Description="keep")["KeyMetadata"]["KeyId"]
    before = kms.describe_key(KeyId=kid)["KeyMetadata"], kms.list_resource_tags(KeyId=kid)["Tags"]
    bad_calls = [
        lambda: kms.tag_resource(KeyId=kid, Tags=[{"TagKey": "ok", "TagValue": "1"}, {"TagKey": "aws:no", "TagValue": "2"}]),
        lambda: kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=1),
        lambda: kms.put_key_policy(KeyId=kid, PolicyName="default", Policy="{"),
        lambda: kms.update_key_description(KeyId=kid, Description="x" * 9000),
        lambda: kms.create_key(Tags=[{"TagKey": "a", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}]),
    ]
    n_keys = len(kms.list_keys(Limit=1000)["Keys"])
    for call in bad_calls:
        with pytest.raises(Exception):
            call()
    after = kms.describe_key(KeyId=kid)["KeyMetadata"], kms.list_resource_tags(KeyId=kid)["Tags"]
    assert before == after
    assert len(kms.list_keys(Limit=1000)["Keys"]) == n_keys


def test_dry_run(kms):
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(Exception) as e:
        kms.encrypt(KeyId=kid, Plaintext=b"x", DryRun=True)
    assert e.value.response["Error"]["Code"] == "DryRunOperationException"


def test_throttling_quota(tmp_path):
    from kms_iac.backend.core import Backend
    from kms_iac.backend.embedded import embedded_client
    from tests.helpers import NO_CLIENT_VALIDATION

    b = Backend(tmp_path / "q", requests_per_second=5)
    kms = embedded_client(backend=b, config=NO_CLIENT_VALIDATION)
    codes = []
    for _ in range(30):
        try:
            kms.list_keys()
            codes.append("ok")
        except Exception as e:  # noqa: BLE001
            codes.append(e.response["Error"]["Code"])
    assert "ThrottlingException" in codes and codes[0] == "ok"
    b.close()
    assert ThrottlingException.status == 400


def test_throttling_is_retried_by_boto3(tmp_path):
    """With boto3's standard retry mode, a throttled call is retried and succeeds."""
    import botocore.config

    from kms_iac.backend.core import Backend
    from kms_iac.backend.embedded import embedded_client

    b = Backend(tmp_path / "q", requests_per_second=20)
    kms = embedded_client(backend=b, config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 10}))
    results = [kms.list_keys() for _ in range(60)]
    retried = sum(r["ResponseMetadata"]["RetryAttempts"] for r in results)
    assert retried > 0
    b.close()


def test_oversized_headers_are_refused_and_server_survives(server):
    import socket

    with socket.create_connection((server.url.split("//")[1].split(":")[0], int(server.url.rsplit(":", 1)[1])), timeout=60) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (200 * 1024) + b"\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400") and b"ValidationException" in reply
    assert server.client().list_keys()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_credential_scope_region_must_be_a_region_name(server):
    status, doc = raw(server, "TrentService.ListKeys", b"{}", region="Not_A:Region")
    assert status == 400 and doc["__type"] == "InvalidSignatureException"
