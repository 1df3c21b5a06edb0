"""Who is calling, from where: what every operation, the audit log and authorization need."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache

_ids: list[str] = []  # made ids not yet handed out (list.pop is atomic under the GIL)
_ids_lock = threading.Lock()
_BATCH = 256
_HEX_AT = [p for p in range(36) if p not in (8, 13, 18, 23)]  # where a UUID's 32 digits stand in its text
_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")  # RFC 4122's variant: 10xx, 2 bits kept


def _drop_ids() -> None:
    global _ids, _ids_lock
    _ids, _ids_lock = [], threading.Lock()  # a forked worker must never reuse its parent's (or a sibling's) ids


os.register_at_fork(after_in_child=_drop_ids)


def _make_ids() -> list[str]:
    """256 version-4 UUID strings from one read of the OS's randomness.

    Every request needs two (request id, event id), and formatting them one by one cost
    more than half of a request's context. Here each of the 36 character positions is
    filled for all 256 ids at once with one strided slice assignment, so the per-id work
    is C loops: about a fifth of a microsecond an id."""
    digits = os.urandom(16 * _BATCH).hex().encode()
    text = bytearray(b"-" * (37 * _BATCH))  # 36 characters and a separator per id
    text[36::37] = b" " * _BATCH
    for digit, at in enumerate(_HEX_AT):
        text[at::37] = digits[digit::32]
    text[14::37] = b"4" * _BATCH  # the version digit
    text[19::37] = digits[16::32].translate(_VARIANT)
    return text.decode("ascii").split()


def _uuid4() -> str:
    """A random (version 4) UUID string: a request id or an event id."""
    try:
        return _ids.pop()
    except IndexError:
        with _ids_lock:
            if not _ids:
                _ids.extend(_make_ids())
        return _uuid4()


@lru_cache(maxsize=256)
def _root_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:root"


@dataclass(slots=True)  # made for every request: slots make it cheaper to build
class RequestContext:
    account: str
    region: str
    principal_arn: str
    access_key_id: str | None = None
    principal_type: str = "Root"
    source_ip: str = "127.0.0.1"
    user_agent: str = ""
    source_vpce: str | None = None
    via_service: str | None = None
    identity_policies: tuple = ()  # the caller's IAM policy documents (dicts), from the principals file
    request_id: str = field(default_factory=_uuid4)
    event_id: str = field(default_factory=_uuid4)

    @classmethod
    def root(cls, account: str, region: str, **kw) -> "RequestContext":
        return cls(account, region, _root_arn(account), **kw)

    @classmethod
    def for_request(cls, account: str, region: str, source_ip: str, user_agent: str,
                    source_vpce: str | None) -> "RequestContext":
        """:meth:`root` for a request off the wire: positional, as it is made for every request."""
        return cls(account, region, _root_arn(account), None, "Root", source_ip, user_agent, source_vpce, None, (),
                   _uuid4(), _uuid4())
