"""Which KMS the provider talks to: the embedded local backend, real AWS, or any endpoint.

``kms-iac:target`` is ``local`` (default: the embedded backend in ``.kms-iac/`` of the
project, or ``kms-iac:dataDir``), ``aws`` (the standard credential chain and region,
``kms-iac:profile`` and ``kms-iac:region`` honoured) or an endpoint URL. Every client
retries ThrottlingException with backoff (botocore's standard retry mode).

:meth:`Target.check_usable` is what the provider's Configure runs: an endpoint that does
not answer, or ``aws`` without credentials, fails there in one line instead of after
botocore's retries (28 s) on the first resource.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ProfileNotFound

from kms_iac.provider.errors import ProviderError

RETRIES = botocore.config.Config(retries={"mode": "standard", "max_attempts": 10})
# The reachability probe: one attempt, a short connect timeout. An endpoint that is up
# answers a DescribeKey in milliseconds; one that is down refuses at once or not at all.
PROBE = botocore.config.Config(connect_timeout=2, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 1})


class TargetUnusable(ProviderError):
    """The configured target cannot work at all (no endpoint, no credentials): one line, no traceback."""


def connection_reason(exc: BaseException) -> str:
    """The operating system's words for a failed connection ("connection refused"), else botocore's."""
    text = str(getattr(exc, "kwargs", {}).get("error") or exc)
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return m.group(1).strip().rstrip(".").lower() if m else str(exc)


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

    @property
    def is_aws(self) -> bool:
        """Real AWS KMS: target ``aws``, or an endpoint URL of AWS's own (a VPC or FIPS endpoint)."""
        host = urlsplit(self.endpoint or "").hostname or ""
        return self.kind == "aws" or host.endswith((".amazonaws.com", ".amazonaws.com.cn"))

    def _session(self) -> boto3.session.Session:
        return boto3.session.Session(profile_name=self.profile) if self.profile else boto3.session.Session()

    def check_usable(self) -> None:
        """Raise :class:`TargetUnusable` when no KMS call can succeed; never calls real AWS.

        ``local`` needs nothing. ``aws`` needs credentials the standard chain resolves
        (environment, profile, SSO, container or instance role); whether they are still
        valid only AWS can tell, so that is left to the first call. An endpoint URL gets
        one DescribeKey: any answer, even an error, means it is up.
        """
        if self.kind == "local":
            return
        try:
            session = self._session()
            creds = session.get_credentials() if self.kind == "aws" else None
        except ProfileNotFound:
            raise TargetUnusable(f"kms-iac provider: the AWS profile {self.profile!r} (kms-iac:profile) is not in the "
                                 "AWS config or credentials file") from None
        except BotoCoreError as exc:
            raise TargetUnusable(f"kms-iac provider: cannot load AWS credentials: {exc}") from None
        if self.kind == "aws":
            if creds is None:
                raise TargetUnusable(
                    "kms-iac provider: no AWS credentials for kms-iac:target aws"
                    + (f" (profile {self.profile})" if self.profile else "")
                    + "; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, run aws sso login, "
                      "or set kms-iac:target to local")
            return
        try:
            self.client(config=PROBE).describe_key(KeyId=_PROBE_KEY)
        except ClientError:
            return  # it answered (NotFoundException, AccessDenied, ...): the endpoint is up
        except ConnectionError as exc:  # refused, unresolvable, connect or read timeout
            raise TargetUnusable(
                f"kms-iac provider: cannot reach the KMS endpoint {self.endpoint}: {connection_reason(exc)}; "
                "start it with kms-iac local serve or fix kms-iac:target") from None
        except BotoCoreError as exc:
            raise TargetUnusable(f"kms-iac provider: the KMS endpoint {self.endpoint} does not answer as KMS: "
                                 f"{exc}; fix kms-iac:target") from None

    def client(self, region: str | None = None, config: botocore.config.Config = RETRIES):
        """A KMS client for this target, in ``region`` (default: the configured one)."""
        region = region or self.region
        if self.kind == "local":
            from kms_iac.backend.embedded import embedded_client

            return embedded_client(self.resolved_data_dir(), region=region or "us-east-1", config=config)
        session = self._session()
        kwargs: dict = {"config": config}
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
