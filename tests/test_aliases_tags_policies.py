"""Aliases, tags and key policies."""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError

ACCOUNT = "111122223333"


def err(excinfo) -> tuple[str, str]:
    e = excinfo.value.response["Error"]
    return e["Code"], e.get("Message", "")


def name() -> str:
    return f"alias/t-{uuid.uuid4().hex[:10]}"


def test_alias_lifecycle(kms):
    a = kms.create_key()["KeyMetadata"]
    b = kms.create_key()["KeyMetadata"]
    n = name()
    kms.create_alias(AliasName=n, TargetKeyId=a["Arn"])
    listed = (x for page in kms.get_paginator("list_aliases").paginate() for x in page["Aliases"])  # 50 to a page
    entry = next(x for x in listed if x["AliasName"] == n)
    assert entry["AliasArn"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:{n}"
    assert entry["TargetKeyId"] == a["KeyId"]
    assert {"CreationDate", "LastUpdatedDate"} <= set(entry)
    assert [x["AliasName"] for x in kms.list_aliases(KeyId=a["KeyId"])["Aliases"]] == [n]
    blob = kms.encrypt(KeyId=n, Plaintext=b"x")["CiphertextBlob"]
    kms.update_alias(AliasName=n, TargetKeyId=b["KeyId"])
    assert kms.describe_key(KeyId=n)["KeyMetadata"]["KeyId"] == b["KeyId"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"  # blobs name keys, not aliases
    kms.delete_alias(AliasName=n)
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=n)
    assert err(e) == ("NotFoundException", f"Alias arn:aws:kms:us-east-1:{ACCOUNT}:{n} is not found.")
    with pytest.raises(ClientError) as e:
        kms.delete_alias(AliasName=n)
    assert err(e)[0] == "NotFoundException"


def test_alias_errors(kms):
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    n = name()
    kms.create_alias(AliasName=n, TargetKeyId=kid)
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName=n, TargetKeyId=kid)
    assert err(e) == ("AlreadyExistsException", f"An alias with the name arn:aws:kms:us-east-1:{ACCOUNT}:{n} already exists")
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="orders", TargetKeyId=kid)
    assert err(e)[0] == "ValidationException" and 'prefix "alias/"' in err(e)[1]
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/aws/mine", TargetKeyId=kid)
    assert err(e)[0] == "NotAuthorizedException"
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName="alias/bad name!", TargetKeyId=kid)
    assert err(e) == (
        "ValidationException",
        "1 validation error detected: Value 'alias/bad name!' at 'aliasName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
    )
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName=name(), TargetKeyId=str(uuid.uuid4()))
    assert err(e)[0] == "NotFoundException"
    kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    with pytest.raises(ClientError) as e:
        kms.create_alias(AliasName=name(), TargetKeyId=kid)
    assert err(e)[0] == "KMSInvalidStateException"


def test_tags(kms):
    kid = kms.create_key(Tags=[{"TagKey": "tenant", "TagValue": "a"}])["KeyMetadata"]["KeyId"]
    kms.tag_resource(KeyId=kid, Tags=[{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "tenant", "TagValue": "b"}])
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=kid)["Tags"]}
    assert tags == {"tenant": "b", "env": "prod"}
    kms.untag_resource(KeyId=kid, TagKeys=["env", "missing-is-fine"])
    assert kms.list_resource_tags(KeyId=kid)["Tags"] == [{"TagKey": "tenant", "TagValue": "b"}]
    for tags, message in (
        ([{"TagKey": "aws:x", "TagValue": "1"}], "Tags beginning with aws: are reserved"),
        ([{"TagKey": "k", "TagValue": "1"}, {"TagKey": "k", "TagValue": "2"}], "Duplicate tag keys"),
        ([{"TagKey": f"k{i}", "TagValue": "v"} for i in range(51)], "Too many tags"),
    ):
        with pytest.raises(ClientError) as e:
            kms.tag_resource(KeyId=kid, Tags=tags)
        assert err(e) == ("TagException", message)
    assert kms.list_resource_tags(KeyId=kid)["Tags"] == [{"TagKey": "tenant", "TagValue": "b"}]  # unchanged
    with pytest.raises(ClientError) as e:
        kms.create_key(Tags=[{"TagKey": "AWS:x", "TagValue": "1"}])
    assert err(e)[0] == "TagException"


def test_put_and_get_policy(kms):
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "app", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/app"},
         "Action": ["kms:Decrypt"], "Resource": "*"}]}
    text = json.dumps(policy)
    kms.put_key_policy(KeyId=kid, PolicyName="default", Policy=text)
    assert kms.get_key_policy(KeyId=kid, PolicyName="default")["Policy"] == text
    assert kms.get_key_policy(KeyId=kid)["PolicyName"] == "default"  # PolicyName is optional now
    for bad in ("{not json", "[]", json.dumps({"Statement": []}), json.dumps({"Statement": [{"Effect": "Maybe"}]})):
        with pytest.raises(ClientError) as e:
            kms.put_key_policy(KeyId=kid, PolicyName="default", Policy=bad)
        assert err(e)[0] == "MalformedPolicyDocumentException"
    assert kms.get_key_policy(KeyId=kid, PolicyName="default")["Policy"] == text
    with pytest.raises(ClientError) as e:
        kms.create_key(Policy="{nope")
    assert err(e)[0] == "MalformedPolicyDocumentException"
