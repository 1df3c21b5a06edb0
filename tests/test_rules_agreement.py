"""The four front doors agree: every shared case through checkov, `scan template`
(CloudFormation and a Terraform plan), the Pulumi policy pack and `scan live`, and every
verdict compared. A door is excused only from the rules it cannot observe
(``rule_cases.UNOBSERVABLE``: a live key does not remember a bypassed lockout check or its
future deletion window)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from tests.helpers import ServerProcess
from tests.rule_cases import CASES, IDENTITY_CASES, UNOBSERVABLE
from tests.rules_doors_checkov import verdicts_via_checkov
from tests.rules_doors_live import verdicts_via_live
from tests.rules_doors_pulumi import verdicts_via_pulumi
from tests.rules_doors_templates import verdicts_via_cloudformation, verdicts_via_terraform

pytestmark = pytest.mark.slow


def test_every_door_gives_every_verdict_alike(tmp_path) -> None:
    doors: dict[str, dict[str, dict[str, str]]] = {
        "cloudformation": verdicts_via_cloudformation(CASES, IDENTITY_CASES, tmp_path),
        "terraform": verdicts_via_terraform(CASES, IDENTITY_CASES, tmp_path),
        "checkov": verdicts_via_checkov(CASES, IDENTITY_CASES, tmp_path, framework="cloudformation"),
        "pulumi": verdicts_via_pulumi(CASES, IDENTITY_CASES, tmp_path),
    }
    with ServerProcess(tmp_path / "live-data") as srv:
        doors["live"] = verdicts_via_live(CASES, IDENTITY_CASES, srv)

    seen: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)  # (case, rule) -> {door: status}
    for door, verdicts in doors.items():
        excused = UNOBSERVABLE.get(door, set())
        for case, by_rule in verdicts.items():
            for rule, status in by_rule.items():
                if rule not in excused:
                    seen[(case, rule)][door] = status
    disagreements = {k: v for k, v in seen.items() if len(set(v.values())) > 1}
    assert not disagreements, "\n".join(f"{case} {rule}: {v}" for (case, rule), v in sorted(disagreements.items()))

    # every case went through every door it names, and gave its expected verdicts there
    for case in CASES:
        for door in [d for d in case.doors if d in doors] + (["checkov"] if "cloudformation" in case.doors else []):
            got = doors[door].get(case.name)
            assert got is not None, f"{door} reported nothing for {case.name}"
            for rule, want in case.expect.items():
                if rule not in UNOBSERVABLE.get(door, set()):
                    assert got.get(rule) == want, (door, case.name, rule, got.get(rule), want)
    for ic in IDENTITY_CASES:
        for door in ic.doors:
            assert doors[door][ic.name]["KMS016"] == ic.expect, (door, ic.name)
    assert len(seen) > 400
