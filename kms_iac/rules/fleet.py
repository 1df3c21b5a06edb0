"""The rules over thousands of keys: :func:`evaluate` with results shared between keys that
the rules cannot tell apart.

A live account holds thousands of keys made from a handful of policy templates. The policy
rules (KMS001, KMS004-006, KMS013) ask the policy evaluator dozens of questions per key,
which makes them most of a large scan's time, yet two keys with the same policy, account,
region and usage get the same answers. So each rule runs on a recording proxy of the view
that notes every attribute the rule reads; a later view that has the same values for all of
those attributes takes the same path through the (pure) rule and gets the same result.
Nothing is declared per rule, so a rule that starts reading another field stays correct.

The key's ARN is the one attribute compared by what it can influence rather than by value:
policy evaluation uses a key ARN only to match statements' ``Resource`` (and for its account
and region), so when every statement of the key's effective policy applies to ``"*"`` (key
policies almost always do), keys of the same account and region compare equal on it. A
result whose message names the key itself is never shared. Suppressions and severities are
still applied per key by the engine.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any, Iterable

from kms_iac.policy.document import as_list, statements
from kms_iac.rules.config import RulesConfig
from kms_iac.rules.engine import Finding, evaluate_view
from kms_iac.rules.registry import Result, Rule, all_rules
from kms_iac.rules.view import View

_IDENTITY = ("resource", "arn", "file")  # never shared: a rule reading these gets a per-key result


def _resource_independent(doc: dict | None) -> bool:
    """Does every statement apply to any key (Resource absent or "*", no NotResource)?"""
    if doc is None:
        return True  # KMS's default key policy
    for _, st in statements(doc):
        if "NotResource" in st:
            return False
        if "Resource" in st and any(r != "*" for r in as_list(st["Resource"])):
            return False
    return True


_SCALARS = (str, int, float, bool, type(None), dt.datetime, dt.date)


class _Values:
    """Hashable stand-ins for a view's attribute values, kept for the view being evaluated (the
    engine runs every rule on one view before the next); policy documents are canonicalised and
    checked for resource independence once per document object."""

    def __init__(self) -> None:
        self._docs: dict[int, tuple[Any, str, bool]] = {}
        self._view: View | None = None
        self._cache: dict[str, Any] = {}

    def _doc(self, doc: dict) -> tuple[Any, str, bool]:
        hit = self._docs.get(id(doc))
        if hit is None or hit[0] is not doc:
            hit = (doc, json.dumps(doc, sort_keys=True, default=str), _resource_independent(doc))
            self._docs[id(doc)] = hit
        return hit

    def freeze(self, value: Any) -> Any:
        if type(value) in _SCALARS:
            return value
        if isinstance(value, dict):
            return ("dict", self._doc(value)[1])
        if isinstance(value, (list, tuple)):
            return ("list", tuple(self.freeze(v) for v in value))
        return value if isinstance(value, _SCALARS) else ("repr", repr(value))

    def get(self, view: View, name: str) -> Any:
        if view is not self._view:
            self._view, self._cache = view, {}
        try:
            return self._cache[name]
        except KeyError:
            pass
        if name == "key_arn":
            policy = getattr(view, "policy", None)
            independent = policy is None or (isinstance(policy, dict) and self._doc(policy)[2])
            arn = view.key_arn.split(":")
            value = ("any-key", *arn[3:5]) if independent else view.key_arn
        else:
            value = self.freeze(getattr(view, name))
        self._cache[name] = value
        return value


class _Recorder:
    """A view that remembers which attributes were read, in order."""

    def __init__(self, view: View) -> None:
        object.__setattr__(self, "_view", view)
        object.__setattr__(self, "reads", [])

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._view, name)
        self.reads.append(name)
        return value


class _SharedRule:
    """One rule with a memo of (attributes read, their values) -> result."""

    def __init__(self, rule: Rule, values: _Values) -> None:
        self.rule = rule
        self.values = values
        self.read_sets: list[tuple[str, ...]] = []
        self.results: dict[tuple, Result] = {}

    def _memo_key(self, view: View, names: tuple[str, ...]) -> tuple:
        get = self.values.get
        return (names, tuple([get(view, n) for n in names]))

    def check(self, view: View, config: RulesConfig) -> Result:
        for names in self.read_sets:
            hit = self.results.get(self._memo_key(view, names))
            if hit is not None:
                return hit
        rec = _Recorder(view)
        result = self.rule.check(rec, config)  # type: ignore[arg-type]
        names = tuple(dict.fromkeys(rec.reads))
        own = {str(getattr(view, n, None) or "") for n in (*_IDENTITY, "key_arn") if hasattr(view, n)} - {""}
        if not any(n in _IDENTITY for n in names) and not any(s in result.message for s in own):
            if names not in self.read_sets:
                self.read_sets.append(names)
            self.results[self._memo_key(view, names)] = result
        return result


def evaluate_fleet(views: Iterable[View], config: RulesConfig | None = None, today: dt.date | None = None) -> list[Finding]:
    """Exactly the findings of :func:`kms_iac.rules.engine.evaluate_view` over every view, faster when
    many views look alike to a rule."""
    config = config or RulesConfig()
    values = _Values()
    rules = [replace(r, check=_SharedRule(r, values).check) for r in all_rules()]
    return [f for v in views for f in evaluate_view(v, config, rules, today)]
