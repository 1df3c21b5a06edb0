"""Declarative resource specs: one list of properties per resource drives the schema,
input checking, defaults and the generic diff."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from kms_iac.provider.props import UNKNOWN


@dataclass(frozen=True)
class Prop:
    name: str  # camelCase, as in the schema and the state
    type: str  # string | integer | boolean | map | array
    description: str
    replaces: bool = False  # a change replaces the resource
    default: Any = None
    secret: bool = False
    output: bool = False  # computed by the provider, never an input
    required: bool = False
    equal: Callable[[Any, Any], bool] | None = None  # semantic equality for diffs
    ignore_when_absent: bool = False  # an omitted input leaves whatever KMS chose alone

    @property
    def snake(self) -> str:
        return "".join("_" + c.lower() if c.isupper() else c for c in self.name)


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    description: str
    props: tuple[Prop, ...] = field(default_factory=tuple)

    @property
    def token(self) -> str:
        return f"kms-iac:index:{self.name}"

    @property
    def inputs(self) -> tuple[Prop, ...]:
        return tuple(p for p in self.props if not p.output)

    def prop(self, name: str) -> Prop:
        return next(p for p in self.props if p.name == name)


_PY_TYPES = {"string": (str,), "integer": (int,), "boolean": (bool,), "map": (dict,), "array": (list,)}


def coerce(spec: ResourceSpec, values: dict) -> dict:
    """The engine sends every number as a float; give integer properties back their type."""
    out = dict(values)
    for p in spec.props:
        v = out.get(p.name)
        if p.type == "integer" and isinstance(v, float) and v.is_integer():
            out[p.name] = int(v)
    return out


def check_types(spec: ResourceSpec, inputs: dict) -> tuple[dict, list[tuple[str, str]]]:
    """Apply defaults and type-check inputs; return (inputs, [(property, reason)])."""
    out: dict = {}
    failures: list[tuple[str, str]] = []
    known = {p.name for p in spec.inputs}
    for name in inputs:
        if name not in known and not name.startswith("__"):
            failures.append((name, f"{spec.name} has no input property '{name}'"))
    for p in spec.inputs:
        value = inputs.get(p.name)
        if value is None:
            if p.required:
                failures.append((p.name, f"missing required property '{p.name}'"))
                continue
            value = p.default
        if value is None or value is UNKNOWN:
            if value is UNKNOWN:
                out[p.name] = value
            continue
        if p.type == "integer" and isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) and p.type == "integer" or not isinstance(value, _PY_TYPES[p.type]):
            failures.append((p.name, f"'{p.name}' must be a {p.type}, got {type(value).__name__}"))
            continue
        out[p.name] = value
    return out, failures


def diff(spec: ResourceSpec, olds: dict, news: dict) -> tuple[list[str], list[str]]:
    """(changed property names, names whose change forces replacement)."""
    changes, replaces = [], []
    for p in spec.inputs:
        new = news.get(p.name, p.default)
        old = olds.get(p.name, p.default)
        if new is None and p.ignore_when_absent:
            continue
        if new is UNKNOWN:
            same = False
        elif p.equal is not None and old is not None and new is not None:
            same = p.equal(old, new)
        else:
            same = old == new
        if not same:
            changes.append(p.name)
            if p.replaces:
                replaces.append(p.name)
    return changes, replaces
