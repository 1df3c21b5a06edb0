"""Pulumi's own awskms:// secrets provider (the engine's Go AWS SDK) encrypting stack
secrets with a key of the bundled backend, reached through AWS_ENDPOINT_URL_KMS."""

from __future__ import annotations

import base64
import os

import pytest
import yaml

from tests.helpers import TEST_CREDS, ServerProcess
from kms_iac.engine import PulumiProject, pulumi_bin_dir

pytestmark = pytest.mark.slow


def test_awskms_secrets_provider_uses_the_local_backend(tmp_path):
    with ServerProcess(tmp_path / "kms") as srv:
        kms = srv.client()
        key_id = kms.create_key(Description="pulumi stack secrets")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/pulumi-secrets", TargetKeyId=key_id)
        env = {"AWS_ENDPOINT_URL_KMS": srv.url, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": TEST_CREDS["aws_access_key_id"],
               "AWS_SECRET_ACCESS_KEY": TEST_CREDS["aws_secret_access_key"], "AWS_CONFIG_FILE": os.devnull,
               "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        project = PulumiProject(tmp_path, pulumi_bin_dir(), stack="dev", env=env,
                                init_args=("--secrets-provider", "awskms://alias/pulumi-secrets?region=us-east-1"))
        project.run("config", "set", "--secret", "dbPassword", "hunter2-very-secret")
        project.write_program("""
import pulumi
pulumi.export("password", pulumi.Config().require_secret("dbPassword"))
""")
        project.up()
        assert project.run("stack", "output", "password", "--show-secrets").stdout.strip() == "hunter2-very-secret"

        stack_file = yaml.safe_load((project.dir / "Pulumi.dev.yaml").read_text())
        assert stack_file["secretsprovider"].startswith("awskms://alias/pulumi-secrets")
        assert base64.b64decode(stack_file["encryptedkey"]).startswith(b"KIAC")  # a data key sealed by our backend
        assert "hunter2" not in (project.dir / "Pulumi.dev.yaml").read_text()
        for f in project.state.rglob("*"):
            if f.is_file():
                assert b"hunter2-very-secret" not in f.read_bytes()

        events = [l for l in (srv.data_dir / "audit.log").read_text().splitlines() if key_id in l]
        assert any('"eventName":"Encrypt"' in l for l in events) and any('"eventName":"Decrypt"' in l for l in events)

        # with the key disabled, the stack's secrets can no longer be opened: the backend really is the root of trust
        kms.disable_key(KeyId=key_id)
        proc = project.run("stack", "output", "password", "--show-secrets", check=False)
        assert proc.returncode != 0 and "DisabledException" in proc.stdout + proc.stderr
