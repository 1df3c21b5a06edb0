"""Runs the registered rules over views and applies the config: one finding per view and rule."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Iterable

from kms_iac.rules.config import RulesConfig
from kms_iac.rules.registry import FAIL, SEVERITIES, Rule, all_rules
from kms_iac.rules.view import View


@dataclass(frozen=True)
class Finding:
    rule: str
    resource: str
    status: str                    # PASS | FAIL | NOT_APPLICABLE
    severity: str
    message: str
    title: str
    remediation: str
    file: str | None = None
    source: str | None = None
    suppressed: str | None = None  # the reason, when a suppression in force covers a FAIL

    @property
    def blocking(self) -> bool:
        """A failure that counts: not suppressed."""
        return self.status == FAIL and self.suppressed is None

    def as_dict(self) -> dict:
        # Plain fields only: dataclasses.asdict's deep copy is most of a large report's cost.
        return {k: v for k in _FIELDS if (v := getattr(self, k)) is not None}


_FIELDS = tuple(f.name for f in fields(Finding))


def evaluate_view(view: View, config: RulesConfig, rules: Iterable[Rule] | None = None,
                  today: dt.date | None = None) -> list[Finding]:
    today = today or dt.date.today()
    out = []
    for r in rules if rules is not None else all_rules():
        if r.applies_to != view.kind or r.id in config.disabled:
            continue
        result = r.check(view, config)
        message, suppressed = result.message, None
        if result.status == FAIL:
            sup = config.suppression(r.id, view.resource)
            if sup is not None and sup.expired(today):
                message += f" (suppression expired on {sup.expires:%Y-%m-%d}: {sup.reason})"
            elif sup is not None:
                suppressed = sup.reason
        out.append(Finding(r.id, view.resource, result.status, config.severity(r.id, r.severity), message,
                           r.title, r.remediation, getattr(view, "file", None), view.source, suppressed))
    return out


def evaluate(views: Iterable[View], config: RulesConfig | None = None, today: dt.date | None = None) -> list[Finding]:
    """Every rule over every view: :func:`evaluate_view`'s findings, with results shared between
    views that a rule cannot tell apart (:mod:`kms_iac.rules.fleet`), which is what makes
    thousands of keys from a few policy templates cheap."""
    from kms_iac.rules.fleet import evaluate_fleet

    return evaluate_fleet(views, config, today)


def at_or_above(severity: str, threshold: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


def failing(findings: Iterable[Finding], fail_on: str = "INFO") -> list[Finding]:
    """Unsuppressed failures at or above ``fail_on``: what makes a scan exit 1."""
    return [f for f in findings if f.blocking and at_or_above(f.severity, fail_on)]
