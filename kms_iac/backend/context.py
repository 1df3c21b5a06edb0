"""Who is calling, from where: what every operation, the audit log and authorization need."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

_entropy = bytearray()
_entropy_lock = threading.Lock()


def _drop_entropy() -> None:
    global _entropy, _entropy_lock
    _entropy, _entropy_lock = bytearray(), threading.Lock()  # a forked worker must never reuse its parent's (or a sibling's) bytes


os.register_at_fork(after_in_child=_drop_entropy)


def _random16() -> bytearray:
    """16 bytes from the OS's CSPRNG, read 4 KiB at a time (one getrandom call per 256 ids)."""
    global _entropy
    with _entropy_lock:
        if len(_entropy) < 16:
            _entropy = bytearray(os.urandom(4096))
        b = _entropy[-16:]
        del _entropy[-16:]
    return b


def _uuid4() -> str:
    """A random (version 4) UUID string, cheaper than uuid.uuid4() on the request path."""
    return _format_uuid4(_random16())


def _format_uuid4(b: bytearray) -> str:
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
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
        return cls(account=account, region=region, principal_arn=f"arn:aws:iam::{account}:root", **kw)
