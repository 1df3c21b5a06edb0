"""Rotation: new material, old ciphertexts still decrypt, the key id never changes."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from kms_iac.backend.clock import DAY
from kms_iac.backend.ops.rotation import MAX_ON_DEMAND_ROTATIONS


def err(excinfo) -> tuple[str, str]:
    e = excinfo.value.response["Error"]
    return e["Code"], e.get("Message", "")


def test_rotation_settings(kms):
    kid = kms.create_key()["KeyMetadata"]["KeyId"]
    st = kms.get_key_rotation_status(KeyId=kid)
    assert st["KeyRotationEnabled"] is False and "NextRotationDate" not in st
    kms.enable_key_rotation(KeyId=kid)
    st = kms.get_key_rotation_status(KeyId=kid)
    assert st["KeyRotationEnabled"] is True and st["RotationPeriodInDays"] == 365
    kms.enable_key_rotation(KeyId=kid, RotationPeriodInDays=90)
    assert kms.get_key_rotation_status(KeyId=kid)["RotationPeriodInDays"] == 90
    for days, bound in ((89, "greater than or equal to 90"), (2561, "less than or equal to 2560")):
        with pytest.raises(ClientError) as e:
            kms.enable_key_rotation(KeyId=kid, RotationPeriodInDays=days)
        assert err(e) == ("ValidationException",
                          f"1 validation error detected: Value '{days}' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value {bound}")
    kms.disable_key_rotation(KeyId=kid)
    assert kms.get_key_rotation_status(KeyId=kid)["KeyRotationEnabled"] is False
    kms.disable_key(KeyId=kid)
    with pytest.raises(ClientError) as e:
        kms.enable_key_rotation(KeyId=kid)
    assert err(e)[0] == "DisabledException"


def test_on_demand_rotation_keeps_old_material(kms):
    md = kms.create_key()["KeyMetadata"]
    kid = md["KeyId"]
    old = kms.encrypt(KeyId=kid, Plaintext=b"v1")["CiphertextBlob"]
    assert kms.rotate_key_on_demand(KeyId=kid)["KeyId"] == md["Arn"]  # AWS answers with the key ARN
    new_md = kms.describe_key(KeyId=kid)["KeyMetadata"]
    assert new_md["KeyId"] == kid and new_md["CurrentKeyMaterialId"] != md["CurrentKeyMaterialId"]
    new = kms.encrypt(KeyId=kid, Plaintext=b"v2")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=old)["Plaintext"] == b"v1"
    assert kms.decrypt(CiphertextBlob=old)["KeyMaterialId"] == md["CurrentKeyMaterialId"]
    assert kms.decrypt(CiphertextBlob=new)["KeyMaterialId"] == new_md["CurrentKeyMaterialId"]
    (rot,) = kms.list_key_rotations(KeyId=kid)["Rotations"]
    assert rot["RotationType"] == "ON_DEMAND" and rot["KeyId"] == kid
    everything = kms.list_key_rotations(KeyId=kid, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [r["KeyMaterialState"] for r in everything] == ["NON_CURRENT", "CURRENT"]


def test_on_demand_limit(embedded):
    kid = embedded.create_key()["KeyMetadata"]["KeyId"]
    arn = embedded.describe_key(KeyId=kid)["KeyMetadata"]["Arn"]
    for _ in range(MAX_ON_DEMAND_ROTATIONS):
        embedded.rotate_key_on_demand(KeyId=kid)
    with pytest.raises(ClientError) as e:
        embedded.rotate_key_on_demand(KeyId=kid)
    assert err(e) == ("LimitExceededException",
                      "The on-demand rotations limit has been reached for the given keyId. "
                      f"No more on-demand rotations can be performed for this key: {arn}")


def test_automatic_rotation_on_the_clock(embedded, clock):
    kid = embedded.create_key()["KeyMetadata"]["KeyId"]
    embedded.enable_key_rotation(KeyId=kid, RotationPeriodInDays=90)
    blobs = [embedded.encrypt(KeyId=kid, Plaintext=b"gen0")["CiphertextBlob"]]
    next_date = embedded.get_key_rotation_status(KeyId=kid)["NextRotationDate"].timestamp()
    assert abs(next_date - (clock.now() + 90 * DAY)) < 1
    clock.advance(90 * DAY + 1)
    blobs.append(embedded.encrypt(KeyId=kid, Plaintext=b"gen1")["CiphertextBlob"])
    clock.advance(2 * 90 * DAY)  # two more periods while nobody called
    blobs.append(embedded.encrypt(KeyId=kid, Plaintext=b"gen3")["CiphertextBlob"])
    rotations = embedded.list_key_rotations(KeyId=kid)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"] * 3
    assert [embedded.decrypt(CiphertextBlob=b)["Plaintext"] for b in blobs] == [b"gen0", b"gen1", b"gen3"]
    assert embedded.describe_key(KeyId=kid)["KeyMetadata"]["KeyId"] == kid


def test_disabled_key_does_not_rotate_automatically(embedded, clock):
    kid = embedded.create_key()["KeyMetadata"]["KeyId"]
    embedded.enable_key_rotation(KeyId=kid, RotationPeriodInDays=90)
    embedded.disable_key(KeyId=kid)
    clock.advance(100 * DAY)
    assert embedded.list_key_rotations(KeyId=kid)["Rotations"] == []
    embedded.enable_key(KeyId=kid)  # overdue: rotates as soon as it is enabled again
    assert len(embedded.list_key_rotations(KeyId=kid)["Rotations"]) == 1


def test_imported_material_is_never_rotated(kms):
    kid = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    arn = kms.describe_key(KeyId=kid)["KeyMetadata"]["Arn"]
    for call in (kms.enable_key_rotation, kms.get_key_rotation_status):
        with pytest.raises(ClientError) as e:
            call(KeyId=kid)
        assert err(e) == ("UnsupportedOperationException", f"{arn} origin is EXTERNAL which is not valid for this operation.")
    with pytest.raises(ClientError) as e:  # on demand it rotates to imported material: none yet
        kms.rotate_key_on_demand(KeyId=kid)
    assert err(e) == ("KMSInvalidStateException", f"{arn} is pending import.")
