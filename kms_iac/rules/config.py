"""Thresholds, severities and suppressions: one config for every front door.

Found upward from the scanned path (or the working directory): the first
``kms-iac.yaml`` / ``kms-iac.yml``, or ``pyproject.toml`` with a ``[tool.kms-iac]``
table. Keys may be written with ``_`` or ``-``::

    [tool.kms-iac]
    min_deletion_window_days = 30      # KMS007
    max_rotation_period_days = 365     # KMS010
    tenant_tag = "tenant"              # KMS012
    min_rsa_bits = 2048                # KMS014 (RSA used for encryption always needs 3072)
    account = "111122223333"           # templates: the account the keys will live in
    disabled = ["KMS015"]
    advisory = ["KMS012"]              # the Pulumi gate reports these without blocking
    severities = { KMS012 = "MEDIUM" }

    [[tool.kms-iac.suppressions]]
    rule = "KMS002"
    resource = "legacy-*"              # a glob over the finding's resource
    reason = "material rotated by the HSM team"
    expires = 2027-06-30               # optional; an expired suppression no longer applies

A suppression without a reason is a configuration error; an expired one stops
suppressing, and its finding says so.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kms_iac.rules.registry import SEVERITIES

YAML_NAMES = ("kms-iac.yaml", "kms-iac.yml")
_RULE_ID = re.compile(r"^KMS\d{3}$")


class ConfigError(ValueError):
    """The rules config is not valid; the message names the file and the field."""


@dataclass(frozen=True)
class Suppression:
    rule: str
    resource: str
    reason: str
    expires: dt.date | None = None

    def matches(self, rule_id: str, resource: str) -> bool:
        return self.rule in (rule_id, "*") and fnmatch.fnmatchcase(resource, self.resource)

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and today > self.expires


@dataclass
class RulesConfig:
    min_deletion_window_days: int = 30
    max_rotation_period_days: int = 365
    tenant_tag: str = "tenant"
    min_rsa_bits: int = 2048
    account: str | None = None
    disabled: frozenset[str] = frozenset()
    advisory: frozenset[str] = frozenset()
    severities: dict[str, str] = field(default_factory=dict)
    suppressions: tuple[Suppression, ...] = ()
    source: str | None = None  # the file it was read from

    def severity(self, rule_id: str, default: str) -> str:
        return self.severities.get(rule_id, default)

    def suppression(self, rule_id: str, resource: str) -> Suppression | None:
        return next((s for s in self.suppressions if s.matches(rule_id, resource)), None)


def find_config_file(start: Path | str | None = None) -> Path | None:
    """The nearest kms-iac.yaml, or pyproject.toml with [tool.kms-iac], from ``start`` upward."""
    here = Path(start or Path.cwd()).resolve()
    if here.is_file() or not here.exists():
        here = here.parent
    for d in (here, *here.parents):
        for name in YAML_NAMES:
            if (d / name).is_file():
                return d / name
        pp = d / "pyproject.toml"
        if pp.is_file():
            try:
                if "kms-iac" in tomllib.loads(pp.read_text()).get("tool", {}):
                    return pp
            except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
                continue  # someone else's broken pyproject is not our config
    return None


def load_config(start: Path | str | None = None, explicit: Path | str | None = None) -> RulesConfig:
    """The config for a scan of ``start`` (``explicit`` names the file instead)."""
    path = Path(explicit) if explicit else find_config_file(start)
    if path is None:
        return RulesConfig()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    try:
        if path.suffix == ".toml":
            raw = tomllib.loads(text).get("tool", {}).get("kms-iac", {})
        else:
            import yaml
            raw = yaml.safe_load(text) or {}
    except Exception as e:  # noqa: BLE001 - any parse error is the user's file, reported as such
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {e}") from None
    return config_from_dict(raw, str(path))


def config_from_dict(raw: Any, source: str = "<config>") -> RulesConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the kms-iac config must be a mapping")
    raw = {str(k).replace("-", "_"): v for k, v in raw.items()}
    known = set(RulesConfig.__dataclass_fields__) - {"source"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    cfg = RulesConfig(source=source)
    for name in ("min_deletion_window_days", "max_rotation_period_days", "min_rsa_bits"):
        if name in raw:
            v = raw[name]
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{source}: {name} must be a positive whole number, got {v!r}")
            setattr(cfg, name, v)
    if "tenant_tag" in raw:
        if not isinstance(raw["tenant_tag"], str) or not raw["tenant_tag"]:
            raise ConfigError(f"{source}: tenant_tag must be a non-empty string")
        cfg.tenant_tag = raw["tenant_tag"]
    if raw.get("account") is not None:
        acct = str(raw["account"])
        if not re.fullmatch(r"\d{12}", acct):
            raise ConfigError(f"{source}: account must be a 12-digit AWS account id, got {acct!r}")
        cfg.account = acct
    for name in ("disabled", "advisory"):
        if name in raw:
            setattr(cfg, name, frozenset(_rule_ids(raw[name], f"{source}: {name}")))
    if "severities" in raw:
        sev = raw["severities"]
        if not isinstance(sev, dict):
            raise ConfigError(f"{source}: severities must map rule ids to one of {', '.join(SEVERITIES)}")
        for rid, level in sev.items():
            _rule_ids([rid], f"{source}: severities")
            if str(level).upper() not in SEVERITIES:
                raise ConfigError(f"{source}: severities.{rid} must be one of {', '.join(SEVERITIES)}, got {level!r}")
        cfg.severities = {str(k): str(v).upper() for k, v in sev.items()}
    if "suppressions" in raw:
        items = raw["suppressions"]
        if not isinstance(items, list):
            raise ConfigError(f"{source}: suppressions must be a list")
        cfg.suppressions = tuple(_suppression(item, f"{source}: suppressions[{i}]") for i, item in enumerate(items))
    return cfg


def _rule_ids(values: Any, where: str) -> list[str]:
    if not isinstance(values, (list, tuple)):
        raise ConfigError(f"{where} must be a list of rule ids")
    out = []
    for v in values:
        if not isinstance(v, str) or not _RULE_ID.match(v):
            raise ConfigError(f"{where}: {v!r} is not a rule id like KMS001")
        out.append(v)
    return out


def _suppression(item: Any, where: str) -> Suppression:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping with rule, resource and reason")
    rule_id = item.get("rule")
    if rule_id != "*":
        _rule_ids([rule_id], where)
    reason = item.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(f"{where}: a suppression needs a reason")
    resource = item.get("resource", "*")
    if not isinstance(resource, str) or not resource:
        raise ConfigError(f"{where}: resource must be a non-empty string (a glob)")
    expires = item.get("expires")
    if expires is not None:
        if isinstance(expires, dt.datetime):
            expires = expires.date()
        elif isinstance(expires, str):
            try:
                expires = dt.date.fromisoformat(expires)
            except ValueError:
                raise ConfigError(f"{where}: expires must be a date (YYYY-MM-DD), got {expires!r}") from None
        elif not isinstance(expires, dt.date):
            raise ConfigError(f"{where}: expires must be a date (YYYY-MM-DD), got {expires!r}")
    return Suppression(rule_id, resource, reason.strip(), expires)
