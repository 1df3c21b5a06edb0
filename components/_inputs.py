"""Input checks shared by the components: errors name the component, the tenant and the field.

Plain values are checked when the program runs (before any resource is registered), so
`pulumi preview` fails with one clear line; values that are Pulumi Outputs are checked
when they resolve, by the same functions.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import pulumi

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_ALIAS_PREFIX = re.compile(r"^[A-Za-z0-9/_-]{1,200}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class ComponentInputError(ValueError):
    """A component argument is wrong; the message says which component, tenant and field."""


def where(component: str, tenant: str | None, field: str) -> str:
    return f"{component}(tenant={tenant!r}).{field}" if tenant else f"{component}.{field}"


def tenant_id(value: Any, component: str) -> str:
    if not isinstance(value, str) or not _TENANT.match(value):
        raise ComponentInputError(f"{component}.tenant: {value!r} is not a tenant id (1-64 letters, digits, - or _, "
                                  "starting with a letter or digit)")
    return value


def days(value: Any, low: int, high: int, at: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ComponentInputError(f"{at}: must be a whole number of days from {low} to {high}, got {value!r}")
    return value


def alias_prefix(value: Any, at: str) -> str:
    if not isinstance(value, str) or not _ALIAS_PREFIX.match(value.strip("/")) or value.strip("/").startswith("aws"):
        raise ComponentInputError(f"{at}: {value!r} is not an alias prefix (letters, digits, /, _ and -; "
                                  "not aws, which AWS reserves)")
    return value.strip("/")


def regions(values: Any, at: str) -> list[str]:
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise ComponentInputError(f"{at}: expected a list of Regions such as ['eu-west-1']")
    for r in values:
        if not isinstance(r, str) or not _REGION.match(r):
            raise ComponentInputError(f"{at}: {r!r} is not an AWS Region name")
    if len(set(values)) != len(values):
        raise ComponentInputError(f"{at}: a Region is listed twice")
    return list(values)


def string_list(values: Any, at: str) -> list:
    """A list of strings or Outputs (not one bare string, a classic slip)."""
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise ComponentInputError(f"{at}: expected a list, got {type(values).__name__}")
    return list(values)


def tags(values: Any, at: str) -> dict:
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ComponentInputError(f"{at}: expected a mapping of tag names to values")
    return dict(values)


def resolved(values: Iterable[Any]) -> bool:
    return not any(isinstance(v, pulumi.Output) for v in values)
