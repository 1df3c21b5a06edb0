"""Key policy documents the backend itself writes, and the checks every policy must pass.

The default policy is AWS's documented default for CreateKey without a Policy; AWS
managed keys get the fixed policy AWS gives them (use through the owning service,
metadata reads for the account).
"""

from __future__ import annotations

import json

from kms_iac.backend.errors import MalformedPolicyDocumentException
from kms_iac.policy.document import PolicyError, PolicyNotObject, parse_policy

MAX_POLICY_BYTES = 32768


def aws_pretty(value: object, level: int = 0) -> str:
    """JSON laid out as KMS returns the policies it writes (Jackson's default pretty printer)."""
    if isinstance(value, dict):
        if not value:
            return "{ }"
        pad = "  " * (level + 1)
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)} : {aws_pretty(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(value, list):
        if not value:
            return "[ ]"
        return "[ " + ", ".join(aws_pretty(v, level) for v in value) + " ]"
    return json.dumps(value, ensure_ascii=False)


def default_key_policy(account: str) -> str:
    return aws_pretty(
        {
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        }
    )


def aws_managed_key_policy(account: str, region: str, service: str, via_service: str, label: str) -> str:
    return aws_pretty(
        {
            "Version": "2012-10-17",
            "Id": f"auto-{service}-2",
            "Statement": [
                {
                    "Sid": f"Allow access through {label} for all principals in the account that are authorized to use {label}",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {"kms:CallerAccount": account, "kms:ViaService": f"{via_service}.{region}.amazonaws.com"}
                    },
                },
                {
                    "Sid": "Allow direct access to key metadata to the account",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
                    "Resource": "*",
                },
            ],
        }
    )


def check_policy_document(text: str) -> dict:
    """Parse and structurally check a key policy, as KMS does before storing one."""
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise MalformedPolicyDocumentException(f"Policy document exceeds the maximum size of {MAX_POLICY_BYTES} bytes.")
    try:
        doc = parse_policy(text)
    except PolicyNotObject:
        raise MalformedPolicyDocumentException("The new key policy must be a JSON object.") from None
    except PolicyError:
        raise MalformedPolicyDocumentException("") from None  # AWS sends no text for unparseable JSON
    statements = doc.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise MalformedPolicyDocumentException("The new key policy must contain at least one statement.")
    for st in statements:
        if not isinstance(st, dict):
            raise MalformedPolicyDocumentException("Policy statements must be JSON objects.")
        if st.get("Effect") not in ("Allow", "Deny"):
            raise MalformedPolicyDocumentException("Policy statement Effect must be Allow or Deny.")
        if ("Action" in st) == ("NotAction" in st):
            raise MalformedPolicyDocumentException("Policy statement must contain exactly one of Action or NotAction.")
        if ("Principal" in st) == ("NotPrincipal" in st):
            raise MalformedPolicyDocumentException("Policy statement must contain exactly one of Principal or NotPrincipal.")
        if "Resource" not in st and "NotResource" not in st:
            raise MalformedPolicyDocumentException("Policy statement must contain a Resource or NotResource.")
    return doc
