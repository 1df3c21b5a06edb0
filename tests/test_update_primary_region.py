"""UpdatePrimaryRegion through the real server and boto3: the replica becomes the primary,
the primary a replica, every related key records it, both keys are Updating for a few
seconds of the backend's clock, and rotation follows the primary."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from kms_iac.backend import transitions

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
    "Action": "kms:*", "Resource": "*"}]})


def err(excinfo) -> tuple[str, str]:
    e = excinfo.value.response["Error"]
    return e["Code"], e.get("Message", "")


@pytest.fixture
def key_set(server):
    """A primary in us-east-1 with replicas in eu-west-3 and ap-northeast-1, all created."""
    clients = {r: server.client(region=r) for r in ("us-east-1", "eu-west-3", "ap-northeast-1")}
    md = clients["us-east-1"].create_key(MultiRegion=True, Description="primary")["KeyMetadata"]
    for region in ("eu-west-3", "ap-northeast-1"):
        clients["us-east-1"].replicate_key(KeyId=md["KeyId"], ReplicaRegion=region, Description=f"in {region}",
                                           Policy=POLICY.replace("Enable IAM User Permissions", f"Policy of {region}"))
    server.advance_clock(transitions.REPLICA_CREATION_SECONDS)
    return md, clients


def _config(client, key_id: str) -> dict:
    return client.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"]


def test_the_replica_becomes_primary_and_every_key_knows(server, key_set):
    md, clients = key_set
    kid = md["KeyId"]
    us, eu = clients["us-east-1"], clients["eu-west-3"]
    eu_arn = md["Arn"].replace("us-east-1", "eu-west-3")
    blob = us.encrypt(KeyId=kid, Plaintext=b"before")["CiphertextBlob"]
    assert us.update_primary_region(KeyId=md["Arn"], PrimaryRegion="eu-west-3")["ResponseMetadata"]["HTTPStatusCode"] == 200
    for region in ("us-east-1", "eu-west-3"):  # both keys are Updating, and still usable
        key = clients[region].describe_key(KeyId=kid)["KeyMetadata"]
        assert (key["KeyState"], key["Enabled"]) == ("Updating", False)
        assert clients[region].decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"
    assert clients["ap-northeast-1"].describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled"
    with pytest.raises(ClientError) as e:  # but not managed meanwhile
        eu.disable_key(KeyId=kid)
    assert err(e) == ("KMSInvalidStateException", f"{eu_arn} is updating.")
    server.advance_clock(transitions.PRIMARY_UPDATE_SECONDS)
    for region, client in clients.items():
        config = _config(client, kid)
        assert config["PrimaryKey"] == {"Arn": eu_arn, "Region": "eu-west-3"}
        assert sorted(r["Region"] for r in config["ReplicaKeys"]) == ["ap-northeast-1", "us-east-1"]
        assert config["MultiRegionKeyType"] == ("PRIMARY" if region == "eu-west-3" else "REPLICA")
        assert client.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled"
    # each key keeps its own policy and description
    assert json.loads(eu.get_key_policy(KeyId=kid, PolicyName="default")["Policy"])["Statement"][0]["Sid"] == "Policy of eu-west-3"
    assert us.describe_key(KeyId=kid)["KeyMetadata"]["Description"] == "primary"
    assert eu.describe_key(KeyId=kid)["KeyMetadata"]["Description"] == "in eu-west-3"
    # only the primary replicates now
    with pytest.raises(ClientError) as e:
        us.replicate_key(KeyId=kid, ReplicaRegion="sa-east-1")
    assert err(e) == ("UnsupportedOperationException", f"{md['Arn']} is not a multi-Region primary key.")
    eu.replicate_key(KeyId=kid, ReplicaRegion="sa-east-1")
    assert len(_config(us, kid)["ReplicaKeys"]) == 3


def test_rotation_follows_the_primary(server, key_set):
    md, clients = key_set
    kid = md["KeyId"]
    us, eu = clients["us-east-1"], clients["eu-west-3"]
    us.enable_key_rotation(KeyId=kid, RotationPeriodInDays=180)
    assert eu.get_key_rotation_status(KeyId=kid)["RotationPeriodInDays"] == 180  # a replica shows its primary's
    with pytest.raises(ClientError) as e:
        eu.enable_key_rotation(KeyId=kid)
    assert err(e)[0] == "UnsupportedOperationException"
    us.update_primary_region(KeyId=kid, PrimaryRegion="eu-west-3")
    server.advance_clock(transitions.PRIMARY_UPDATE_SECONDS)
    status = eu.get_key_rotation_status(KeyId=kid)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 180
    old = us.get_key_rotation_status(KeyId=kid)  # the old primary, now a replica, shows the new primary's
    assert [old[k] for k in ("KeyRotationEnabled", "RotationPeriodInDays", "NextRotationDate")] == \
        [status[k] for k in ("KeyRotationEnabled", "RotationPeriodInDays", "NextRotationDate")]
    with pytest.raises(ClientError) as e:  # the old primary is a replica now
        us.disable_key_rotation(KeyId=kid)
    assert err(e)[0] == "UnsupportedOperationException"
    eu.disable_key_rotation(KeyId=kid)
    assert us.get_key_rotation_status(KeyId=kid)["KeyRotationEnabled"] is False
    before = eu.encrypt(KeyId=kid, Plaintext=b"v1")["CiphertextBlob"]
    eu.rotate_key_on_demand(KeyId=kid)  # from the new primary, reaching every replica
    current = eu.describe_key(KeyId=kid)["KeyMetadata"]["CurrentKeyMaterialId"]
    for client in clients.values():
        assert client.describe_key(KeyId=kid)["KeyMetadata"]["CurrentKeyMaterialId"] == current
        assert client.decrypt(CiphertextBlob=before)["Plaintext"] == b"v1"


def test_a_disabled_replica_comes_back_disabled(server, key_set):
    md, clients = key_set
    kid = md["KeyId"]
    clients["eu-west-3"].disable_key(KeyId=kid)
    clients["us-east-1"].update_primary_region(KeyId=kid, PrimaryRegion="eu-west-3")
    assert clients["eu-west-3"].describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Updating"
    server.advance_clock(transitions.PRIMARY_UPDATE_SECONDS)
    assert clients["eu-west-3"].describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Disabled"
    assert clients["us-east-1"].describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Enabled"


def test_refusals(server, key_set):
    md, clients = key_set
    kid = md["KeyId"]
    us, eu = clients["us-east-1"], clients["eu-west-3"]
    eu_arn = md["Arn"].replace("us-east-1", "eu-west-3")
    with pytest.raises(ClientError) as e:  # KeyId names the current primary
        eu.update_primary_region(KeyId=kid, PrimaryRegion="ap-northeast-1")
    assert err(e) == ("UnsupportedOperationException", f"{eu_arn} is not a multi-Region primary key.")
    single = us.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as e:
        us.update_primary_region(KeyId=single["KeyId"], PrimaryRegion="eu-west-3")
    assert err(e) == ("UnsupportedOperationException", f"{single['Arn']} is not a multi-Region primary key.")
    with pytest.raises(ClientError) as e:  # there must be a replica in that Region
        us.update_primary_region(KeyId=kid, PrimaryRegion="sa-east-1")
    assert err(e)[0] == "NotFoundException"
    with pytest.raises(ClientError) as e:
        us.update_primary_region(KeyId=kid, PrimaryRegion="us-east-1")
    assert err(e)[0] == "ValidationException"
    with pytest.raises(ClientError) as e:
        us.update_primary_region(KeyId=kid, PrimaryRegion="Mars")
    assert err(e)[0] == "ValidationException" and "regular expression pattern" in err(e)[1]
    us.create_alias(AliasName="alias/upr-primary", TargetKeyId=kid)
    with pytest.raises(ClientError) as e:
        us.update_primary_region(KeyId="alias/upr-primary", PrimaryRegion="eu-west-3")
    assert err(e) == ("InvalidArnException", "Key Aliases are not supported for this operation.")
    us.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    with pytest.raises(ClientError) as e:
        us.update_primary_region(KeyId=kid, PrimaryRegion="eu-west-3")
    assert err(e) == ("KMSInvalidStateException", f"{md['Arn']} is pending deletion.")
    for client in clients.values():  # nothing changed
        assert _config(client, kid)["PrimaryKey"]["Region"] == "us-east-1"


def test_a_replica_still_being_created_cannot_become_primary(server):
    us = server.client()
    md = us.create_key(MultiRegion=True)["KeyMetadata"]
    us.replicate_key(KeyId=md["KeyId"], ReplicaRegion="eu-north-1")
    with pytest.raises(ClientError) as e:
        us.update_primary_region(KeyId=md["KeyId"], PrimaryRegion="eu-north-1")
    assert err(e) == ("KMSInvalidStateException", f"{md['Arn'].replace('us-east-1', 'eu-north-1')} is creating.")
