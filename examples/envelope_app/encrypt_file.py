"""Envelope-encrypt a file with a tenant's key through the AWS Encryption SDK.

    python encrypt_file.py encrypt KEY_ARN IN OUT --tenant files
    python encrypt_file.py decrypt KEY_ARN IN OUT --tenant files

The SDK asks KMS for a data key (GenerateDataKey), encrypts the file locally with it, and
stores only the encrypted data key in the output's header; decryption asks KMS to decrypt
that data key. The encryption context (tenant=...) is bound to the ciphertext. Point it at
the local server with AWS_ENDPOINT_URL_KMS, or at the embedded backend with --data-dir.
"""

from __future__ import annotations

import argparse
import sys

import aws_encryption_sdk
import botocore.session
from aws_encryption_sdk import CommitmentPolicy


def key_provider(key_arn: str, data_dir: str | None):
    session = botocore.session.get_session()
    if data_dir:  # the embedded backend: a botocore session whose KMS clients are answered in-process
        from kms_iac.backend.embedded import embedded_session
        session = embedded_session(data_dir)
    return aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[key_arn], botocore_session=session)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["encrypt", "decrypt"])
    p.add_argument("key_arn")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--tenant", required=True)
    p.add_argument("--data-dir", help="use the embedded backend in this data dir instead of an endpoint")
    args = p.parse_args(argv)
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    provider = key_provider(args.key_arn, args.data_dir)
    with open(args.source, "rb") as src, open(args.target, "wb") as dst:
        if args.action == "encrypt":
            with client.stream(mode="e", source=src, key_provider=provider,
                               encryption_context={"tenant": args.tenant}) as stream:
                for chunk in stream:
                    dst.write(chunk)
        else:
            with client.stream(mode="d", source=src, key_provider=provider) as stream:
                for chunk in stream:
                    dst.write(chunk)
                if stream.header.encryption_context.get("tenant") != args.tenant:
                    print(f"refusing: the file was encrypted for tenant "
                          f"{stream.header.encryption_context.get('tenant')!r}", file=sys.stderr)
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
