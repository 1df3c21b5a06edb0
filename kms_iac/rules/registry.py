"""The rule registry: one ``@rule`` per file under ``kms_iac/rules/checks``.

A rule is metadata (id, title, severity, rationale, remediation, which kind of view
it reads, the AWS Config managed rule it corresponds to) and a function over one view
and the configuration that returns a :class:`Result`. The front doors (checkov, the
template and live scanners, the Pulumi policy pack) list and run rules only through
this registry, so a rule has one id and one verdict everywhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from kms_iac.rules.config import RulesConfig
    from kms_iac.rules.view import View

PASS, FAIL, NOT_APPLICABLE = "PASS", "FAIL", "NOT_APPLICABLE"
SEVERITIES = ("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")


@dataclass(frozen=True)
class Result:
    status: str
    message: str


def passed(message: str) -> Result:
    return Result(PASS, message)


def failed(message: str) -> Result:
    return Result(FAIL, message)


def not_applicable(message: str) -> Result:
    return Result(NOT_APPLICABLE, message)


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    rationale: str
    remediation: str
    check: Callable[["View", "RulesConfig"], Result]
    applies_to: str = "key"             # key | identity-policy
    config_rule: str | None = None      # AWS Config managed rule name, where one exists

    @property
    def number(self) -> int:
        return int(self.id[3:])

    @property
    def checkov_id(self) -> str:
        return f"CKV_KMSIAC_{self.number}"


RULES: dict[str, Rule] = {}
_all_imported = False


def rule(id: str, *, title: str, severity: str, rationale: str, remediation: str,
         applies_to: str = "key", config_rule: str | None = None):
    """Register the decorated check function as rule ``id``."""
    if severity not in SEVERITIES:
        raise ValueError(f"{id}: unknown severity {severity}")

    def register(fn: Callable[["View", "RulesConfig"], Result]):
        if id in RULES:
            raise ValueError(f"rule {id} is registered twice")
        RULES[id] = Rule(id, title, severity, rationale, remediation, fn, applies_to, config_rule)
        return fn
    return register


def all_rules() -> list[Rule]:
    """Every rule, in id order (the check modules are imported on first use; importing one
    check module directly first must not leave the others out)."""
    global _all_imported
    if not _all_imported:
        from kms_iac.rules import checks
        for mod in sorted(pkgutil.iter_modules(checks.__path__), key=lambda m: m.name):
            importlib.import_module(f"{checks.__name__}.{mod.name}")
        _all_imported = True
    return [RULES[k] for k in sorted(RULES)]


def get_rule(rule_id: str) -> Rule:
    all_rules()
    return RULES[rule_id]
