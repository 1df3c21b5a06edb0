"""Who is calling, from where: what every operation, the audit log and authorization need."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _uuid4() -> str:
    """A random (version 4) UUID string, cheaper than uuid.uuid4() on the request path."""
    b = bytearray(os.urandom(16))
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
