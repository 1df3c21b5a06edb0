"""Authentication against a principals file: real SigV4 verification, AWS's error answers.

A real ``kms-iac local serve --principals FILE`` (two accounts, as in design.md) is called by
boto3, by the AWS CLI and by hand-built requests (signed with botocore's signer at a chosen
time, or signed and then altered). The loader's validation errors are unit-tested.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

import boto3
import botocore.auth
import pytest
import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from kms_iac.backend.clock import ManualClock
from kms_iac.backend.context import RequestContext
from kms_iac.backend.errors import (
    IncompleteSignature,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from kms_iac.backend.principals import PrincipalsError, load_principals, parse_principals
from kms_iac.backend.sigv4 import make_authenticator
from tests.helpers import NO_CLIENT_VALIDATION, ServerProcess

ROOT_A = ("AKIAEXAMPLEROOT00001", "example-secret-1")
ADMIN_A = ("AKIAEXAMPLEADMIN0001", "example-secret-2")
CONSUMER_B = ("AKIAEXAMPLECONSUMER1", "example-secret-3")
TEMP_A = ("ASIAEXAMPLETEMP00001", "example-secret-4", "example-session-token-4")

# These tests are about authentication: every principal may call KMS (authorization has its own tests).
ALLOW_KMS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}

PRINCIPALS = {
    "accounts": {
        "111122223333": {
            "principals": [
                {"arn": "arn:aws:iam::111122223333:root", "access_key_id": ROOT_A[0], "secret_access_key": ROOT_A[1]},
                {"arn": "arn:aws:iam::111122223333:role/KeyAdmin", "access_key_id": ADMIN_A[0],
                 "secret_access_key": ADMIN_A[1],
                 "policies": [{"Version": "2012-10-17",
                               "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}]},
                {"arn": "arn:aws:sts::111122223333:assumed-role/KeyAdmin/session-1", "access_key_id": TEMP_A[0],
                 "secret_access_key": TEMP_A[1], "session_token": TEMP_A[2], "policies": [ALLOW_KMS]},
            ]
        },
        "444455556666": {
            "principals": [
                {"arn": "arn:aws:iam::444455556666:role/Consumer", "access_key_id": CONSUMER_B[0],
                 "secret_access_key": CONSUMER_B[1], "policies": [ALLOW_KMS]},
            ]
        },
    }
}

MSG_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
MSG_BAD_TOKEN = "The security token included in the request is invalid."


@pytest.fixture(scope="module")
def principals_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("principals") / "principals.yaml"
    path.write_text(yaml.safe_dump(PRINCIPALS, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory, principals_file):
    srv = ServerProcess(tmp_path_factory.mktemp("auth-server-data"), "--principals", str(principals_file)).start()
    yield srv
    assert srv.stop() == 0


def client(srv: ServerProcess, creds: tuple, region: str = "us-east-1"):
    kw = {"aws_access_key_id": creds[0], "aws_secret_access_key": creds[1]}
    if len(creds) > 2:
        kw["aws_session_token"] = creds[2]
    return boto3.client("kms", endpoint_url=srv.url, region_name=region, config=NO_CLIENT_VALIDATION, **kw)


def error_of(call) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as info:
        call()
    err = info.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


# -- hand-built requests ---------------------------------------------------------------------

def signed(url: str, creds: tuple, operation: str, body: bytes = b"{}", when: dt.datetime | None = None,
           region: str = "us-east-1", token: str | None = None) -> tuple[dict[str, str], bytes]:
    """Headers botocore's signer produces for a KMS call, signed at ``when`` (default: now)."""
    request = AWSRequest(method="POST", url=url + "/", data=body, headers={
        "X-Amz-Target": f"TrentService.{operation}", "Content-Type": "application/x-amz-json-1.1"})
    signer = SigV4Auth(Credentials(creds[0], creds[1], token), "kms", region)
    if when is None:
        signer.add_auth(request)
    else:
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
            signer.add_auth(request)
    headers = dict(request.headers.items())
    headers["Host"] = urlsplit(url).netloc
    return headers, body


def send(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("POST", "/", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


# -- through the server ----------------------------------------------------------------------

@pytest.mark.parametrize("creds,account", [(ROOT_A, "111122223333"), (ADMIN_A, "111122223333"),
                                           (CONSUMER_B, "444455556666"), (TEMP_A, "111122223333")])
def test_each_principal_is_authenticated_and_keys_land_in_its_account(auth_server, creds, account):
    kms = client(auth_server, creds, region="eu-west-1")
    arn = kms.create_key(Description="auth test")["KeyMetadata"]["Arn"]
    assert arn.startswith(f"arn:aws:kms:eu-west-1:{account}:key/")
    listed = [k["KeyArn"] for k in kms.list_keys()["Keys"]]
    assert arn in listed


def test_wrong_secret_is_an_invalid_signature(auth_server):
    code, message, status = error_of(lambda: client(auth_server, (ROOT_A[0], "not-the-secret")).list_keys())
    assert (code, message, status) == ("InvalidSignatureException", MSG_MISMATCH, 400)


def test_unknown_access_key_is_unrecognized(auth_server):
    code, message, status = error_of(lambda: client(auth_server, ("AKIAUNKNOWNKEY000001", "x")).list_keys())
    assert (code, message, status) == ("UnrecognizedClientException", MSG_BAD_TOKEN, 400)


def test_tampered_body_is_an_invalid_signature(auth_server):
    headers, body = signed(auth_server.url, ROOT_A, "CreateKey", b'{"Description": "original"}')
    status, doc = send(auth_server.url, headers, body)
    assert status == 200, doc
    headers, body = signed(auth_server.url, ROOT_A, "CreateKey", b'{"Description": "original"}')
    tampered = b'{"Description": "tampered"}'
    headers["Content-Length"] = str(len(tampered))
    status, doc = send(auth_server.url, headers, tampered)
    assert (status, doc) == (400, {"__type": "InvalidSignatureException", "message": MSG_MISMATCH})


def test_tampered_target_header_is_an_invalid_signature(auth_server):
    headers, body = signed(auth_server.url, ROOT_A, "ListKeys")
    headers["X-Amz-Target"] = "TrentService.ListAliases"
    status, doc = send(auth_server.url, headers, body)
    assert (status, doc["__type"]) == (400, "InvalidSignatureException")


def test_stale_date_is_a_signature_expired(auth_server):
    when = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=10)
    headers, body = signed(auth_server.url, ROOT_A, "ListKeys", when=when)
    before = time.time()
    status, doc = send(auth_server.url, headers, body)
    after = time.time()
    assert (status, doc["__type"]) == (400, "InvalidSignatureException")
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    assert doc["message"].startswith(f"Signature expired: {stamp} is now earlier than ")
    # "<now - 5 min> (<now> - 5 min.)", as AWS words it
    tail = doc["message"].split(" is now earlier than ", 1)[1]
    limit, now = tail[:16], tail[18:34]
    assert tail == f"{limit} ({now} - 5 min.)"
    now_epoch = dt.datetime.strptime(now, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc).timestamp()
    limit_epoch = dt.datetime.strptime(limit, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc).timestamp()
    # "now" is the server's clock while it answered: between the request and the answer
    # (whole seconds), however slow the machine.
    assert now_epoch - limit_epoch == 300 and int(before) <= now_epoch <= after


def test_a_date_within_five_minutes_is_accepted(auth_server):
    when = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=4)
    status, doc = send(auth_server.url, *signed(auth_server.url, ROOT_A, "ListKeys", when=when))
    assert status == 200, doc


def test_future_date_is_not_yet_current(auth_server):
    when = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(minutes=10)
    status, doc = send(auth_server.url, *signed(auth_server.url, ROOT_A, "ListKeys", when=when))
    assert (status, doc["__type"]) == (400, "InvalidSignatureException")
    assert doc["message"].startswith(f"Signature not yet current: {when.strftime('%Y%m%dT%H%M%SZ')} is still later than ")
    assert doc["message"].endswith(" + 5 min.)")


def test_missing_authorization_is_missing_authentication_token(auth_server):
    headers, body = signed(auth_server.url, ROOT_A, "ListKeys")
    del headers["Authorization"]
    status, doc = send(auth_server.url, headers, body)
    assert (status, doc) == (400, {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"})


def test_incomplete_authorization_names_the_missing_parts(auth_server):
    headers, body = signed(auth_server.url, ROOT_A, "ListKeys")
    headers["Authorization"] = headers["Authorization"].split(", Signature=")[0]
    status, doc = send(auth_server.url, headers, body)
    assert status == 400 and doc["__type"] == "IncompleteSignature"
    assert doc["message"].startswith("Authorization header requires 'Signature' parameter. Authorization=AWS4-HMAC-SHA256 ")


def test_scope_date_must_match_the_request_date(auth_server):
    headers, body = signed(auth_server.url, ROOT_A, "ListKeys")
    scope_date = headers["X-Amz-Date"][:8]
    headers["Authorization"] = headers["Authorization"].replace(f"/{scope_date}/", "/20200101/")
    status, doc = send(auth_server.url, headers, body)
    assert (status, doc["__type"]) == (400, "InvalidSignatureException")
    assert doc["message"] == (f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                              f"'20200101' != '{scope_date}', from '{headers['X-Amz-Date']}'.")


def test_session_token_is_required_when_configured(auth_server):
    without = (TEMP_A[0], TEMP_A[1])
    assert error_of(lambda: client(auth_server, without).list_keys())[:2] == ("UnrecognizedClientException", MSG_BAD_TOKEN)
    wrong = (TEMP_A[0], TEMP_A[1], "not-the-token")
    assert error_of(lambda: client(auth_server, wrong).list_keys())[:2] == ("UnrecognizedClientException", MSG_BAD_TOKEN)
    assert "Keys" in client(auth_server, TEMP_A).list_keys()
    # a token on a long-term key is refused as AWS refuses a token it did not issue
    extra = (ROOT_A[0], ROOT_A[1], "some-token")
    assert error_of(lambda: client(auth_server, extra).list_keys())[:2] == ("UnrecognizedClientException", MSG_BAD_TOKEN)


def test_region_comes_from_the_credential_scope(auth_server):
    kms = client(auth_server, CONSUMER_B, region="ap-southeast-2")
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    assert arn.startswith("arn:aws:kms:ap-southeast-2:444455556666:key/")


@pytest.mark.slow
def test_aws_cli_with_a_principals_keys(auth_server, tmp_path):
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    if aws is None:
        pytest.skip("the AWS CLI is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=CONSUMER_B[0], AWS_SECRET_ACCESS_KEY=CONSUMER_B[1], AWS_DEFAULT_REGION="us-west-2",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1,localhost")
    run = subprocess.run([aws, "kms", "create-key", "--endpoint-url", auth_server.url, "--output", "json"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    arn = json.loads(run.stdout)["KeyMetadata"]["Arn"]
    assert arn.startswith("arn:aws:kms:us-west-2:444455556666:key/")
    run = subprocess.run([aws, "kms", "list-keys", "--endpoint-url", auth_server.url, "--output", "json"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert arn in [k["KeyArn"] for k in json.loads(run.stdout)["Keys"]]
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    run = subprocess.run([aws, "kms", "list-keys", "--endpoint-url", auth_server.url],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "InvalidSignatureException" in run.stderr


def test_serve_refuses_an_invalid_principals_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("accounts:\n  '111122223333':\n    principals:\n      - arn: arn:aws:iam::444455556666:root\n"
                   "        access_key_id: AKIAEXAMPLEROOT00001\n        secret_access_key: s\n")
    with pytest.raises(RuntimeError) as info:
        ServerProcess(tmp_path / "data", "--principals", str(bad)).start()
    assert "accounts.111122223333.principals[0].arn" in str(info.value)


# -- the authenticator in-process ------------------------------------------------------------

def _ctx() -> RequestContext:
    return RequestContext.root("111122223333", "us-east-1")


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_authenticator_fills_the_context():
    directory = parse_principals(PRINCIPALS)
    clock = ManualClock()
    authenticate = make_authenticator(directory, clock)
    headers, body = signed("http://127.0.0.1:4599", ADMIN_A, "ListKeys", region="eu-central-1")
    h = _lower(headers)
    h["x-kms-iac-via-service"] = "ec2.eu-central-1.amazonaws.com"
    ctx = authenticate(_ctx(), h, "POST", "/", body)
    assert (ctx.account, ctx.region, ctx.principal_arn, ctx.access_key_id, ctx.principal_type) == (
        "111122223333", "eu-central-1", "arn:aws:iam::111122223333:role/KeyAdmin", ADMIN_A[0], "AssumedRole")
    assert ctx.identity_policies == tuple(PRINCIPALS["accounts"]["111122223333"]["principals"][1]["policies"])
    assert ctx.via_service == "ec2.eu-central-1.amazonaws.com"
    headers, body = signed("http://127.0.0.1:4599", ROOT_A, "ListKeys")
    ctx = authenticate(_ctx(), _lower(headers), "POST", "/", body)
    assert (ctx.principal_type, ctx.identity_policies, ctx.via_service) == ("Root", (), None)


def test_authenticator_uses_its_clock():
    directory = parse_principals(PRINCIPALS)
    clock = ManualClock()
    authenticate = make_authenticator(directory, clock)
    headers, body = signed("http://127.0.0.1:4599", ROOT_A, "ListKeys")
    authenticate(_ctx(), _lower(headers), "POST", "/", body)
    clock.advance(301)
    with pytest.raises(InvalidSignatureException, match="^Signature expired: "):
        authenticate(_ctx(), _lower(headers), "POST", "/", body)


def test_authenticator_errors_in_process():
    authenticate = make_authenticator(parse_principals(PRINCIPALS), ManualClock())
    headers, body = signed("http://127.0.0.1:4599", ROOT_A, "ListKeys")
    h = _lower(headers)
    with pytest.raises(MissingAuthenticationTokenException):
        authenticate(_ctx(), {k: v for k, v in h.items() if k != "authorization"}, "POST", "/", body)
    with pytest.raises(IncompleteSignature, match="'X-Amz-Date' or a 'Date' header"):
        authenticate(_ctx(), {k: v for k, v in h.items() if k != "x-amz-date"}, "POST", "/", body)
    with pytest.raises(InvalidSignatureException, match="correct service: 'kms'"):
        authenticate(_ctx(), {**h, "authorization": h["authorization"].replace("/kms/", "/s3/")}, "POST", "/", body)
    with pytest.raises(UnrecognizedClientException):
        authenticate(_ctx(), {**h, "authorization": h["authorization"].replace(ROOT_A[0], "AKIANOTLISTED0000001")},
                     "POST", "/", body)
    with pytest.raises(InvalidSignatureException, match="does not match"):
        authenticate(_ctx(), {**h, "host": "evil.example:4599"}, "POST", "/", body)


def test_embedded_client_with_principals(tmp_path, principals_file):
    from kms_iac.backend.core import Backend
    from kms_iac.backend.embedded import embedded_client

    backend = Backend(tmp_path / "kms")
    try:
        kms = embedded_client(backend=backend, principals=principals_file, aws_access_key_id=CONSUMER_B[0],
                              aws_secret_access_key=CONSUMER_B[1], config=NO_CLIENT_VALIDATION)
        assert ":444455556666:key/" in kms.create_key()["KeyMetadata"]["Arn"]
        wrong = embedded_client(backend=backend, aws_access_key_id=CONSUMER_B[0], aws_secret_access_key="wrong",
                                config=NO_CLIENT_VALIDATION)
        assert error_of(wrong.list_keys)[0] == "InvalidSignatureException"
    finally:
        backend.close()


# -- the loader ------------------------------------------------------------------------------

def _doc(**principal) -> dict:
    base = {"arn": "arn:aws:iam::111122223333:user/alice", "access_key_id": "AKIAEXAMPLEALICE0001",
            "secret_access_key": "s"}
    base.update(principal)
    return {"accounts": {"111122223333": {"principals": [{k: v for k, v in base.items() if v is not None}]}}}


def test_loader_reads_yaml_and_json(tmp_path, principals_file):
    directory = load_principals(principals_file)
    js = tmp_path / "p.json"
    js.write_text(json.dumps(PRINCIPALS))
    assert [e.arn for e in load_principals(js).entries] == [e.arn for e in directory.entries]
    entry = directory.by_access_key(TEMP_A[0])
    assert (entry.principal_type, entry.session_token, entry.account) == ("AssumedRole", TEMP_A[2], "111122223333")
    assert directory.by_arn("arn:aws:iam::444455556666:role/Consumer").access_key_id == CONSUMER_B[0]
    assert directory.by_access_key("AKIANOPE000000000000") is None
    assert directory.by_arn("arn:aws:iam::111122223333:root").principal_type == "Root"
    assert parse_principals(_doc()).entries[0].principal_type == "IAMUser"
    assert "secret" not in repr(directory.entries[0])


@pytest.mark.parametrize("doc,field,fragment", [
    ([], "", "mapping with an 'accounts' key"),
    ({"accounts": {}}, "accounts", "non-empty mapping"),
    ({"accounts": {"1234": {"principals": []}}}, "accounts.1234", "12 digits"),
    ({"accounts": {"111122223333": {"principals": []}}, "extra": 1}, "", "unknown top-level key(s): extra"),
    (_doc(arn="arn:aws:iam::444455556666:root"), "accounts.111122223333.principals[0].arn",
     "is in account 444455556666, but is listed under account 111122223333"),
    (_doc(arn="arn:aws:iam::111122223333:group/admins"), "accounts.111122223333.principals[0].arn", "not a principal ARN"),
    (_doc(arn="arn:aws:iam:111122223333:root"), "accounts.111122223333.principals[0].arn", "not a principal ARN"),
    (_doc(access_key_id="short"), "accounts.111122223333.principals[0].access_key_id", "not an access key id"),
    (_doc(secret_access_key=""), "accounts.111122223333.principals[0].secret_access_key", "non-empty string"),
    (_doc(secret_access_key=None), "accounts.111122223333.principals[0]", "missing required field 'secret_access_key'"),
    (_doc(session_token=5), "accounts.111122223333.principals[0].session_token", "non-empty string"),
    (_doc(secret="typo"), "accounts.111122223333.principals[0]", "unknown field(s): secret"),
    (_doc(policies={"Statement": []}), "accounts.111122223333.principals[0].policies", "list of IAM policy documents"),
    (_doc(policies=["not a dict"]), "accounts.111122223333.principals[0].policies[0]", "must be a mapping"),
    (_doc(policies=[{"Version": "2012-10-17"}]), "accounts.111122223333.principals[0].policies[0]", "needs a Statement"),
    (_doc(policies=[{"Statement": [{"Effect": "Permit", "Action": "kms:*", "Resource": "*"}]}]),
     "accounts.111122223333.principals[0].policies[0].Statement[0].Effect", "\"Allow\" or \"Deny\""),
    (_doc(policies=[{"Statement": {"Effect": "Allow", "Resource": "*"}}]),
     "accounts.111122223333.principals[0].policies[0].Statement[0]", "exactly one of Action or NotAction"),
    (_doc(policies=[{"Statement": {"Effect": "Allow", "Action": "kms:*", "Resource": "*", "Principal": "*"}}]),
     "accounts.111122223333.principals[0].policies[0].Statement[0]", "Principal"),
])
def test_loader_validation_errors(doc, field, fragment):
    with pytest.raises(PrincipalsError) as info:
        parse_principals(doc, "principals.yaml")
    assert info.value.field == field
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"principals.yaml: {field + ': ' if field else ''}")


def test_loader_rejects_duplicate_access_keys():
    doc = _doc()
    doc["accounts"]["444455556666"] = {"principals": [
        {"arn": "arn:aws:iam::444455556666:root", "access_key_id": "AKIAEXAMPLEALICE0001", "secret_access_key": "t"}]}
    with pytest.raises(PrincipalsError, match=r"accounts\.444455556666\.principals\[0\]\.access_key_id: AKIAEXAMPLEALICE0001 "
                                              r"is already used by accounts\.111122223333\.principals\[0\]"):
        parse_principals(doc, "p.yaml")


def test_loader_file_errors(tmp_path):
    with pytest.raises(PrincipalsError, match="cannot read the file"):
        load_principals(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(PrincipalsError, match=r"broken\.json: not valid JSON"):
        load_principals(broken)
    unquoted = tmp_path / "unquoted.yaml"
    unquoted.write_text("accounts:\n  011122223333:\n    principals: []\n")  # YAML reads it as an octal-ish int
    with pytest.raises(PrincipalsError, match="12 digits"):
        load_principals(unquoted)


def test_refused_signatures_are_audited(auth_server):
    kms = boto3.client("kms", endpoint_url=auth_server.url, region_name="us-east-1", aws_access_key_id=ROOT_A[0],
                       aws_secret_access_key="wrong-secret", config=NO_CLIENT_VALIDATION)
    with pytest.raises(ClientError):
        kms.list_keys()
    events = [json.loads(l) for l in (auth_server.data_dir / "audit.log").read_text().splitlines()]
    assert any(e["eventName"] == "ListKeys" and e.get("errorCode") == "InvalidSignatureException" for e in events)
