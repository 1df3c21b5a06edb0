"""evaluate_fleet shares rule results between keys the rules cannot tell apart, and gives exactly
the engine's findings: over every shared case, keys cloned across ids, accounts and regions, and
policies whose statements name particular keys."""

from __future__ import annotations

import dataclasses
import json

from kms_iac.rules.config import config_from_dict
from kms_iac.rules.engine import evaluate_view
from kms_iac.rules.fleet import evaluate_fleet
from kms_iac.rules.view import IdentityPolicyView, KeyView
from tests.rule_cases import ACCOUNT, CASES, GOOD_POLICY, IDENTITY_CASES, ROOT_STMT, USER_ACTIONS, policy, stmt
from tests.test_rules_engine import view_of

KEY_A = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/aaaaaaaa-0000-4000-8000-000000000001"
KEY_B = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/bbbbbbbb-0000-4000-8000-000000000002"


def clones(view: KeyView) -> list[KeyView]:
    """The same key under other ids, in another region and in another account."""
    out = []
    for i, (region, account) in enumerate([("us-east-1", ACCOUNT)] * 3 + [("eu-west-1", ACCOUNT), ("us-east-1", "444455556666")]):
        arn = f"arn:aws:kms:{region}:{account}:key/{i:08d}-0000-4000-8000-000000000000"
        out.append(dataclasses.replace(view, resource=f"{view.resource}#{i}", arn=arn, region=region, account=account))
    return out


def evaluate(views, cfg=None):
    """The engine without sharing: every rule run afresh on every view."""
    cfg = cfg or config_from_dict({})
    return [f for v in views for f in evaluate_view(v, cfg)]


def as_tuples(findings):
    return [(f.resource, f.rule, f.status, f.severity, f.message, f.suppressed) for f in findings]


def test_same_findings_as_the_engine_over_every_case_and_clone() -> None:
    views = [c for case in CASES for c in clones(view_of(case))]
    views += [IdentityPolicyView(c.name, "test", c.document, account=ACCOUNT) for c in IDENTITY_CASES]
    cfg = config_from_dict({"suppressions": [{"rule": "KMS015", "resource": "KMS015-*#3", "reason": "DR"}]})
    assert as_tuples(evaluate_fleet(views, cfg)) == as_tuples(evaluate(views, cfg))


def without_resource(st: dict) -> dict:
    return {k: v for k, v in st.items() if k != "Resource"}


def test_policies_naming_particular_keys_are_not_shared() -> None:
    """A statement that applies to key A only: key A and key B differ, though their policies are the same text."""
    doc = policy(ROOT_STMT, {**stmt("Everyone", "*", ["kms:Decrypt"]), "Resource": KEY_A},
                 {**without_resource(stmt("Partner", {"AWS": "arn:aws:iam::444455556666:root"}, USER_ACTIONS)),
                  "NotResource": KEY_B})
    text = json.dumps(doc)
    views = [KeyView(arn, "live", account=ACCOUNT, arn=arn, policy=json.loads(text), rotation_enabled=True)
             for arn in (KEY_A, KEY_B, KEY_A.replace("0001", "0003"))]
    got = {(f.resource, f.rule): f.status for f in evaluate_fleet(views)}
    assert got == {(f.resource, f.rule): f.status for f in evaluate(views)}
    assert got[(KEY_A, "KMS004")] == "FAIL" and got[(KEY_B, "KMS004")] == "PASS"
    assert got[(KEY_A, "KMS005")] == "FAIL" and got[(KEY_B, "KMS005")] == "PASS"


def test_results_are_shared_between_look_alike_keys(monkeypatch) -> None:
    """Many keys from one policy template: the policy rules run once, not once per key."""
    import kms_iac.rules.checks.kms006_separation_of_duties as kms006

    calls = []
    real = kms006.first_allowed
    monkeypatch.setattr(kms006, "first_allowed", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    base = view_of(next(c for c in CASES if c.name == "compliant-baseline"))
    views = [dataclasses.replace(base, resource=f"k{i}", arn=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{i:08d}",
                                 policy=json.loads(json.dumps(GOOD_POLICY)), tags={"tenant": f"t{i}"}) for i in range(50)]
    findings = evaluate_fleet(views)
    per_key = len(calls)
    calls.clear()
    evaluate(views[:1])
    assert per_key == len(calls) > 0  # fifty keys cost what one does
    by_rule: dict[str, list] = {}
    for f in findings:
        by_rule.setdefault(f.rule, []).append(f)
    assert {f.status for f in by_rule["KMS006"]} == {"PASS"}
    # results the rules read per key (the tenant tag here) stay per key
    assert [f.message for f in by_rule["KMS012"]] == [f"key has alias {base.aliases[0]} and tenant=t{i}" for i in range(50)]
