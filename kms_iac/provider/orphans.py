"""Keys the provider created but no Pulumi state knows: found by the URN tag it writes.

Every key the provider creates (``Key``, ``ExternalKey``, ``ReplicaKey``) carries the tag
``kms-iac:pulumi-urn``. CreateKey (or ReplicateKey) writes it as ``creating <URN>``;
the last call of the create, right before the provider answers the engine, rewrites it to
``<URN>``. When ``pulumi up`` is killed in between (a double Ctrl-C while the key is being
configured), the key lives on, no state names it, and its tag still says ``creating``:

- On the local backend (embedded, or an endpoint URL that is not AWS), ``Create`` first
  looks for a key tagged ``creating <its URN>`` that is not pending deletion, and adopts
  it when its immutable properties (spec, usage, origin, multi-Region, primary, key
  store) match: it is brought to the declared inputs like an update, and no second key
  is made. A mismatch is reported and a new key created. A key whose tag was rewritten
  is one the engine was handed, so a replacement (even ``pulumi up --replace``, which
  calls no Diff first) never takes the key it replaces. The keys and their tags are
  listed once per deployment, at its first create (about 1.3 ms per key on the embedded
  backend). An alias that already names the declared key is kept the same way.
- On AWS, that listing would cost one ListResourceTags per key in the account before
  any create, so nothing is looked up: :func:`find_orphans` (or ``aws
  resourcegroupstaggingapi get-resources --resource-type-filters kms:key --tag-filters
  Key=kms-iac:pulumi-urn``, values starting ``creating``) lists them; ``pulumi import``
  adopts one, ``aws kms schedule-key-deletion`` removes it.

Left behind despite all this (reported by nothing): a key whose create was answered but
whose state the engine could not write before it died (milliseconds).

The tag is left out of the ``tags`` the provider reports, so it never shows as a diff, and
it is skipped when the program's own tags already use AWS's limit of 50 per key.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Callable

from botocore.exceptions import ClientError

URN_TAG = "kms-iac:pulumi-urn"
CREATING = "creating "  # the tag value's prefix until the engine has been handed the key
MAX_TAGS = 50  # AWS KMS: at most 50 tags per key
MAX_TAG_VALUE = 256
# The characters every AWS tagging surface accepts (KMS itself is laxer; the Resource
# Groups Tagging API and cost allocation reports are not).
_UNSAFE = re.compile(r"[^\w .:/=+\-@]")


def urn_tag_value(urn: str, creating: bool = False) -> str:
    """The tag value for a URN: the URN itself when it fits, else a readable, unique stand-in.

    A child of a component has ``$`` in its URN, and a URN can exceed the 256 characters
    a tag value holds; those get their unsafe characters replaced and a hash of the full
    URN appended, so the value stays recognisable and still names one URN.
    """
    prefix = CREATING if creating else ""
    room = MAX_TAG_VALUE - len(prefix)
    clean = _UNSAFE.sub("_", urn)
    if clean == urn and len(urn) <= room:
        return prefix + urn
    digest = hashlib.sha256(urn.encode()).hexdigest()[:16]
    return f"{prefix}{clean[:room - 17]}@{digest}"


def carries_urn_tag(tags: dict | None, urn: str) -> bool:
    """Whether a key created with the program's ``tags`` gets the URN tag (room under the limit)."""
    return bool(urn) and len(tags or {}) < MAX_TAGS


def with_urn_tag(tags: dict | None, urn: str) -> dict:
    """The tags to create a key with: the program's, plus ``creating <URN>`` while under the limit."""
    tags = dict(tags or {})
    if carries_urn_tag(tags, urn):
        tags[URN_TAG] = urn_tag_value(urn, creating=True)
    return tags


def without_urn_tag(tags: dict) -> dict:
    return {k: v for k, v in tags.items() if k != URN_TAG}


def tagged_keys(kms, on_error: Callable[[str, ClientError], None] | None = None) -> dict[str, list[str]]:
    """URN tag value -> ids of the keys carrying it, in the client's account and Region.

    One ListKeys pass and one ListResourceTags per key; a key whose tags cannot be read
    (AccessDenied, deleted meanwhile) is skipped, reported to ``on_error`` if given.
    """
    found: dict[str, list[str]] = {}
    for page in kms.get_paginator("list_keys").paginate():
        for key in page.get("Keys", []):
            try:
                tags = kms.list_resource_tags(KeyId=key["KeyId"], Limit=MAX_TAGS).get("Tags", [])
            except ClientError as exc:
                if on_error is not None:
                    on_error(key["KeyId"], exc)
                continue
            for tag in tags:
                if tag["TagKey"] == URN_TAG:
                    found.setdefault(tag["TagValue"], []).append(key["KeyId"])
    return found


def find_orphans(kms) -> list[dict[str, str]]:
    """Keys an interrupted ``pulumi up`` left: tagged ``creating <URN>`` and not pending deletion.

    For a command or a script (on AWS too: it reads every key's tags once); each entry has
    ``keyId``, ``keyState`` and ``urn`` (the tag value without its prefix).
    """
    out = []
    for value, ids in tagged_keys(kms).items():
        if not value.startswith(CREATING):
            continue
        for key_id in ids:
            try:
                state = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
            except ClientError:
                continue
            if state not in ("PendingDeletion", "PendingReplicaDeletion"):
                out.append({"keyId": key_id, "keyState": state, "urn": value[len(CREATING):]})
    return out


class OrphanIndex:
    """The keys tagged ``creating <URN>``, listed once per provider process, and the ids this
    deployment has seen.

    Every id the engine sends (Diff, Read, Update, Delete) is *claimed*: a key the state
    holds is never adopted, whatever its tag says. Ids a Create returned are remembered
    too: when the engine then deletes such an id as the old half of a replacement, it is
    the key the replacement adopted, and the provider keeps it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_value: dict[str, list[str]] | None = None
        self._claimed: set[str] = set()
        self._created: set[str] = set()

    def claim(self, resource_id: str | None) -> None:
        if resource_id:
            with self._lock:
                self._claimed.add(_key_id(resource_id))

    def created(self, resource_id: str) -> None:
        """Record an id a Create of this process returned (made or adopted)."""
        with self._lock:
            self._claimed.add(_key_id(resource_id))
            self._created.add(resource_id)

    def created_here(self, resource_id: str) -> bool:
        with self._lock:
            return resource_id in self._created

    def candidates(self, kms, urn: str) -> list[str]:
        """Unclaimed keys tagged ``creating <urn>``. The first call lists the keys; creates wait
        for it, so no key created during the listing can be mistaken for an orphan."""
        if not urn:
            return []
        with self._lock:
            if self._by_value is None:
                self._by_value = tagged_keys(kms)
            found = self._by_value.get(urn_tag_value(urn, creating=True), [])
            return [k for k in found if k not in self._claimed]


def _key_id(ref: str) -> str:
    """A key id from a key id or key ARN (a replica's resource id is its ARN)."""
    return ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref
