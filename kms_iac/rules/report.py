"""Findings in the formats pipelines read: text, json, sarif, junit, and AWS Config evaluations."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Iterable, Sequence

from kms_iac import __version__
from kms_iac.rules.engine import Finding
from kms_iac.rules.registry import FAIL, NOT_APPLICABLE, PASS, all_rules

FORMATS = ("text", "json", "sarif", "junit", "config")
_SARIF_LEVEL = {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note", "INFO": "note"}
_SECURITY_SEVERITY = {"CRITICAL": "9.5", "HIGH": "8.0", "MEDIUM": "5.5", "LOW": "3.0", "INFO": "0.0"}


def to_json(findings: Sequence[Finding]) -> str:
    import orjson  # not at import time: checkov's environment loads this package with the stdlib alone

    return orjson.dumps({"findings": [f.as_dict() for f in findings]}, option=orjson.OPT_INDENT_2).decode()


def to_sarif(findings: Sequence[Finding]) -> str:
    rules = all_rules()
    index = {r.id: i for i, r in enumerate(rules)}
    results = []
    for f in findings:
        if f.status != FAIL:
            continue
        res = {
            "ruleId": f.rule, "ruleIndex": index[f.rule], "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.resource}: {f.message}"},
            "locations": [{
                **({"physicalLocation": {"artifactLocation": {"uri": f.file}}} if f.file else {}),
                "logicalLocations": [{"name": f.resource, "kind": "resource"}],
            }],
            "properties": {"severity": f.severity},
        }
        if f.suppressed:
            res["suppressions"] = [{"kind": "external", "justification": f.suppressed}]
        results.append(res)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "kms-iac", "version": __version__, "informationUri": "https://github.com/kms-iac/kms-iac",
                "rules": [{
                    "id": r.id, "name": r.title.replace(" ", ""),
                    "shortDescription": {"text": r.title}, "fullDescription": {"text": r.rationale},
                    "help": {"text": r.remediation},
                    "defaultConfiguration": {"level": _SARIF_LEVEL[r.severity]},
                    "properties": {"security-severity": _SECURITY_SEVERITY[r.severity], "tags": ["security", "kms"]},
                } for r in rules],
            }},
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2)


def to_junit(findings: Sequence[Finding]) -> str:
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_rule[f.rule].append(f)
    suites = ET.Element("testsuites", name="kms-iac", tests=str(len(findings)),
                        failures=str(sum(f.blocking for f in findings)))
    for rule_id in sorted(by_rule):
        items = by_rule[rule_id]
        suite = ET.SubElement(suites, "testsuite", name=f"{rule_id} {items[0].title}", tests=str(len(items)),
                              failures=str(sum(f.blocking for f in items)),
                              skipped=str(sum(f.status == NOT_APPLICABLE or bool(f.suppressed) for f in items)))
        for f in items:
            case = ET.SubElement(suite, "testcase", name=f"{rule_id} {f.resource}", classname=f.file or f.source or "kms-iac")
            if f.status == FAIL and not f.suppressed:
                fail = ET.SubElement(case, "failure", type=f.severity, message=f.message)
                fail.text = f"{f.message}\nRemediation: {f.remediation}"
            elif f.status == FAIL:
                ET.SubElement(case, "skipped", message=f"suppressed: {f.suppressed}")
            elif f.status == NOT_APPLICABLE:
                ET.SubElement(case, "skipped", message=f"not applicable: {f.message}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")


def config_rule_name(rule_id: str) -> str:
    """AWS's managed rule name where one exists, else kms-iac's own."""
    r = next(r for r in all_rules() if r.id == rule_id)
    return r.config_rule or f"kms-iac-{rule_id.lower()}"


def _resource_id(resource: str) -> str:
    """AWS Config names a KMS key by its key id."""
    return resource.rsplit("/", 1)[-1] if resource.startswith("arn:") and ":key/" in resource else resource


def to_config(findings: Sequence[Finding], now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    compliance = {PASS: "COMPLIANT", FAIL: "NON_COMPLIANT", NOT_APPLICABLE: "NOT_APPLICABLE"}
    grouped: dict[str, list[dict]] = defaultdict(list)
    for f in findings:
        status = PASS if f.suppressed else f.status
        note = f"suppressed: {f.suppressed}" if f.suppressed else f.message
        grouped[config_rule_name(f.rule)].append({
            "ComplianceResourceType": "AWS::KMS::Key" if f.rule != "KMS016" else "AWS::IAM::Policy",
            "ComplianceResourceId": _resource_id(f.resource),
            "ComplianceType": compliance[status],
            "Annotation": f"{f.rule}: {note}"[:256],
            "OrderingTimestamp": stamp,
        })
    return json.dumps({"ConfigRuleEvaluations": [
        {"ConfigRuleName": name, "Evaluations": evs} for name, evs in sorted(grouped.items())]}, indent=2)


def print_text(findings: Sequence[Finding], console=None, show_passed: bool = False) -> None:
    """A rich table per resource: failures first; passes only with ``show_passed``."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    by_resource: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_resource[f.resource].append(f)
    style = {FAIL: "bold red", PASS: "green", NOT_APPLICABLE: "dim"}
    for resource, items in by_resource.items():
        shown = [f for f in items if show_passed or f.status == FAIL]
        fails = sum(f.blocking for f in items)
        where = f"  ({items[0].file})" if items[0].file else ""
        head = f"[bold]{resource}[/bold]{where}: " + (f"[red]{fails} failed[/red]" if fails else "[green]compliant[/green]")
        if not shown:
            console.print(head)
            continue
        table = Table(title=head, title_justify="left", show_lines=False, expand=False)
        for col in ("rule", "severity", "status", "finding"):
            table.add_column(col, overflow="fold")
        for f in sorted(shown, key=lambda f: (f.status != FAIL, f.rule)):
            status = f"[{style[f.status]}]{f.status}[/]" + (" (suppressed)" if f.suppressed else "")
            table.add_row(f.rule, f.severity, status, f.message)
        console.print(table)
    total_fail = sum(f.blocking for f in findings)
    console.print(summary_line(findings) if total_fail else f"[green]{summary_line(findings)}[/green]")


def summary_line(findings: Iterable[Finding]) -> str:
    findings = list(findings)
    resources = {f.resource for f in findings}
    counts = {s: sum(f.status == s for f in findings) for s in (FAIL, PASS, NOT_APPLICABLE)}
    suppressed = sum(bool(f.suppressed) for f in findings)
    return (f"{len(resources)} resource(s), {len(findings)} checks: {counts[FAIL] - suppressed} failed, "
            f"{counts[PASS]} passed, {counts[NOT_APPLICABLE]} not applicable, {suppressed} suppressed")


def render(findings: Sequence[Finding], fmt: str) -> str:
    """Every machine format as text (``text`` goes through :func:`print_text`)."""
    return {"json": to_json, "sarif": to_sarif, "junit": to_junit, "config": to_config}[fmt](findings)
