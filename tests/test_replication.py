"""Multi-Region keys: replicas share the key id and every material version."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from kms_iac.backend import transitions
from kms_iac.backend.embedded import embedded_client
from tests.helpers import NO_CLIENT_VALIDATION


@pytest.fixture
def regions(backend):
    return (embedded_client(backend=backend, config=NO_CLIENT_VALIDATION),
            embedded_client(backend=backend, region="eu-west-1", config=NO_CLIENT_VALIDATION))


def test_replica_decrypts_primary_ciphertexts_across_rotation(regions, clock):
    us, eu = regions
    md = us.create_key(MultiRegion=True, Description="primary")["KeyMetadata"]
    before = us.encrypt(KeyId=md["KeyId"], Plaintext=b"v1", EncryptionContext={"t": "a"})["CiphertextBlob"]
    out = us.replicate_key(KeyId=md["Arn"], ReplicaRegion="eu-west-1", Tags=[{"TagKey": "r", "TagValue": "eu"}])
    rep = out["ReplicaKeyMetadata"]
    assert rep["KeyId"] == md["KeyId"] and rep["Arn"] == md["Arn"].replace("us-east-1", "eu-west-1")
    assert rep["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert rep["MultiRegionConfiguration"]["PrimaryKey"]["Region"] == "us-east-1"
    assert out["ReplicaTags"] == [{"TagKey": "r", "TagValue": "eu"}]
    clock.advance(transitions.REPLICA_CREATION_SECONDS)  # the replica leaves Creating
    assert eu.decrypt(CiphertextBlob=before, EncryptionContext={"t": "a"})["Plaintext"] == b"v1"
    us.rotate_key_on_demand(KeyId=md["KeyId"])
    after = us.encrypt(KeyId=md["KeyId"], Plaintext=b"v2")["CiphertextBlob"]
    assert eu.decrypt(CiphertextBlob=after)["Plaintext"] == b"v2"
    back = eu.encrypt(KeyId=md["KeyId"], Plaintext=b"from eu")["CiphertextBlob"]
    assert us.decrypt(CiphertextBlob=back)["Plaintext"] == b"from eu"
    replicas = us.describe_key(KeyId=md["KeyId"])["KeyMetadata"]["MultiRegionConfiguration"]["ReplicaKeys"]
    assert replicas == [{"Arn": rep["Arn"], "Region": "eu-west-1"}]
    with pytest.raises(ClientError) as e:
        eu.rotate_key_on_demand(KeyId=md["KeyId"])
    assert e.value.response["Error"]["Code"] == "UnsupportedOperationException"


def test_replicate_key_refusals(regions):
    us, _ = regions
    single = us.create_key()["KeyMetadata"]["KeyId"]
    mrk = us.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    for kwargs, code in (
        ({"KeyId": single, "ReplicaRegion": "eu-west-1"}, "UnsupportedOperationException"),
        ({"KeyId": mrk, "ReplicaRegion": "us-east-1"}, "ValidationException"),
    ):
        with pytest.raises(ClientError) as e:
            us.replicate_key(**kwargs)
        assert e.value.response["Error"]["Code"] == code
    us.replicate_key(KeyId=mrk, ReplicaRegion="eu-west-1")
    with pytest.raises(ClientError) as e:
        us.replicate_key(KeyId=mrk, ReplicaRegion="eu-west-1")
    assert e.value.response["Error"]["Code"] == "AlreadyExistsException"
