"""CloudFormation intrinsic functions, resolved as far as a template alone allows.

A template is scanned before it is deployed, so some values do not exist yet: a
parameter without a Default, an ``Fn::ImportValue``, a condition's outcome. Those raise
:class:`Unresolved`, and the adapter marks what they were part of as unknown (a policy
becomes ``policy_unresolved`` and its rules say NOT_APPLICABLE) instead of guessing.
What a template *does* determine (pseudo parameters, parameter defaults, ``Fn::Sub``,
``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::FindInMap``, ``GetAtt X.Arn`` of IAM
principals and KMS keys) is resolved, so policies written with intrinsics are judged
as precisely as literal ones.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

# Keys checkov's CloudFormation parser adds to every mapping; never part of the template.
_PARSER_KEYS = frozenset({"__startline__", "__endline__"})
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")

PLACEHOLDER_REGION = "us-east-1"  # the Region KeyView.key_arn assumes for a key not yet created


class Unresolved(Exception):
    """A value the template alone cannot determine; the message says which and why."""


class _NoValue:
    """``Ref AWS::NoValue``: the property or list item is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()

_IAM_PATHS = {"AWS::IAM::Role": ("role", "RoleName"), "AWS::IAM::User": ("user", "UserName"),
              "AWS::IAM::Group": ("group", "GroupName")}
_KEY_TYPES = frozenset({"AWS::KMS::Key", "AWS::KMS::ReplicaKey"})


def _type(resource: dict) -> str:
    rtype = resource.get("Type")
    return rtype if isinstance(rtype, str) else ""


def clean(mapping: dict) -> dict:
    """The mapping without parser bookkeeping keys."""
    return {k: v for k, v in mapping.items() if k not in _PARSER_KEYS}


def intrinsic(value: Any) -> tuple[str, Any] | None:
    """``(name, argument)`` when ``value`` is one intrinsic function call, else None."""
    if isinstance(value, dict):
        body = clean(value)
        if len(body) == 1:
            (name, arg), = body.items()
            if name == "Ref" or name == "Condition" or str(name).startswith("Fn::"):
                return str(name), arg
    return None


def uses_account_id(value: Any) -> bool:
    """Does any part of ``value`` refer to ``AWS::AccountId`` (Ref or inside a Sub string)?"""
    if isinstance(value, dict):
        call = intrinsic(value)
        if call and call[0] == "Ref" and call[1] == "AWS::AccountId":
            return True
        if call and call[0] == "Fn::Sub":
            text = call[1][0] if isinstance(call[1], list) and call[1] else call[1]
            if isinstance(text, str) and "${AWS::AccountId}" in text:
                return True
        return any(uses_account_id(v) for v in value.values())
    if isinstance(value, list):
        return any(uses_account_id(v) for v in value)
    return False


@dataclass
class Resolver:
    """Resolves intrinsics against one template, for one deployment account and Region."""

    template: dict
    account: str
    region: str = PLACEHOLDER_REGION
    partition: str = "aws"
    _active: set = field(default_factory=set, repr=False)  # parameters/resources being resolved

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic replaced by its value; raises :class:`Unresolved`."""
        try:
            return self._resolve(value)
        except RecursionError:
            raise Unresolved("nested too deeply") from None

    def _cycle_guard(self, name: str):
        """Refuses a parameter or resource that refers back to itself (a template error)."""
        outer = self

        class _Guard:
            def __enter__(self) -> None:
                if name in outer._active:
                    raise Unresolved(f"{name} refers to itself")
                outer._active.add(name)

            def __exit__(self, *exc) -> None:
                outer._active.discard(name)

        return _Guard()

    def _resolve(self, value: Any) -> Any:
        call = intrinsic(value)
        if call is not None:
            name, arg = call
            fn = self._functions().get(name)
            if fn is None:
                raise Unresolved(f"{name} cannot be evaluated before deployment")
            return fn(arg)
        if isinstance(value, dict):
            out = {}
            for k, v in clean(value).items():
                r = self._resolve(v)
                if r is not NO_VALUE:
                    out[k] = r
            return out
        if isinstance(value, list):
            return [r for r in (self._resolve(v) for v in value) if r is not NO_VALUE]
        return value

    def resolve_or(self, value: Any, default: Any) -> Any:
        try:
            return self.resolve(value)
        except Unresolved:
            return default

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {"Ref": self._ref, "Fn::GetAtt": self._get_att, "Fn::Sub": self._sub, "Fn::Join": self._join,
                "Fn::Select": self._select, "Fn::Split": self._split, "Fn::FindInMap": self._find_in_map,
                "Fn::Base64": self._base64, "Fn::ToJsonString": lambda a: json.dumps(self._resolve(a)),
                "Fn::Length": lambda a: len(self._as_list(self._resolve(a), "Fn::Length"))}

    # -- Ref and GetAtt -------------------------------------------------------------

    def _section(self, name: str) -> dict:
        section = self.template.get(name)
        return section if isinstance(section, dict) else {}

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise Unresolved(f"Ref to {name!r} is not a name")
        pseudo = {"AWS::AccountId": self.account, "AWS::Region": self.region, "AWS::Partition": self.partition,
                  "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": NO_VALUE}
        if name in pseudo:
            return pseudo[name]
        params = self._section("Parameters")
        if name in params:
            param = params[name] if isinstance(params[name], dict) else {}
            if str(param.get("Type", "")).startswith("AWS::SSM::Parameter::Value"):
                raise Unresolved(f"parameter {name} is read from SSM at deployment")
            if "Default" not in param:
                raise Unresolved(f"parameter {name} has no Default")
            with self._cycle_guard(name):
                default = self._resolve(param["Default"])
            ptype = str(param.get("Type", ""))
            if isinstance(default, str) and (ptype == "CommaDelimitedList" or ptype.startswith("List<")):
                return [s.strip() for s in default.split(",")]
            return default
        resource = self._resource(name)
        rtype = _type(resource)
        if rtype in _KEY_TYPES:
            return name  # the key id stand-in KeyView.key_arn uses
        if rtype in _IAM_PATHS:
            return self._iam_name(name, resource)
        if rtype == "AWS::IAM::ManagedPolicy":
            return self._iam_arn(name, resource, "policy", "ManagedPolicyName")
        raise Unresolved(f"Ref {name} ({rtype}) is known only after deployment")

    def _resource(self, name: str) -> dict:
        resource = self._section("Resources").get(name)
        if not isinstance(resource, dict):
            raise Unresolved(f"{name} is neither a parameter nor a resource of this template")
        return resource

    def _properties(self, resource: dict) -> dict:
        props = resource.get("Properties")
        return props if isinstance(props, dict) else {}

    def _iam_name(self, logical_id: str, resource: dict, name_prop: str | None = None) -> str:
        name_prop = name_prop or _IAM_PATHS[resource["Type"]][1]
        with self._cycle_guard(logical_id):
            name = self._resolve(self._properties(resource).get(name_prop, logical_id))
        if not isinstance(name, (str, int)):
            raise Unresolved(f"{logical_id}.{name_prop} is not a name")
        return str(name)

    def _iam_arn(self, logical_id: str, resource: dict, kind: str, name_prop: str) -> str:
        with self._cycle_guard(logical_id):
            path = self._resolve(self._properties(resource).get("Path", "/")) or "/"
        if not isinstance(path, str):
            raise Unresolved(f"{logical_id}.Path is not a path")
        name = self._iam_name(logical_id, resource, name_prop)
        return f"arn:{self.partition}:iam::{self.account}:{kind}{path}{name}"

    def _get_att(self, arg: Any) -> Any:
        if isinstance(arg, str):
            logical_id, _, attr = arg.partition(".")
        elif isinstance(arg, list) and len(arg) == 2:
            logical_id, attr = arg[0], self._resolve(arg[1])
        else:
            raise Unresolved(f"Fn::GetAtt {arg!r} is malformed")
        resource = self._resource(str(logical_id))
        rtype = _type(resource)
        if rtype in _IAM_PATHS and attr == "Arn":
            kind, name_prop = _IAM_PATHS[rtype]
            return self._iam_arn(logical_id, resource, kind, name_prop)
        if rtype in _KEY_TYPES and attr == "Arn":
            return f"arn:{self.partition}:kms:{self.region}:{self.account}:key/{logical_id}"
        if rtype in _KEY_TYPES and attr == "KeyId":
            return logical_id
        raise Unresolved(f"Fn::GetAtt {logical_id}.{attr} ({rtype}) is known only after deployment")

    # -- string and list functions ----------------------------------------------------

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict):
            text, variables = arg[0], {k: self._resolve(v) for k, v in clean(arg[1]).items()}
        else:
            text, variables = arg, {}
        text = self._resolve(text)
        if not isinstance(text, str):
            raise Unresolved(f"Fn::Sub of {text!r}, not a string")

        def one(m: re.Match) -> str:
            var = m.group(1).strip()
            if var.startswith("!"):
                return "${" + var[1:] + "}"  # ${!Literal} is written out as ${Literal}
            if var in variables:
                value = variables[var]
            elif "." in var and var.split(".", 1)[0] not in self._section("Parameters"):
                value = self._get_att(var)
            else:
                value = self._ref(var)
            if isinstance(value, (list, dict)) or value is NO_VALUE:
                raise Unresolved(f"Fn::Sub variable ${{{var}}} is not a string")
            return str(value)

        return _SUB_VAR.sub(one, text)

    def _join(self, arg: Any) -> str:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise Unresolved(f"Fn::Join {arg!r} is malformed")
        delimiter = self._resolve(arg[0])
        items = self._as_list(self._resolve(arg[1]), "Fn::Join")
        if any(isinstance(i, (list, dict)) for i in items):
            raise Unresolved("Fn::Join over values that are not strings")
        return str(delimiter).join(str(i) for i in items)

    def _select(self, arg: Any) -> Any:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise Unresolved(f"Fn::Select {arg!r} is malformed")
        try:
            index = int(self._resolve(arg[0]))
        except (TypeError, ValueError):
            raise Unresolved(f"Fn::Select index {arg[0]!r} is not a number") from None
        items = self._as_list(self._resolve(arg[1]), "Fn::Select")
        if not 0 <= index < len(items):
            raise Unresolved(f"Fn::Select index {index} is outside a list of {len(items)}")
        return items[index]

    def _split(self, arg: Any) -> list[str]:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise Unresolved(f"Fn::Split {arg!r} is malformed")
        delimiter, text = self._resolve(arg[0]), self._resolve(arg[1])
        if not isinstance(delimiter, str) or not isinstance(text, str):
            raise Unresolved("Fn::Split needs a string delimiter and a string")
        return text.split(delimiter)

    def _find_in_map(self, arg: Any) -> Any:
        if not (isinstance(arg, list) and len(arg) >= 3):
            raise Unresolved(f"Fn::FindInMap {arg!r} is malformed")
        names = [self._resolve(a) for a in arg[:3]]
        node: Any = self._section("Mappings")
        for name in names:
            if not isinstance(node, dict) or str(name) not in node:
                raise Unresolved(f"Fn::FindInMap {'/'.join(map(str, names))} is not in Mappings")
            node = node[str(name)]
        return self._resolve(node)

    def _base64(self, arg: Any) -> str:
        text = self._resolve(arg)
        if not isinstance(text, str):
            raise Unresolved("Fn::Base64 of a value that is not a string")
        return base64.b64encode(text.encode()).decode()

    @staticmethod
    def _as_list(value: Any, fn: str) -> list:
        if not isinstance(value, list):
            raise Unresolved(f"{fn} needs a list, got {type(value).__name__}")
        return value


def describe(value: Any) -> str:
    """A short rendering of an unresolved value, e.g. ``{Ref: TenantName}`` (for tag values)."""
    call = intrinsic(value)
    if call is not None:
        return "{" + f"{call[0].removeprefix('Fn::')}: {call[1]}" + "}"
    return str(value)
