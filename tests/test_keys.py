"""Key lifecycle against AWS's documented behaviour, through both front doors."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from botocore.exceptions import ClientError

from kms_iac.backend.clock import DAY

ACCOUNT = "111122223333"


def err(excinfo) -> tuple[str, str]:
    e = excinfo.value.response["Error"]
    return e["Code"], e.get("Message", "")


def test_create_key_metadata_matches_aws(kms):
    md = kms.create_key(Description="tenant a", Tags=[{"TagKey": "tenant", "TagValue": "a"}])["KeyMetadata"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", md["KeyId"])
    assert md["Arn"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{md['KeyId']}"
    assert md["AWSAccountId"] == ACCOUNT
    assert md["Enabled"] is True and md["KeyState"] == "Enabled"
    assert md["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert md["KeySpec"] == md["CustomerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    assert md["Origin"] == "AWS_KMS" and md["KeyManager"] == "CUSTOMER"
    assert md["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert md["MultiRegion"] is False and "MultiRegionConfiguration" not in md
    assert "DeletionDate" not in md
    assert md["Description"] == "tenant a"
    assert len(md["CurrentKeyMaterialId"]) == 64


def test_default_key_policy_is_awss(kms):
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    policy = kms.get_key_policy(KeyId=kid, PolicyName="default")["Policy"]
    doc = json.loads(policy)
    assert doc["Id"] == "key-default-1"
    (st,) = doc["Statement"]
    assert st == {
        "Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*",
    }
    assert policy.startswith('{\n  "Version" : "2012-10-17"')  # AWS's layout
    assert kms.list_key_policies(KeyId=kid)["PolicyNames"] == ["default"]


def test_multi_region_key(kms):
    md = kms.create_key(MultiRegion=True)["KeyMetadata"]
    assert md["KeyId"].startswith("mrk-") and md["MultiRegion"] is True
    cfg = md["MultiRegionConfiguration"]
    assert cfg["MultiRegionKeyType"] == "PRIMARY"
    assert cfg["PrimaryKey"] == {"Arn": md["Arn"], "Region": "us-east-1"}


def test_describe_by_every_keyid_form(kms):
    md = kms.create_key()["KeyMetadata"]
    alias = f"alias/t-{uuid.uuid4().hex[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=md["KeyId"])
    for ref in (md["KeyId"], md["Arn"], alias, f"arn:aws:kms:us-east-1:{ACCOUNT}:{alias}"):
        assert kms.describe_key(KeyId=ref)["KeyMetadata"]["KeyId"] == md["KeyId"]


def test_not_found_messages(kms):
    missing = str(uuid.uuid4())
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=missing)
    assert err(e) == ("NotFoundException", f"Key 'arn:aws:kms:us-east-1:{ACCOUNT}:key/{missing}' does not exist")
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId="not-a-key")
    assert err(e) == ("NotFoundException", "Invalid keyId 'not-a-key'")
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId="alias/nope", Plaintext=b"x")
    assert err(e) == ("NotFoundException", f"Alias arn:aws:kms:us-east-1:{ACCOUNT}:alias/nope is not found.")
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{missing}")
    assert err(e) == ("NotFoundException", "Invalid arn eu-west-1")


def test_list_keys_pagination(kms):
    before = {k["KeyId"] for k in _all_keys(kms)}
    made = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(7)}
    seen, marker, pages = [], None, 0
    while True:
        page = kms.list_keys(Limit=3, **({"Marker": marker} if marker else {}))
        pages += 1
        assert len(page["Keys"]) <= 3
        seen += [k["KeyId"] for k in page["Keys"]]
        for k in page["Keys"]:
            assert k["KeyArn"].endswith(f":key/{k['KeyId']}")
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    assert len(seen) == len(set(seen))
    assert made <= set(seen) and before <= set(seen)
    assert pages >= 3


def _all_keys(kms):
    return [k for page in kms.get_paginator("list_keys").paginate() for k in page["Keys"]]


def test_enable_disable_and_description(kms):
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=kid)
    md = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert md["KeyState"] == "Disabled" and md["Enabled"] is False
    kms.disable_key(KeyId=kid)  # idempotent, as in AWS
    kms.enable_key(KeyId=kid)
    kms.update_key_description(KeyId=kid, Description="renamed")
    md = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert md["KeyState"] == "Enabled" and md["Description"] == "renamed"


def test_schedule_and_cancel_deletion(kms):
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    out = kms.schedule_key_deletion(KeyId=kid)
    assert out["PendingWindowInDays"] == 30 and out["KeyState"] == "PendingDeletion"
    assert out["KeyId"].endswith(kid)
    md = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert md["KeyState"] == "PendingDeletion" and md["PendingDeletionWindowInDays"] == 30
    assert md["DeletionDate"] > md["CreationDate"]
    for call in (lambda: kms.encrypt(KeyId=kid, Plaintext=b"x"), lambda: kms.enable_key(KeyId=kid),
                 lambda: kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)):
        with pytest.raises(ClientError) as e:
            call()
        assert err(e) == ("KMSInvalidStateException", f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{kid} is pending deletion.")
    assert kms.cancel_key_deletion(KeyId=kid)["KeyId"].endswith(kid)
    md = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert md["KeyState"] == "Disabled" and "DeletionDate" not in md
    with pytest.raises(ClientError) as e:
        kms.cancel_key_deletion(KeyId=kid)
    assert err(e) == ("KMSInvalidStateException", f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{kid} is not pending deletion.")


@pytest.mark.parametrize("days,bound", [(6, "greater than or equal to 7"), (31, "less than or equal to 30")])
def test_deletion_window_bounds(kms, days, bound):
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as e:
        kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=days)
    assert err(e) == (
        "ValidationException",
        f"1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value {bound}",
    )
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled"


def test_deletion_window_elapses_on_the_clock(embedded, clock):
    kid = embedded.create_key()["KeyMetadata"]["KeyId"]
    embedded.create_alias(AliasName="alias/doomed", TargetKeyId=kid)
    embedded.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    clock.advance(7 * DAY - 60)
    assert embedded.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    clock.advance(120)
    with pytest.raises(ClientError) as e:
        embedded.describe_key(KeyId=kid)
    assert err(e)[0] == "NotFoundException"
    assert all(a["AliasName"] != "alias/doomed" for a in embedded.list_aliases()["Aliases"])
    assert kid not in {k["KeyId"] for k in embedded.list_keys()["Keys"]}


def test_deletion_through_server_clock(server):
    kms = server.client()
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    _advance_server_clock(server, 7 * DAY + 1)
    with pytest.raises(ClientError) as e:
        kms.describe_key(KeyId=kid)
    assert err(e)[0] == "NotFoundException"


def _advance_server_clock(server, seconds: float) -> None:
    server.advance_clock(seconds)


def test_unsupported_key_specs_are_refused_clearly(kms):
    with pytest.raises(ClientError) as e:  # SM2 exists only in the China Regions
        kms.create_key(KeySpec="SM2", KeyUsage="SIGN_VERIFY")
    assert err(e) == ("UnsupportedOperationException", "KeySpec SM2 is not supported in this Region")
    with pytest.raises(ClientError) as e:
        kms.create_key(KeyUsage="SIGN_VERIFY")
    assert err(e)[0] == "ValidationException"


def test_external_origin_key_is_pending_import(kms):
    md = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]
    assert md["KeyState"] == "PendingImport" and md["Enabled"] is False and md["Origin"] == "EXTERNAL"
    with pytest.raises(ClientError) as e:
        kms.encrypt(KeyId=md["KeyId"], Plaintext=b"x")
    assert err(e) == ("KMSInvalidStateException", f"{md['Arn']} is pending import.")
