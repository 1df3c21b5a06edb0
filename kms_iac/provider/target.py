"""Which KMS the provider talks to: the embedded local backend, real AWS, or any endpoint.

``kms-iac:target`` is ``local`` (default: the embedded backend in ``.kms-iac/`` of the
project, or ``kms-iac:dataDir``), ``aws`` (the standard credential chain and region,
``kms-iac:profile`` and ``kms-iac:region`` honoured) or an endpoint URL. Every client
retries ThrottlingException with backoff (botocore's standard retry mode).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.config

RETRIES = botocore.config.Config(retries={"mode": "standard", "max_attempts": 10})


@dataclass(frozen=True)
class Target:
    kind: str  # local | aws | url
    region: str | None = None
    profile: str | None = None
    data_dir: str | None = None
    endpoint: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, str]) -> "Target":
        def get(name: str) -> str | None:
            value = config.get(f"kms-iac:{name}") or config.get(name)
            return str(value) if value not in (None, "") else None

        raw = get("target") or os.environ.get("KMS_IAC_TARGET") or "local"
        region = get("region")
        profile = get("profile")
        data_dir = get("dataDir")
        if raw in ("local", "aws"):
            return cls(raw, region, profile, data_dir)
        if raw.startswith(("http://", "https://")):
            return cls("url", region, profile, data_dir, endpoint=raw)
        raise ValueError(f"kms-iac:target must be 'local', 'aws' or an endpoint URL, not {raw!r}")

    def describe(self) -> str:
        if self.kind == "local":
            return f"the embedded local backend in {self.resolved_data_dir()}"
        if self.kind == "aws":
            return f"AWS KMS ({self.region or 'default region'})"
        return f"the KMS endpoint {self.endpoint}"

    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir or os.environ.get("KMS_IAC_DATA_DIR") or ".kms-iac").resolve()

    def local_data_dir(self) -> Path | None:
        """The bundled backend's data dir: the embedded one, or a local server's when dataDir is set."""
        if self.kind == "local" or (self.kind == "url" and self.data_dir):
            return self.resolved_data_dir()
        return None

    def client(self, region: str | None = None):
        """A KMS client for this target, in ``region`` (default: the configured one)."""
        region = region or self.region
        if self.kind == "local":
            from kms_iac.backend.embedded import embedded_client

            return embedded_client(self.resolved_data_dir(), region=region or "us-east-1", config=RETRIES)
        session = boto3.session.Session(profile_name=self.profile) if self.profile else boto3.session.Session()
        kwargs: dict = {"config": RETRIES}
        if region:
            kwargs["region_name"] = region
        elif session.region_name is None:
            kwargs["region_name"] = "us-east-1"
        if self.kind == "url":
            kwargs["endpoint_url"] = self.endpoint
            creds = session.get_credentials()
            if creds is None:  # emulators accept any signature; do not fail for want of credentials
                kwargs.update(aws_access_key_id="kms-iac", aws_secret_access_key="kms-iac")
        return session.client("kms", **kwargs)


_PROBE_KEY = "00000000-0000-0000-0000-000000000000"


def caller_identity(kms) -> dict[str, str]:
    """The account, Region and partition a KMS client acts in.

    KMS has no "who am I" call, but every KMS (AWS, the bundled backend, moto) names the
    full key ARN, account included, when DescribeKey is asked for a key that does not
    exist; that needs only kms:DescribeKey, which a key-managing pipeline has anyway.
    """
    import re

    from botocore.exceptions import ClientError

    try:
        kms.describe_key(KeyId=_PROBE_KEY)
    except ClientError as e:
        m = re.search(r"arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):key/", e.response.get("Error", {}).get("Message", ""))
        if m:
            return {"partition": m.group(1), "region": m.group(2), "accountId": m.group(3)}
        raise RuntimeError(f"cannot tell the account from KMS: {e}") from None
    raise RuntimeError("cannot tell the account from KMS: the probe key exists")
