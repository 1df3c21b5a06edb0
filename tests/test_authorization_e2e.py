"""Authorization end to end: signed requests from several principals in two accounts,
through the server, decided as AWS KMS documents (key policy, IAM delegation,
cross-account, grants, explicit deny, lockout check), and the policy simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from tests.helpers import NO_CLIENT_VALIDATION, ROOT, ServerProcess

A, B = "111122223333", "444455556666"
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
ALLOW_USE = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}]}
PRINCIPALS = {"accounts": {
    A: {"principals": [
        {"arn": f"arn:aws:iam::{A}:root", "access_key_id": "AKIAAUTHZROOTA000001", "secret_access_key": "s-root-a"},
        {"arn": f"arn:aws:iam::{A}:role/KeyAdmin", "access_key_id": "AKIAAUTHZADMINA00001", "secret_access_key": "s-admin",
         "policies": [ALLOW_ALL]},
        {"arn": f"arn:aws:iam::{A}:role/App", "access_key_id": "AKIAAUTHZAPPA0000001", "secret_access_key": "s-app",
         "policies": [ALLOW_USE]},
        {"arn": f"arn:aws:iam::{A}:role/NoPolicy", "access_key_id": "AKIAAUTHZNOPOLA00001", "secret_access_key": "s-nopol"},
    ]},
    B: {"principals": [
        {"arn": f"arn:aws:iam::{B}:role/Consumer", "access_key_id": "AKIAAUTHZCONSUMERB01", "secret_access_key": "s-consumer",
         "policies": [ALLOW_USE]},
        {"arn": f"arn:aws:iam::{B}:role/Other", "access_key_id": "AKIAAUTHZOTHERB00001", "secret_access_key": "s-other"},
    ]},
}}
KEYS = {p["arn"].rsplit("/", 1)[-1] if "role/" in p["arn"] else "root": (p["access_key_id"], p["secret_access_key"])
        for acct in PRINCIPALS["accounts"].values() for p in acct["principals"]}


def key_policy(*extra: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:root"},
         "Action": "kms:*", "Resource": "*"}, *extra]})


CROSS_ACCOUNT = {"Sid": "Allow account B to use the key", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{B}:root"},
                 "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
                 "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "b"}}}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    work = tmp_path_factory.mktemp("authz")
    path = work / "principals.yaml"
    path.write_text(yaml.safe_dump(PRINCIPALS))
    with ServerProcess(work / "data", "--principals", str(path)) as s:
        s.principals_path = path
        yield s


def client(srv, who: str):
    akid, secret = KEYS[who]
    return boto3.client("kms", endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id=akid,
                        aws_secret_access_key=secret, config=NO_CLIENT_VALIDATION)


def denied(fn, **kw) -> str:
    with pytest.raises(ClientError) as e:
        fn(**kw)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException", e.value.response
    return e.value.response["Error"]["Message"]


def test_cross_account_walkthrough(srv):
    admin, app, nopol = client(srv, "KeyAdmin"), client(srv, "App"), client(srv, "NoPolicy")
    consumer, other = client(srv, "Consumer"), client(srv, "Other")
    key = admin.create_key(Description="shared with B", Policy=key_policy(CROSS_ACCOUNT))["KeyMetadata"]
    arn = key["Arn"]
    assert arn.startswith(f"arn:aws:kms:us-east-1:{A}:key/")

    # same account: the key policy delegates to IAM, so the identity policy decides
    blob = app.encrypt(KeyId=arn, Plaintext=b"from A", EncryptionContext={"tenant": "b"})["CiphertextBlob"]
    msg = denied(nopol.encrypt, KeyId=arn, Plaintext=b"x")
    assert msg == (f"User: arn:aws:iam::{A}:role/NoPolicy is not authorized to perform: kms:Encrypt on resource: {arn} "
                   "because no identity-based policy allows the kms:Encrypt action")
    denied(app.disable_key, KeyId=arn)  # App's IAM policy allows use, not management

    # cross account: the key policy allows account B (with the context condition) AND B's IAM policy allows
    assert consumer.decrypt(CiphertextBlob=blob, KeyId=arn, EncryptionContext={"tenant": "b"})["Plaintext"] == b"from A"
    msg = denied(consumer.encrypt, KeyId=arn, Plaintext=b"x", EncryptionContext={"tenant": "c"})
    assert "because no resource-based policy allows the kms:Encrypt action" in msg
    msg = denied(other.decrypt, CiphertextBlob=blob, KeyId=arn, EncryptionContext={"tenant": "b"})
    assert msg.endswith("because no identity-based policy allows the kms:Decrypt action")  # B's IAM side missing

    # a grant gives B/Other use without editing the policy and without IAM
    grant = admin.create_grant(KeyId=arn, GranteePrincipal=f"arn:aws:iam::{B}:role/Other", Operations=["Decrypt"],
                               Constraints={"EncryptionContextSubset": {"tenant": "b"}})
    assert other.decrypt(CiphertextBlob=blob, KeyId=arn, EncryptionContext={"tenant": "b"})["Plaintext"] == b"from A"
    denied(other.encrypt, KeyId=arn, Plaintext=b"x", EncryptionContext={"tenant": "b"})  # not a granted operation
    admin.revoke_grant(KeyId=arn, GrantId=grant["GrantId"])
    denied(other.decrypt, CiphertextBlob=blob, KeyId=arn, EncryptionContext={"tenant": "b"})
    # the retiring principal may retire a grant with no policy allowing it anything
    retirable = admin.create_grant(KeyId=arn, GranteePrincipal=f"arn:aws:iam::{A}:role/App", Operations=["Decrypt"],
                                   RetiringPrincipal=f"arn:aws:iam::{B}:role/Other")
    other.retire_grant(KeyId=arn, GrantId=retirable["GrantId"])
    assert all(g["GrantId"] != retirable["GrantId"] for g in admin.list_grants(KeyId=arn)["Grants"])

    # explicit deny wins over every allow
    admin.put_key_policy(KeyId=arn, PolicyName="default", Policy=key_policy(CROSS_ACCOUNT, {
        "Sid": "No decrypt for App", "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{A}:role/App"},
        "Action": "kms:Decrypt", "Resource": "*"}))
    msg = denied(app.decrypt, CiphertextBlob=blob, EncryptionContext={"tenant": "b"})
    assert msg.endswith("with an explicit deny in a resource-based policy")
    app.encrypt(KeyId=arn, Plaintext=b"still fine", EncryptionContext={"tenant": "b"})


def test_lockout_safety_check(srv):
    admin = client(srv, "KeyAdmin")
    arn = admin.create_key(Policy=key_policy())["KeyMetadata"]["Arn"]
    locked = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{B}:root"}, "Action": "kms:Decrypt", "Resource": "*"}]})
    with pytest.raises(ClientError) as e:
        admin.put_key_policy(KeyId=arn, PolicyName="default", Policy=locked)
    assert e.value.response["Error"] == {
        "Code": "MalformedPolicyDocumentException",
        "Message": "The new key policy will not allow you to update the key policy in the future."}
    with pytest.raises(ClientError) as e:
        admin.create_key(Policy=locked)
    assert e.value.response["Error"]["Code"] == "MalformedPolicyDocumentException"
    admin.put_key_policy(KeyId=arn, PolicyName="default", Policy=locked, BypassPolicyLockoutSafetyCheck=True)
    denied(admin.describe_key, KeyId=arn)  # and now the key is unmanageable for account A, as AWS warns


def test_account_level_operations_need_iam(srv):
    denied(client(srv, "NoPolicy").create_key)
    denied(client(srv, "Other").list_keys)
    assert client(srv, "root").list_keys()["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.slow
def test_simulator_uses_the_same_evaluator(srv):
    admin = client(srv, "KeyAdmin")
    arn = admin.create_key(Policy=key_policy(CROSS_ACCOUNT))["KeyMetadata"]["Arn"]

    def simulate(principal: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "kms_iac", "policy", "simulate", "--endpoint", srv.url, "--key", arn,
             "--principals", str(srv.principals_path), "--principal", principal, *extra],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                 "AWS_ACCESS_KEY_ID": KEYS["KeyAdmin"][0],
                                                 "AWS_SECRET_ACCESS_KEY": KEYS["KeyAdmin"][1]})

    ok = simulate(f"arn:aws:iam::{B}:role/Consumer", "--action", "kms:Decrypt", "--context", "tenant=b")
    assert ok.returncode == 0 and "kms:Decrypt: Allowed" in ok.stdout, ok.stdout + ok.stderr
    no = simulate(f"arn:aws:iam::{B}:role/Consumer", "--action", "kms:Decrypt", "--context", "tenant=c")
    assert no.returncode == 1 and "kms:Decrypt: Denied" in no.stdout
    js = simulate(f"arn:aws:iam::{A}:role/App", "--action", "kms:Encrypt", "--action", "kms:ScheduleKeyDeletion", "--json")
    results = {r["action"]: r["allowed"] for r in json.loads(js.stdout)["results"]}
    assert results == {"kms:Encrypt": True, "kms:ScheduleKeyDeletion": False}
    explain = subprocess.run(
        [sys.executable, "-m", "kms_iac", "policy", "explain", "--endpoint", srv.url, "--key", arn,
         "--principals", str(srv.principals_path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250",
                                             "AWS_ACCESS_KEY_ID": KEYS["KeyAdmin"][0], "AWS_SECRET_ACCESS_KEY": KEYS["KeyAdmin"][1]})
    assert explain.returncode == 0, explain.stderr
    assert f"arn:aws:iam::{A}:role/KeyAdmin" in explain.stdout and f"arn:aws:iam::{B}:role/Other" in explain.stdout
