"""Between Pulumi's PropertyValue trees and plain Python values."""

from __future__ import annotations

from typing import Any

from pulumi.provider.experimental.property_value import Computed, PropertyValue


class _Unknown:
    """A value not known yet (preview): compares unequal to everything but itself."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()
# On the wire an unknown (a value not known until another resource is created) is this
# string; the SDK's experimental (un)marshalling passes it through as a plain string and
# cannot marshal its own Computed, so unknowns travel as the string both ways.
_UNKNOWN_SENTINEL = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def unwrap(pv: PropertyValue) -> Any:
    v = pv.value
    if isinstance(v, Computed) or v == _UNKNOWN_SENTINEL:
        return UNKNOWN
    if isinstance(v, tuple):
        return [unwrap(x) for x in v]
    if hasattr(v, "items") and not isinstance(v, str):
        return {k: unwrap(x) for k, x in v.items()}
    return v


def unwrap_map(props: dict[str, PropertyValue] | None) -> tuple[dict[str, Any], set[str]]:
    """Plain values and the names of top-level properties that were secret."""
    props = props or {}
    values = {k: unwrap(v) for k, v in props.items() if v.value is not None}
    secrets = {k for k, v in props.items() if v.contains_secret()}
    return values, secrets


def wrap(value: Any, secret: bool = False) -> PropertyValue:
    if value is UNKNOWN:
        return PropertyValue(_UNKNOWN_SENTINEL)  # the SDK cannot marshal its own Computed
    if isinstance(value, bool) or value is None or isinstance(value, str):
        pv = PropertyValue(value)
    elif isinstance(value, (int, float)):
        pv = PropertyValue(float(value))
    elif isinstance(value, dict):
        pv = PropertyValue({k: wrap(v) for k, v in value.items()})
    elif isinstance(value, (list, tuple)):
        pv = PropertyValue([wrap(v) for v in value])
    else:
        raise TypeError(f"cannot send {type(value).__name__} to the engine")
    return pv.with_secret(True) if secret else pv


def wrap_map(values: dict[str, Any], secrets: set[str] = frozenset()) -> dict[str, PropertyValue]:  # type: ignore[assignment]
    return {k: wrap(v, k in secrets) for k, v in values.items() if v is not None}
