"""Grants against AWS's documented behaviour, through both front doors where possible."""

from __future__ import annotations

import re
import uuid

import pytest
from botocore.exceptions import ClientError

from kms_iac.backend.clock import DAY
from kms_iac.backend.ops.grants import active_grants, grant_for_token

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"


def err(excinfo) -> tuple[str, str]:
    e = excinfo.value.response["Error"]
    return e["Code"], e.get("Message", "")


def _principal(kind: str = "role") -> str:
    return f"arn:aws:iam::{ACCOUNT}:{kind}/t-{uuid.uuid4().hex[:10]}"


def _key(kms) -> dict:
    return kms.create_key()["KeyMetadata"]


def _grants(kms, kid: str) -> list[dict]:
    return kms.list_grants(KeyId=kid)["Grants"]


def test_create_and_list_grant(kms):
    md = _key(kms)
    retiring = _principal("user")
    out = kms.create_grant(KeyId=md["KeyId"], GranteePrincipal=ROLE, RetiringPrincipal=retiring,
                           Operations=["Encrypt", "Decrypt", "DescribeKey"], Name="app-grant")
    assert re.fullmatch(r"[0-9a-f]{64}", out["GrantId"])
    assert isinstance(out["GrantToken"], str) and len(out["GrantToken"]) >= 100
    (g,) = _grants(kms, md["KeyId"])
    assert g["KeyId"] == md["Arn"]
    assert g["GrantId"] == out["GrantId"] and g["Name"] == "app-grant"
    assert g["GranteePrincipal"] == ROLE and g["RetiringPrincipal"] == retiring
    assert g["IssuingAccount"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert g["Operations"] == ["Encrypt", "Decrypt", "DescribeKey"]
    assert "Constraints" not in g and g["CreationDate"] is not None


def test_list_grants_filters_and_pages(kms):
    kid = _key(kms)["KeyId"]
    other = _principal()
    ids = [kms.create_grant(KeyId=kid, GranteePrincipal=ROLE if i % 2 else other, Operations=["Decrypt"])["GrantId"]
           for i in range(5)]
    assert len(set(ids)) == 5  # no Name: every call is a new grant
    assert {g["GrantId"] for g in kms.list_grants(KeyId=kid, GranteePrincipal=other)["Grants"]} == {ids[0], ids[2], ids[4]}
    assert [g["GrantId"] for g in kms.list_grants(KeyId=kid, GrantId=ids[3])["Grants"]] == [ids[3]]
    seen, marker = [], None
    while True:
        page = kms.list_grants(KeyId=kid, Limit=2, **({"Marker": marker} if marker else {}))
        seen += [g["GrantId"] for g in page["Grants"]]
        if not page["Truncated"]:
            break
        marker = page["NextMarker"]
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    with pytest.raises(ClientError) as e:
        kms.list_grants(KeyId=kid, GrantId="not-a-grant-id")
    assert err(e)[0] == "InvalidGrantIdException"


def test_name_makes_create_grant_idempotent(kms):
    kid = _key(kms)["KeyId"]
    args = dict(KeyId=kid, GranteePrincipal=ROLE, Operations=["Encrypt", "Decrypt"], Name="retry-me",
                Constraints={"EncryptionContextSubset": {"app": "a"}})
    first, second = kms.create_grant(**args), kms.create_grant(**{**args, "Operations": ["Decrypt", "Encrypt"]})
    assert first["GrantId"] == second["GrantId"]
    assert first["GrantToken"] != second["GrantToken"]
    assert len(_grants(kms, kid)) == 1
    third = kms.create_grant(**{**args, "Operations": ["Decrypt"]})  # different parameters: a new grant
    assert third["GrantId"] != first["GrantId"] and len(_grants(kms, kid)) == 2
    # every token issued for the grant retires it
    kms.retire_grant(GrantToken=first["GrantToken"])
    assert {g["GrantId"] for g in _grants(kms, kid)} == {third["GrantId"]}


def test_retire_by_token_and_by_key_and_id(kms):
    md = _key(kms)
    a = kms.create_grant(KeyId=md["KeyId"], GranteePrincipal=ROLE, Operations=["Decrypt"])
    b = kms.create_grant(KeyId=md["KeyId"], GranteePrincipal=ROLE, Operations=["Decrypt"])
    kms.retire_grant(GrantToken=a["GrantToken"])
    kms.retire_grant(KeyId=md["Arn"], GrantId=b["GrantId"])
    assert _grants(kms, md["KeyId"]) == []
    with pytest.raises(ClientError) as e:
        kms.retire_grant(GrantToken=a["GrantToken"])
    assert err(e) == ("NotFoundException", f"Grant ID {a['GrantId']} not found")
    with pytest.raises(ClientError) as e:
        kms.retire_grant(KeyId=md["Arn"], GrantId=b["GrantId"])
    assert err(e) == ("NotFoundException", f"Grant ID {b['GrantId']} not found")
    with pytest.raises(ClientError) as e:
        kms.retire_grant(GrantToken="bm90LWEtdG9rZW4")
    assert err(e)[0] == "InvalidGrantTokenException"
    with pytest.raises(ClientError) as e:
        kms.retire_grant(KeyId=md["Arn"], GrantId="xyz")
    assert err(e)[0] == "InvalidGrantIdException"
    with pytest.raises(ClientError) as e:
        kms.retire_grant(KeyId=md["Arn"])
    assert err(e)[0] == "ValidationException"


def test_forged_token_for_a_live_grant_is_refused(kms):
    kid = _key(kms)["KeyId"]
    g = kms.create_grant(KeyId=kid, GranteePrincipal=ROLE, Operations=["Decrypt"])
    import base64

    raw = bytearray(base64.urlsafe_b64decode(g["GrantToken"] + "=" * (-len(g["GrantToken"]) % 4)))
    raw[-1] ^= 1
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(ClientError) as e:
        kms.retire_grant(GrantToken=forged)
    assert err(e)[0] == "InvalidGrantTokenException"
    assert len(_grants(kms, kid)) == 1


def test_revoke_grant(kms):
    kid = _key(kms)["KeyId"]
    other = _key(kms)["KeyId"]
    g = kms.create_grant(KeyId=kid, GranteePrincipal=ROLE, Operations=["GenerateDataKey"])
    with pytest.raises(ClientError) as e:  # the grant is not on that key
        kms.revoke_grant(KeyId=other, GrantId=g["GrantId"])
    assert err(e) == ("NotFoundException", f"Grant ID {g['GrantId']} not found")
    kms.revoke_grant(KeyId=kid, GrantId=g["GrantId"])
    assert _grants(kms, kid) == []
    with pytest.raises(ClientError) as e:
        kms.revoke_grant(KeyId=kid, GrantId=g["GrantId"])
    assert err(e) == ("NotFoundException", f"Grant ID {g['GrantId']} not found")
    with pytest.raises(ClientError) as e:
        kms.revoke_grant(KeyId=kid, GrantId="short")
    assert err(e)[0] == "InvalidGrantIdException"


def test_list_retirable_grants(kms):
    retiring = _principal("user")
    k1, k2 = _key(kms), _key(kms)
    g1 = kms.create_grant(KeyId=k1["KeyId"], GranteePrincipal=ROLE, RetiringPrincipal=retiring, Operations=["Decrypt"])
    g2 = kms.create_grant(KeyId=k2["KeyId"], GranteePrincipal=ROLE, RetiringPrincipal=retiring, Operations=["Encrypt"])
    kms.create_grant(KeyId=k2["KeyId"], GranteePrincipal=ROLE, RetiringPrincipal=_principal(), Operations=["Encrypt"])
    out = kms.list_retirable_grants(RetiringPrincipal=retiring)
    assert {(g["GrantId"], g["KeyId"]) for g in out["Grants"]} == {(g1["GrantId"], k1["Arn"]), (g2["GrantId"], k2["Arn"])}
    assert out["Truncated"] is False
    page = kms.list_retirable_grants(RetiringPrincipal=retiring, Limit=1)
    assert len(page["Grants"]) == 1 and page["Truncated"] is True
    rest = kms.list_retirable_grants(RetiringPrincipal=retiring, Marker=page["NextMarker"])
    assert len(rest["Grants"]) == 1 and rest["Grants"][0]["GrantId"] != page["Grants"][0]["GrantId"]


def test_constraints_round_trip(kms):
    kid = _key(kms)["KeyId"]
    for c in ({"EncryptionContextSubset": {"tenant": "a", "app": "x"}}, {"EncryptionContextEquals": {"tenant": "b"}}):
        g = kms.create_grant(KeyId=kid, GranteePrincipal=ROLE, Operations=["Decrypt", "DescribeKey"], Constraints=c)
        (listed,) = kms.list_grants(KeyId=kid, GrantId=g["GrantId"])["Grants"]
        assert listed["Constraints"] == c


@pytest.mark.parametrize("op", ["Sign", "Verify", "GenerateMac", "VerifyMac", "GetPublicKey", "DeriveSharedSecret"])
def test_operations_invalid_for_symmetric_key(kms, op):
    md = _key(kms)
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=md["KeyId"], GranteePrincipal=ROLE, Operations=["Decrypt", op])
    assert err(e)[0] == "ValidationException" and op in err(e)[1]
    assert _grants(kms, md["KeyId"]) == []


def test_invalid_requests_are_validation_errors_and_change_nothing(kms):
    kid = _key(kms)["KeyId"]
    bad = [
        dict(Operations=["Frobnicate"]),  # not in the model's enum
        dict(Operations=[]),
        dict(Operations=["DescribeKey"], Constraints={"EncryptionContextSubset": {"a": "b"}}),
        dict(Operations=["Decrypt"], Constraints={"EncryptionContextEquals": {f"k{i}": "v" for i in range(9)}}),
        dict(Operations=["Decrypt"], Constraints={"EncryptionContextSubset": {"k": "v" * 385}}),
        dict(Operations=["Decrypt"], GranteePrincipal="not-a-principal"),
        dict(Operations=["Decrypt"], RetiringPrincipal="bob"),
        dict(Operations=["Decrypt"], Name="bad name with spaces"),
    ]
    for extra in bad:
        with pytest.raises(ClientError) as e:
            kms.create_grant(**{"KeyId": kid, "GranteePrincipal": ROLE, **extra})
        assert err(e)[0] == "ValidationException", extra
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=kid, Operations=["Decrypt"])  # no grantee at all
    assert err(e)[0] == "ValidationException"
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=kid, GranteePrincipal=ROLE, Operations=["Decrypt"], GrantTokens=["garbage"])
    assert err(e)[0] == "InvalidGrantTokenException"
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=kid, GranteePrincipal=ROLE, Operations=["Decrypt"], DryRun=True)
    assert err(e)[0] == "DryRunOperationException"
    assert _grants(kms, kid) == []


def test_service_principal_grantee_accepted(kms):
    kid = _key(kms)["KeyId"]
    kms.create_grant(KeyId=kid, GranteePrincipal="ec2.amazonaws.com", Operations=["Decrypt"])
    assert _grants(kms, kid)[0]["GranteePrincipal"] == "ec2.amazonaws.com"


def test_grant_on_disabled_and_deleting_keys(kms):
    md = _key(kms)
    kid = md["KeyId"]
    g = kms.create_grant(KeyId=kid, GranteePrincipal=ROLE, Operations=["Decrypt"])
    kms.disable_key(KeyId=kid)
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=kid, GranteePrincipal=ROLE, Operations=["Decrypt"])
    assert err(e) == ("DisabledException", f"{md['Arn']} is disabled.")
    assert [x["GrantId"] for x in _grants(kms, kid)] == [g["GrantId"]]  # listing still works
    kms.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    with pytest.raises(ClientError) as e:
        kms.create_grant(KeyId=kid, GranteePrincipal=ROLE, Operations=["Decrypt"])
    assert err(e) == ("KMSInvalidStateException", f"{md['Arn']} is pending deletion.")
    assert len(_grants(kms, kid)) == 1
    kms.revoke_grant(KeyId=kid, GrantId=g["GrantId"])  # revoking is allowed in any state
    assert _grants(kms, kid) == []


def test_grants_go_with_the_deleted_key(embedded, backend, clock):
    kid = embedded.create_key()["KeyMetadata"]["KeyId"]
    retiring = _principal("user")
    g = embedded.create_grant(KeyId=kid, GranteePrincipal=ROLE, RetiringPrincipal=retiring, Operations=["Decrypt"])
    embedded.schedule_key_deletion(KeyId=kid, PendingWindowInDays=7)
    clock.advance(7 * DAY + 1)
    with pytest.raises(ClientError) as e:
        embedded.list_grants(KeyId=kid)
    assert err(e)[0] == "NotFoundException"
    assert embedded.list_retirable_grants(RetiringPrincipal=retiring)["Grants"] == []
    assert backend.store.execute("SELECT COUNT(*) FROM grants")[0][0] == 0
    assert grant_for_token(backend.store, g["GrantToken"]) is None


def test_active_grants_helper_for_the_authorizer(embedded, backend):
    kid = embedded.create_key()["KeyMetadata"]["KeyId"]
    g = embedded.create_grant(KeyId=kid, GranteePrincipal=ROLE, Operations=["Decrypt", "Encrypt"],
                              Constraints={"EncryptionContextEquals": {"a": "1"}})
    key = backend.store.get_key(kid, backend.region)
    (ag,) = active_grants(backend.store, key)
    assert ag["GrantId"] == g["GrantId"] and ag["GranteePrincipal"] == ROLE
    assert ag["Operations"] == ["Decrypt", "Encrypt"]
    assert ag["Constraints"] == {"EncryptionContextEquals": {"a": "1"}}
    assert grant_for_token(backend.store, g["GrantToken"])["GrantId"] == g["GrantId"]
    assert grant_for_token(backend.store, "nope") is None
    # the token itself is never stored, only its hash
    rows = backend.store.execute("SELECT * FROM grants")
    assert g["GrantToken"] not in repr(rows)


def test_refused_grant_calls_are_audited_and_change_nothing(embedded, backend):
    kid = embedded.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError):
        embedded.create_grant(KeyId=kid, GranteePrincipal=ROLE, Operations=["Sign"])
    with pytest.raises(ClientError):
        embedded.revoke_grant(KeyId=kid, GrantId="0" * 64)
    assert backend.store.execute("SELECT COUNT(*) FROM grants")[0][0] == 0
