"""AWS managed keys (KeyManager AWS) belong to AWS: their owners may use and read them,
never manage them."""

from __future__ import annotations

from kms_iac.backend.core import Call
from kms_iac.backend.errors import AccessDeniedException
from kms_iac.backend.store import KeyRecord


def refuse_if_aws_managed(call: Call, key: KeyRecord) -> None:
    """AWS refuses management of AWS managed keys through their fixed key policy: AccessDenied."""
    if key.key_manager != "AWS":
        return
    action = f"kms:{call.operation}"
    raise AccessDeniedException(
        f"User: {call.ctx.principal_arn} is not authorized to perform: {action} on resource: {key.arn} "
        f"because no resource-based policy allows the {action} action"
    )
