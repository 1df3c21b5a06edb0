"""Tags: TagResource, UntagResource, ListResourceTags (and the checks CreateKey shares)."""

from __future__ import annotations

import sqlite3

from kms_iac.backend.core import Call
from kms_iac.backend.errors import TagException
from kms_iac.backend.ops import operation
from kms_iac.backend.ops.pagination import paginate
from kms_iac.backend.store import KeyRecord

MAX_TAGS = 50


def check_tags(tags: list[dict]) -> None:
    seen: set[str] = set()
    for tag in tags:
        k = tag["TagKey"]
        if k.lower().startswith("aws:"):
            raise TagException("Tags beginning with aws: are reserved")
        if k in seen:
            raise TagException("Duplicate tag keys")
        seen.add(k)


def write_tags(c: sqlite3.Connection, key: KeyRecord, tags: list[dict]) -> None:
    for tag in tags:
        c.execute(
            "INSERT INTO tags (key_id, region, tag_key, tag_value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key_id, region, tag_key) DO UPDATE SET tag_value=excluded.tag_value",
            (key.key_id, key.region, tag["TagKey"], tag["TagValue"]),
        )
    (count,) = c.execute("SELECT COUNT(*) FROM tags WHERE key_id=? AND region=?", (key.key_id, key.region)).fetchone()
    if count > MAX_TAGS:
        raise TagException("Too many tags")


@operation("TagResource", key="KeyId", mutates=True)
def tag_resource(call: Call, params: dict, key: KeyRecord) -> dict:
    from kms_iac.backend.ops.managed import refuse_if_aws_managed

    refuse_if_aws_managed(call, key)
    check_tags(params["Tags"])
    write_tags(call.conn, key, params["Tags"])
    return {}


@operation("UntagResource", key="KeyId", mutates=True)
def untag_resource(call: Call, params: dict, key: KeyRecord) -> dict:
    from kms_iac.backend.ops.managed import refuse_if_aws_managed

    refuse_if_aws_managed(call, key)
    for k in params["TagKeys"]:
        if k.lower().startswith("aws:"):
            raise TagException("Tags beginning with aws: are reserved")
    call.conn.executemany(
        "DELETE FROM tags WHERE key_id=? AND region=? AND tag_key=?",
        [(key.key_id, key.region, k) for k in params["TagKeys"]],
    )
    return {}


@operation("ListResourceTags", key="KeyId")
def list_resource_tags(call: Call, params: dict, key: KeyRecord) -> dict:
    tags = call.store.get_tags(key.key_id, key.region)
    page, extra = paginate(tags, params, sort_key=lambda t: t[0], default_limit=50)
    return {"Tags": [{"TagKey": k, "TagValue": v} for k, v in page], **extra}
