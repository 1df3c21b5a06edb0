"""Fixtures: load keys with fixed ids and given material, aliases, policies and tags.

Test suites get deterministic keys: the same seed file yields the same key ids and,
given material, ciphertexts that any run can decrypt. Everything is checked first and
written in one transaction, so a bad file changes nothing.

Format (YAML or JSON)::

    keys:
      - id: 0b7f3c1e-1111-4222-8333-944445555666   # or mrk-<32 hex> with multi_region: true
        description: orders tenant key
        material: <base64 of 32 bytes>              # optional; random when absent
        previous_materials: [<base64>, ...]         # optional; older versions, oldest first
        state: Enabled                              # Enabled | Disabled
        policy: {...}                               # dict or JSON text; default key policy when absent
        rotation: {enabled: true, period_days: 365}
        tags: {tenant: orders}
        aliases: [alias/orders]
        account: "111122223333"                     # optional; the backend's default otherwise
        region: us-east-1                           # optional
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kms_iac.backend import keystate
from kms_iac.backend.core import Backend
from kms_iac.backend.identifiers import ALIAS_NAME_RE, AWS_ALIAS_PREFIX, KEY_ID_RE
from kms_iac.backend.ops.rotation import DEFAULT_PERIOD_DAYS
from kms_iac.backend.ops.tags import check_tags, write_tags
from kms_iac.backend.policy_documents import check_policy_document, default_key_policy
from kms_iac.backend.store import KeyRecord


class SeedError(ValueError):
    """The seed file is invalid; nothing was written."""


@dataclass
class SeedResult:
    keys: list[str]
    aliases: list[str]


def _material(value: Any, where: str) -> bytes:
    try:
        raw = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise SeedError(f"{where}: material is not valid base64") from None
    if len(raw) != 32:
        raise SeedError(f"{where}: material must be 32 bytes (256-bit AES), got {len(raw)}")
    return raw


def load_seed_file(path: Path) -> dict:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SeedError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SeedError(f"{path} is not UTF-8 text (a binary file?)") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SeedError(f"{path} is not valid YAML or JSON: {' '.join(str(exc).split())}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys", []), list):
        raise SeedError(f"{path}: expected a mapping with a 'keys' list")
    return doc


Planned = list[tuple[KeyRecord, list[bytes], list[dict], list[str]]]


def seed(backend: Backend, doc: dict) -> SeedResult:
    """Check ``doc`` whole, then write it in one transaction (a bad file changes nothing)."""
    return apply_seed(backend, plan_seed(doc, backend.account, backend.region, backend.clock.now()))


def _list(spec: dict, name: str, where: str) -> list:
    value = spec.get(name) or []
    if not isinstance(value, list):
        raise SeedError(f"{where}: {name} must be a list")
    return value


def plan_seed(doc: dict, account: str, region: str, now: float) -> Planned:
    """Every key of ``doc`` as the records to write, checked; SeedError on the first problem.

    Needs no backend, so a command can check a seed file before it opens (or creates) a data dir.
    """
    default_account, default_region = account, region
    planned: Planned = []
    seen_ids: set[tuple[str, str]] = set()
    for i, spec in enumerate(doc.get("keys") or []):
        where = f"keys[{i}]"
        if not isinstance(spec, dict):
            raise SeedError(f"{where}: expected a mapping")
        key_id = str(spec.get("id", ""))
        if not KEY_ID_RE.match(key_id):
            raise SeedError(f"{where}: id {key_id!r} is not a KMS key id (a lowercase UUID or mrk-<32 hex>)")
        multi = bool(spec.get("multi_region", key_id.startswith("mrk-")))
        if multi != key_id.startswith("mrk-"):
            raise SeedError(f"{where}: multi-Region key ids start with mrk-, others must not")
        account = str(spec.get("account", default_account))
        region = str(spec.get("region", default_region))
        if (key_id, region) in seen_ids:
            raise SeedError(f"{where}: duplicate key id {key_id}")
        seen_ids.add((key_id, region))
        state = spec.get("state", keystate.ENABLED)
        if state not in (keystate.ENABLED, keystate.DISABLED):
            raise SeedError(f"{where}: state must be Enabled or Disabled")
        policy = spec.get("policy")
        if isinstance(policy, dict):
            policy = json.dumps(policy, indent=2)
        if policy is None:
            policy = default_key_policy(account)
        try:
            check_policy_document(str(policy))
        except Exception as exc:
            raise SeedError(f"{where}: invalid policy: {getattr(exc, 'message', exc) or 'malformed JSON'}") from None
        materials = [_material(m, where) for m in _list(spec, "previous_materials", where)]
        materials.append(_material(spec["material"], where) if spec.get("material") else None)  # type: ignore[arg-type]
        tags_in = spec.get("tags") or {}
        if not isinstance(tags_in, dict):
            raise SeedError(f"{where}: tags must be a mapping")
        tags = [{"TagKey": str(k), "TagValue": str(v)} for k, v in tags_in.items()]
        try:
            check_tags(tags)
        except Exception as exc:
            raise SeedError(f"{where}: {getattr(exc, 'message', exc)}") from None
        aliases = [str(a) for a in _list(spec, "aliases", where)]
        for a in aliases:
            if not ALIAS_NAME_RE.match(a) or a.startswith(AWS_ALIAS_PREFIX):
                raise SeedError(f"{where}: invalid alias name {a!r}")
        rotation = spec.get("rotation") or {}
        if not isinstance(rotation, dict):
            raise SeedError(f"{where}: rotation must be a mapping like {{enabled: true, period_days: 365}}")
        period = rotation.get("period_days", DEFAULT_PERIOD_DAYS)
        if isinstance(period, bool) or not isinstance(period, int) or not 90 <= period <= 2560:
            raise SeedError(f"{where}: rotation period_days must be 90-2560")
        rec = KeyRecord(
            key_id=key_id, region=region, account=account, created=now, key_spec="SYMMETRIC_DEFAULT",
            key_usage="ENCRYPT_DECRYPT", origin="AWS_KMS", key_manager="CUSTOMER", state=state, policy=str(policy),
            description=str(spec.get("description", "")), multi_region=int(multi),
            multi_region_role="PRIMARY" if multi else None, primary_region=region if multi else None,
            rotation_enabled=int(bool(rotation.get("enabled", False))),
            rotation_period=period if rotation.get("enabled") else None,
            rotation_anchor=now if rotation.get("enabled") else None,
        )
        planned.append((rec, materials, tags, aliases))
    return planned


def apply_seed(backend: Backend, planned: Planned) -> SeedResult:
    """Write checked records in one transaction; SeedError (and nothing written) if a key or alias exists."""
    now = backend.clock.now()
    with backend.store.lock, backend.store.write() as c:
        for rec, materials, tags, aliases in planned:
            existing = backend.store.get_key(rec.key_id, rec.region)
            if existing is not None:
                raise SeedError(f"key {rec.key_id} already exists in {rec.region}; seed into a fresh data dir")
            backend.store.insert_key(c, rec)
            for m in materials:
                backend.add_material(c, rec, now, None, m)
            write_tags(c, rec, tags)
            for a in aliases:
                if backend.store.get_alias(rec.account, rec.region, a) is not None:
                    raise SeedError(f"alias {a} already exists")
                c.execute(
                    "INSERT INTO aliases (account, region, name, key_id, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
                    (rec.account, rec.region, a, rec.key_id, now, now),
                )
    return SeedResult([p[0].key_id for p in planned], [a for p in planned for a in p[3]])
