"""Who is calling, from where: what every operation, the audit log and authorization need."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache

_hex = ""  # random hex digits from the OS's CSPRNG, handed out 32 at a time
_hex_at = 0
_hex_lock = threading.Lock()
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # RFC 4122's variant nibble


def _drop_entropy() -> None:
    global _hex, _hex_at, _hex_lock
    _hex, _hex_at, _hex_lock = "", 0, threading.Lock()  # a forked worker must never reuse its parent's (or a sibling's) digits


os.register_at_fork(after_in_child=_drop_entropy)


def _uuid4() -> str:
    """A random (version 4) UUID string, a third of uuid.uuid4()'s cost on the request path:
    4 KiB of the OS's randomness is read and hex-encoded at once (one getrandom call per 256
    ids), each id then is slices of that text with the version and variant digits set."""
    global _hex, _hex_at
    with _hex_lock:
        at = _hex_at
        if at + 32 > len(_hex):
            _hex, at = os.urandom(4096).hex(), 0
        _hex_at = at + 32
        h = _hex
    return (f"{h[at:at + 8]}-{h[at + 8:at + 12]}-4{h[at + 13:at + 16]}-{_VARIANT[h[at + 16]]}{h[at + 17:at + 20]}-"
            f"{h[at + 20:at + 32]}")


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
