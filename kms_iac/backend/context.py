"""Who is calling, from where: what every operation, the audit log and authorization need."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


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
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @classmethod
    def root(cls, account: str, region: str, **kw) -> "RequestContext":
        return cls(account=account, region=region, principal_arn=f"arn:aws:iam::{account}:root", **kw)
