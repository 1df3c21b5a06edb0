"""Who the audit log says called, when the server could not tell: a request with an unknown
access key, a wrong secret or no signature is recorded with CloudTrail's ``Unknown`` identity
and the access key id it *presented*, never as the account root; and ``policy simulate``
against a server with principals uses the credentials its --help names.

A real ``kms-iac local serve --principals FILE`` is called by boto3 and by hand.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from tests.helpers import NO_CLIENT_VALIDATION, ServerProcess

ACCOUNT = "111122223333"
ROOT = ("AKIAAUDITROOT0000001", "audit-secret-root")
UNLISTED = "AKIANOTLISTED0000001"
PRINCIPALS = {"accounts": {ACCOUNT: {"principals": [
    {"arn": f"arn:aws:iam::{ACCOUNT}:root", "access_key_id": ROOT[0], "secret_access_key": ROOT[1]},
]}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("audit-identity")
    principals = base / "principals.yaml"
    principals.write_text(yaml.safe_dump(PRINCIPALS))
    srv = ServerProcess(base / "kms", "--principals", str(principals)).start()
    yield srv
    assert srv.stop() == 0


def client(srv: ServerProcess, key_id: str, secret: str, region: str = "us-east-1"):
    return boto3.client("kms", endpoint_url=srv.url, region_name=region, aws_access_key_id=key_id,
                        aws_secret_access_key=secret, config=NO_CLIENT_VALIDATION)


def last_event(srv: ServerProcess, **match) -> dict:
    """The newest audit record whose fields equal ``match`` (the server writes it before it answers)."""
    events = [json.loads(line) for line in (srv.data_dir / "audit.log").read_text().splitlines()]
    found = [e for e in events if all(e.get(k) == v for k, v in match.items())]
    assert found, (match, events[-3:])
    return found[-1]


def refused(call) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return info.value.response["Error"]["Code"]


def test_unknown_access_key_is_recorded_as_presented(server):
    kms = client(server, UNLISTED, "whatever", region="eu-west-1")
    assert refused(kms.list_aliases) == "UnrecognizedClientException"
    ev = last_event(server, eventName="ListAliases", errorCode="UnrecognizedClientException")
    assert ev["userIdentity"] == {"type": "Unknown", "accessKeyId": UNLISTED}  # no account, no ARN: nothing proven
    assert ev["awsRegion"] == "eu-west-1"  # the region it signed for
    assert ev["errorMessage"] == "The security token included in the request is invalid."


def test_wrong_secret_is_recorded_with_the_key_it_claimed(server):
    kms = client(server, ROOT[0], "not-the-secret")
    assert refused(kms.list_keys) == "InvalidSignatureException"
    ev = last_event(server, eventName="ListKeys", errorCode="InvalidSignatureException")
    assert ev["userIdentity"] == {"type": "Unknown", "accessKeyId": ROOT[0]}
    assert "arn" not in ev["userIdentity"] and ev["recipientAccountId"] == ACCOUNT


def test_unsigned_request_is_recorded_without_an_access_key(server):
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=30)
    conn.request("POST", "/", body=b"{}", headers={"X-Amz-Target": "TrentService.GenerateRandom",
                                                   "Content-Type": "application/x-amz-json-1.1"})
    reply = conn.getresponse()
    assert reply.status == 400 and json.loads(reply.read())["__type"] == "MissingAuthenticationTokenException"
    ev = last_event(server, eventName="GenerateRandom", errorCode="MissingAuthenticationTokenException")
    assert ev["userIdentity"] == {"type": "Unknown", "accessKeyId": None}


def test_authenticated_calls_keep_their_principal(server):
    client(server, *ROOT).list_keys()
    ev = last_event(server, eventName="ListKeys")
    assert "errorCode" not in ev
    assert ev["userIdentity"] == {"type": "Root", "principalId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:root",
                                  "accountId": ACCOUNT, "accessKeyId": ROOT[0]}


def kms_iac(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update({"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                  "COLUMNS": "250", **env})
    return subprocess.run([str(Path(sys.executable).with_name("kms-iac")), *args], capture_output=True, text=True,
                          timeout=90, env=clean)


def test_audit_command_shows_the_presented_key(server):
    kms = client(server, UNLISTED, "x")
    assert refused(lambda: kms.describe_key(KeyId="alias/x")) == "UnrecognizedClientException"
    run = kms_iac("local", "audit", "--data-dir", str(server.data_dir), "--errors", "--event", "DescribeKey")
    assert run.returncode == 0, run.stderr
    assert f"unauthenticated ({UNLISTED})" in run.stdout and f"arn:aws:iam::{ACCOUNT}:root" not in run.stdout


def test_simulate_reads_the_key_with_the_standard_credentials(server):
    arn = client(server, *ROOT).create_key()["KeyMetadata"]["Arn"]
    args = ("policy", "simulate", "--endpoint", server.url, "--key", arn, "--principal",
            f"arn:aws:iam::{ACCOUNT}:root", "--action", "kms:Encrypt")
    anonymous = kms_iac(*args)  # no credentials: the placeholder key, which a principals server refuses
    assert anonymous.returncode == 4 and anonymous.stdout == "", anonymous.stderr
    line, = anonymous.stderr.splitlines()
    assert line.startswith(f"Error: {server.url} rejected the credentials (UnrecognizedClientException")
    assert "AWS_ACCESS_KEY_ID" in line and "--principals FILE" in line
    as_root = kms_iac(*args, AWS_ACCESS_KEY_ID=ROOT[0], AWS_SECRET_ACCESS_KEY=ROOT[1])
    assert as_root.returncode == 0 and as_root.stdout.startswith("kms:Encrypt: Allowed"), as_root.stderr
