"""Value conversions every adapter needs alike."""

from __future__ import annotations

import datetime as dt
from typing import Any


def timestamp(value: Any) -> dt.datetime | None:
    """An RFC 3339 timestamp (imported material's ``valid_to``) as an aware datetime; None when
    absent, unknown (an engine's placeholder) or unreadable, which the rules treat as unknown."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
