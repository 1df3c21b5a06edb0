"""The one normalised view of a KMS key that every rule reads.

Every front door (a CloudFormation resource, a Terraform plan resource, a Pulumi
resource, a live key read through boto3) is turned into a :class:`KeyView` by its
adapter, so a rule is written once and gives the same verdict wherever the key comes
from. ``None`` means "not known from this source" (a template says nothing about a key
state, a live scan cannot see whether the lockout check was bypassed); rules answer
NOT_APPLICABLE for what they cannot know rather than guessing a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SYMMETRIC = "SYMMETRIC_DEFAULT"


@dataclass
class KeyView:
    resource: str                      # logical id (templates), URN name (Pulumi) or key ARN (live)
    source: str                        # cloudformation | terraform | pulumi | live
    file: str | None = None
    account: str | None = None         # the key's account; policy rules need it
    region: str | None = None
    arn: str | None = None
    key_manager: str = "CUSTOMER"      # CUSTOMER | AWS
    key_spec: str = SYMMETRIC
    key_usage: str = "ENCRYPT_DECRYPT"
    origin: str = "AWS_KMS"            # AWS_KMS | EXTERNAL | AWS_CLOUDHSM | EXTERNAL_KEY_STORE
    custom_key_store_id: str | None = None
    key_state: str | None = None       # Enabled | Disabled | PendingDeletion | PendingImport | ...
    enabled: bool | None = True
    policy: dict | None = None         # parsed; None: KMS's default key policy
    policy_unresolved: bool = False    # the source holds a policy we could not resolve
    rotation_enabled: bool | None = None
    rotation_period_days: int | None = None
    deletion_window_days: int | None = None
    deletion_date: datetime | None = None
    pending_deletion: bool = False     # live: PendingDeletion; plan/preview: the change deletes the key
    valid_to: datetime | None = None   # imported material's expiry
    material_expired: bool = False
    multi_region: bool = False
    aliases: list[str] | None = field(default_factory=list)   # None: unknown (live: ListAliases denied)
    tags: dict[str, str] | None = field(default_factory=dict)  # None: unknown (live: ListResourceTags denied)
    grants: list[dict[str, Any]] = field(default_factory=list)
    bypass_lockout: bool | None = False

    @property
    def kind(self) -> str:
        return "key"

    @property
    def key_arn(self) -> str:
        """The ARN policies are evaluated against (a stand-in for keys not yet created)."""
        if self.arn:
            return self.arn
        return f"arn:aws:kms:{self.region or 'us-east-1'}:{self.account or PLACEHOLDER_ACCOUNT}:key/{self.resource}"

    @property
    def customer_managed(self) -> bool:
        return self.key_manager != "AWS"


@dataclass
class IdentityPolicyView:
    """An IAM identity policy (role, user, group or managed policy): what KMS016 reads."""

    resource: str
    source: str
    document: dict | None
    file: str | None = None
    account: str | None = None
    policy_unresolved: bool = False

    @property
    def kind(self) -> str:
        return "identity-policy"


# The account that stands in for ``AWS::AccountId`` and other unknown accounts in templates.
PLACEHOLDER_ACCOUNT = "123456789012"

View = KeyView | IdentityPolicyView
