"""Marker/Limit/Truncated pagination shared by every List* operation."""

from __future__ import annotations

import base64
import binascii
from typing import Callable, Sequence, TypeVar

from kms_iac.backend.errors import InvalidMarkerException

T = TypeVar("T")


def _encode(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode()


def _decode(marker: str) -> str:
    try:
        return base64.urlsafe_b64decode(marker.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidMarkerException("Invalid marker") from None


def paginate(
    items: Sequence[T], params: dict, sort_key: Callable[[T], str], default_limit: int = 100
) -> tuple[list[T], dict]:
    """Return one page of ``items`` (sorted by ``sort_key``) and the NextMarker/Truncated fields."""
    ordered = sorted(items, key=sort_key)
    start = 0
    marker = params.get("Marker")
    if marker is not None:
        after = _decode(marker)
        start = next((i for i, it in enumerate(ordered) if sort_key(it) >= after), len(ordered))
    limit = params.get("Limit") or default_limit
    page = ordered[start : start + limit]
    truncated = start + limit < len(ordered)
    extra: dict = {"Truncated": truncated}
    if truncated:
        extra["NextMarker"] = _encode(sort_key(ordered[start + limit]))
    return page, extra
