"""Parsing the forms in which AWS accepts a KeyId: key id, key ARN, alias name, alias ARN."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import lru_cache

KEY_ID_RE = re.compile(r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$")
ARN_RE = re.compile(r"^arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):(key|alias)/(.+)$")
ALIAS_NAME_RE = re.compile(r"^alias/[a-zA-Z0-9/_-]+$")
AWS_ALIAS_PREFIX = "alias/aws/"


@dataclass(frozen=True)
class KeyRef:
    """A parsed KeyId: ``kind`` is ``key`` or ``alias``; account/region None means the caller's."""

    kind: str
    name: str  # key id, or full alias name ("alias/...")
    region: str | None = None
    account: str | None = None
    raw: str = ""


@lru_cache(maxsize=4096)  # a client names the same few keys again and again; KeyRef is immutable
def parse_key_ref(raw: str) -> KeyRef | None:
    """Return the parsed reference, or None when ``raw`` is none of AWS's accepted forms."""
    if raw.startswith("arn:"):
        m = ARN_RE.match(raw)
        if not m:
            return None
        _, region, account, kind, rest = m.groups()
        if kind == "key":
            return KeyRef("key", rest, region, account, raw) if KEY_ID_RE.match(rest) else None
        return KeyRef("alias", "alias/" + rest, region, account, raw)
    if raw.startswith("alias/"):
        return KeyRef("alias", raw, raw=raw)
    if KEY_ID_RE.match(raw):
        return KeyRef("key", raw, raw=raw)
    return None


def new_key_id(multi_region: bool = False) -> str:
    return "mrk-" + uuid.uuid4().hex if multi_region else str(uuid.uuid4())


def key_arn(region: str, account: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def alias_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:kms:{region}:{account}:{name}"
