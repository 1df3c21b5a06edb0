"""Request validation against botocore's own KMS service model.

botocore ships every operation's shapes, required members, min/max, enums and
patterns; validating against it keeps the backend in step with the real API without
hand-written checks, and yields AWS's ``1 validation error detected: ...`` messages.
Type errors (a string where a number belongs) are ``SerializationException``, as the
JSON 1.1 protocol reports them; constraint violations are ``ValidationException``.

The server validates from botocore's model file itself (``botocore/data/kms/<version>/
service-2.json``), read as JSON into :class:`RawShape` (the few attributes of botocore's
``Shape`` validation uses): importing ``botocore.session`` to build a ``ServiceModel`` costs
~0.25 s of start-up. :func:`service_model` still gives botocore's own model to whoever
needs the rest of it (IAM action names, tests).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from kms_iac.backend.errors import SerializationException, UnknownOperationException, ValidationException

PROTOCOL_PREFIX = "TrentService."


@lru_cache(maxsize=1)
def service_model():
    import botocore.session

    return botocore.session.get_session().get_service_model("kms")


# botocore's Shape metadata that validation reads (botocore.model.Shape.METADATA_ATTRS has more)
_CHECKED_TRAITS = ("required", "min", "max", "pattern", "sensitive", "enum")


class RawShape:
    """One shape of the model file, with the attributes of ``botocore.model.Shape`` that
    :class:`_Checker` uses. A member reference's own traits are merged over the shape it
    names, as botocore's ShapeResolver does."""

    def __init__(self, shapes: dict[str, dict], ref: dict) -> None:
        self._shapes = shapes
        model = {**shapes[ref["shape"]], **{k: v for k, v in ref.items() if k != "shape"}}
        self._model = model
        self.type_name: str = model["type"]
        self.metadata: dict[str, Any] = {k: model[k] for k in _CHECKED_TRAITS if k in model}
        self.enum: list[str] = model.get("enum", [])
        self.required_members: list[str] = model.get("required", [])

    @property
    def members(self) -> dict[str, "RawShape"]:
        found = self.__dict__.get("_members")
        if found is None:
            found = self.__dict__["_members"] = {n: RawShape(self._shapes, r)
                                                 for n, r in self._model.get("members", {}).items()}
        return found

    @property
    def member(self) -> "RawShape":
        return RawShape(self._shapes, self._model["member"])

    @property
    def key(self) -> "RawShape":
        return RawShape(self._shapes, self._model["key"])

    @property
    def value(self) -> "RawShape":
        return RawShape(self._shapes, self._model["value"])


class RawOperation:
    def __init__(self, shapes: dict[str, dict], model: dict) -> None:
        self.input_shape = RawShape(shapes, model["input"]) if "input" in model else None


@lru_cache(maxsize=1)
def _model_file() -> dict:
    """botocore's KMS model (the newest API version it ships), read without importing botocore."""
    spec = importlib.util.find_spec("botocore")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("botocore is not installed")
    service = Path(list(spec.submodule_search_locations)[0]) / "data" / "kms"
    version = max(p for p in service.iterdir() if p.is_dir())
    plain, packed = version / "service-2.json", version / "service-2.json.gz"
    if plain.exists():
        return json.loads(plain.read_bytes())
    return json.loads(gzip.decompress(packed.read_bytes()))


@lru_cache(maxsize=1)
def iam_actions() -> tuple[str, ...]:
    """KMS's IAM action names, sorted: ``kms:<Operation>`` for every API operation, except that
    ReEncrypt is authorized as two actions, ``kms:ReEncryptFrom`` (source key) and
    ``kms:ReEncryptTo`` (destination key), as AWS KMS documents."""
    operations = (set(service_model().operation_names) - {"ReEncrypt"}) | {"ReEncryptFrom", "ReEncryptTo"}
    return tuple(sorted(f"kms:{op}" for op in operations))


@lru_cache(maxsize=None)
def operation(name: str) -> RawOperation:
    """``name``'s operation in the model file; UnknownOperationException for names KMS does not have."""
    model = _model_file()
    found = model["operations"].get(name)
    if found is None:
        raise UnknownOperationException(None)
    return RawOperation(model["shapes"], found)


@lru_cache(maxsize=None)
def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_show(v).strip("'") for v in value) + "]"
    if isinstance(value, bool):
        return "'" + ("true" if value else "false") + "'"
    return f"'{value}'"


@lru_cache(maxsize=None)
def _pattern(pattern: str) -> re.Pattern:
    return re.compile(pattern)


class _Checker:
    """Walks one request against its input shape, collecting AWS-style violations."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def fail(self, value: Any, path: str, constraint: str, sensitive: bool) -> None:
        shown = "" if sensitive else (" null" if value is None else " " + _show(value))
        self.violations.append(f"Value{shown} at '{path}' failed to satisfy constraint: Member must {constraint}")

    def structure(self, shape: RawShape, value: Any, path: str) -> dict:
        if not isinstance(value, dict):
            raise SerializationException(f"Expected a JSON object at '{path or 'request'}'")
        out: dict = {}
        for name, member in shape.members.items():
            mpath = f"{path}.{_camel(name)}" if path else _camel(name)
            if name not in value or value[name] is None:
                if name in shape.required_members:
                    self.fail(None, mpath, "not be null", False)
                continue
            out[name] = self.value(member, value[name], mpath)
        return out

    def value(self, shape: RawShape, value: Any, path: str) -> Any:
        kind = shape.type_name
        meta = shape.metadata
        sensitive = bool(meta.get("sensitive"))
        if kind == "structure":
            return self.structure(shape, value, path)
        if kind == "list":
            if not isinstance(value, list):
                raise SerializationException(f"Expected a list at '{path}'")
            self._length(shape, value, len(value), path, sensitive)
            return [self.value(shape.member, v, f"{path}.{i + 1}.member") for i, v in enumerate(value)]
        if kind == "map":
            if not isinstance(value, dict):
                raise SerializationException(f"Expected a map at '{path}'")
            self._length(shape, value, len(value), path, sensitive)
            out = {}
            for k, v in value.items():
                out[self.value(shape.key, k, f"{path}.key")] = self.value(shape.value, v, f"{path}.value")
            return out
        if kind == "string":
            if not isinstance(value, str):
                raise SerializationException(f"Expected a string at '{path}'")
            self._length(shape, value, len(value), path, sensitive)
            enum = shape.enum
            if enum and value not in enum:
                self.fail(value, path, "satisfy enum value set: [" + ", ".join(enum) + "]", sensitive)
            pat = meta.get("pattern")
            if pat and not _pattern(pat).fullmatch(value):
                self.fail(value, path, f"satisfy regular expression pattern: {pat}", sensitive)
            return value
        if kind in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise SerializationException(f"Expected an integer at '{path}'")
            if "min" in meta and value < meta["min"]:
                self.fail(value, path, f"have value greater than or equal to {meta['min']}", sensitive)
            if "max" in meta and value > meta["max"]:
                self.fail(value, path, f"have value less than or equal to {meta['max']}", sensitive)
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise SerializationException(f"Expected a boolean at '{path}'")
            return value
        if kind == "blob":
            if not isinstance(value, str):
                raise SerializationException(f"Expected base64-encoded binary data at '{path}'")
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise SerializationException(f"Invalid base64 binary data at '{path}'") from None
            self._length(shape, raw, len(raw), path, sensitive)
            return raw
        if kind == "timestamp":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SerializationException(f"Expected a timestamp at '{path}'")
            return value
        return value

    def _length(self, shape: RawShape, value: Any, n: int, path: str, sensitive: bool) -> None:
        meta = shape.metadata
        shown = value if isinstance(value, (str, list)) else None
        if "min" in meta and n < meta["min"]:
            self.fail(shown, path, f"have length greater than or equal to {meta['min']}", sensitive or shown is None)
        if "max" in meta and n > meta["max"]:
            self.fail(shown, path, f"have length less than or equal to {meta['max']}", sensitive or shown is None)


def validation_error(violations: list[str]) -> ValidationException:
    n = len(violations)
    return ValidationException(f"{n} validation error{'s' if n != 1 else ''} detected: " + "; ".join(violations))


def parse_request(op_name: str, body: Any) -> dict:
    """Type-check and constraint-check ``body``; return it with blobs decoded to bytes."""
    parse = _compiled(op_name)
    return parse(body if body is not None else {}) if parse is not None else {}


_SLOW = object()  # a fast check's "not mine to decide": the exact walk answers


@lru_cache(maxsize=None)
def _compiled(op_name: str) -> Callable[[Any], dict] | None:
    """``op_name``'s request checker, compiled once from its input shape.

    The members the request carries are checked by fast checks made once per member (the
    constraints looked up once, strings, blobs, numbers, string maps and lists in a few
    comparisons each). Anything a fast check does not pass (a wrong type, a violated
    constraint, a structure, a missing required member) sends the whole request through
    :class:`_Checker`, which raises or words the violations exactly, in member order. Params
    keep the request's member order (the walk's is the model's: only the audit log shows it)."""
    op = operation(op_name)
    shape = op.input_shape
    if shape is None:
        return None
    required = frozenset(shape.required_members)
    fast = {name: _fast_check(member) for name, member in shape.members.items()}

    def exact(body: Any) -> dict:
        checker = _Checker()
        out = checker.structure(shape, body, "")
        if checker.violations:
            raise validation_error(checker.violations)
        return out

    def parse(body: Any) -> dict:
        if type(body) is not dict:
            return exact(body)
        out: dict = {}
        for name, value in body.items():
            check = fast.get(name)
            if check is not None and value is not None:
                value = check(value)
                if value is _SLOW:
                    return exact(body)
                out[name] = value
        if required and not required.issubset(out):
            return exact(body)
        return out

    return parse


def _fast_check(shape: RawShape) -> Callable[[Any], Any]:
    """The common, valid value of ``shape`` passed (blobs decoded) in a few comparisons; ``_SLOW``
    for anything else, including all it cannot judge alone (structures, lists of them)."""
    meta = shape.metadata
    kind = shape.type_name
    low = meta.get("min", 0)
    high = meta.get("max", float("inf"))
    if kind == "string":
        enum = frozenset(shape.enum) if shape.enum else None
        pattern = _pattern(meta["pattern"]) if meta.get("pattern") else None

        def string(value: Any) -> Any:
            if (type(value) is str and low <= len(value) <= high and (enum is None or value in enum)
                    and (pattern is None or pattern.fullmatch(value))):
                return value
            return _SLOW
        return string
    if kind == "blob":
        def blob(value: Any) -> Any:
            if type(value) is str:
                try:  # strict: accepts only what b64decode(validate=True) accepts; the rest goes the slow way
                    raw = binascii.a2b_base64(value, strict_mode=True)
                except (binascii.Error, ValueError):
                    return _SLOW
                if low <= len(raw) <= high:
                    return raw
            return _SLOW
        return blob
    if kind in ("integer", "long"):
        def integer(value: Any) -> Any:
            return value if type(value) is int and low <= value <= high else _SLOW
        return integer
    if kind == "boolean":
        def boolean(value: Any) -> Any:
            return value if type(value) is bool else _SLOW
        return boolean
    if kind == "map" and shape.key.type_name == "string" and shape.value.type_name == "string":
        key_check, value_check = _fast_check(shape.key), _fast_check(shape.value)

        def string_map(value: Any) -> Any:  # encryption contexts, sent by every Encryption SDK call
            if type(value) is not dict or not low <= len(value) <= high:
                return _SLOW
            out = {}
            for k, v in value.items():
                k, v = key_check(k), value_check(v)
                if k is _SLOW or v is _SLOW:
                    return _SLOW
                out[k] = v
            return out
        return string_map
    if kind == "list" and shape.member.type_name == "string":
        item_check = _fast_check(shape.member)

        def string_list(value: Any) -> Any:  # grant tokens, key ids of a grant's constraints
            if type(value) is not list or not low <= len(value) <= high:
                return _SLOW
            out = [item_check(v) for v in value]
            return _SLOW if _SLOW in out else out
        return string_list
    return lambda value: _SLOW
