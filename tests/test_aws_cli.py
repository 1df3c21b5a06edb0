"""The real AWS CLI (v1, from the test extra) against a running ``kms-iac local serve``.

Every call is a subprocess of ``<venv>/bin/aws kms ...``: the CLI's own argument
parsing (shorthand, ``fileb://``, ``file://``), pagination (``--page-size``), output
formatting (``--output text --query``) and error reporting (exit code 255, message on
stderr) all run against the backend. Endpoint selection is tested both ways: the
``--endpoint-url`` flag and the ``AWS_ENDPOINT_URL_KMS`` environment variable.

Any request the CLI tried to send anywhere but the local server would go to a dead
proxy on 127.0.0.1 and fail, so a misrouted call can never leave the machine.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kms_iac.backend.audit import AUDIT_FILE

pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent
AWS = shutil.which("aws", path=str(VENV_BIN)) or shutil.which("aws")
ACCOUNT = "111122223333"
REGION = "us-east-1"

if AWS is None:  # pragma: no cover - the [test] extra installs awscli
    pytest.skip("the AWS CLI is not installed (pip install -e '.[test]')", allow_module_level=True)


class Cli:
    """Runs ``aws kms ...`` against one server, by flag or by environment variable."""

    def __init__(self, url: str, home: Path, mode: str) -> None:
        assert mode in ("flag", "env")
        self.url = url
        self.mode = mode
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AWS_") and "proxy" not in k.lower()}
        env.update(
            HOME=str(home),
            AWS_ACCESS_KEY_ID="AKIAKMSIACCLITEST001",
            AWS_SECRET_ACCESS_KEY="cli-test-secret",
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=str(home / "no-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(home / "no-credentials"),
            AWS_EC2_METADATA_DISABLED="true",
            AWS_RETRY_MODE="standard",
            AWS_PAGER="",
            # Anything not addressed to the local server goes to a dead local port.
            HTTP_PROXY="http://127.0.0.1:9",
            HTTPS_PROXY="http://127.0.0.1:9",
            NO_PROXY="127.0.0.1,localhost",
            PYTHONWARNINGS="ignore",
        )
        if mode == "env":
            env["AWS_ENDPOINT_URL_KMS"] = url
        self.env = env

    def run(self, *args: str, output: str = "json", query: str | None = None) -> subprocess.CompletedProcess:
        cmd = [AWS, "kms", *args, "--output", output, "--cli-connect-timeout", "60", "--cli-read-timeout", "120"]
        if query is not None:
            cmd += ["--query", query]
        if self.mode == "flag":
            cmd += ["--endpoint-url", self.url]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=300)

    def ok(self, *args: str, **kw) -> dict | str:
        proc = self.run(*args, **kw)
        assert proc.returncode == 0, f"aws kms {' '.join(args)} failed ({proc.returncode}): {proc.stderr}"
        if kw.get("output", "json") == "text":
            return proc.stdout.strip()
        return json.loads(proc.stdout) if proc.stdout.strip() else {}

    def fails(self, *args: str) -> str:
        proc = self.run(*args)
        assert proc.returncode != 0, f"aws kms {' '.join(args)} unexpectedly succeeded: {proc.stdout}"
        return proc.stderr


class AuditTail:
    """Audit events the server appended after this point."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / AUDIT_FILE
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def events(self) -> list[dict]:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return [json.loads(line) for line in f.read().splitlines() if line.strip()]


@pytest.fixture
def cli_flag(server, tmp_path) -> Cli:
    return Cli(server.url, tmp_path, "flag")


@pytest.fixture
def cli_env(server, tmp_path) -> Cli:
    return Cli(server.url, tmp_path, "env")


def _arn(key_id: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"


def test_key_lifecycle_with_endpoint_url_flag(cli_flag: Cli, server, tmp_path):
    cli = cli_flag
    boto = server.client()
    tag = uuid.uuid4().hex[:8]

    # create-key with --description and shorthand --tags
    created = cli.ok(
        "create-key", "--description", f"cli test key {tag}",
        "--tags", "TagKey=team,TagValue=platform", f"TagKey=run,TagValue={tag}",
    )
    md = created["KeyMetadata"]
    key_id, arn = md["KeyId"], md["Arn"]
    assert arn == _arn(key_id)
    assert md["Description"] == f"cli test key {tag}"
    assert md["KeyState"] == "Enabled" and md["Enabled"] is True
    assert md["KeySpec"] == "SYMMETRIC_DEFAULT" and md["KeyUsage"] == "ENCRYPT_DECRYPT"

    # create-alias, then describe-key through the alias
    alias = f"alias/cli-{tag}"
    assert cli.ok("create-alias", "--alias-name", alias, "--target-key-id", key_id) == {}
    by_alias = cli.ok("describe-key", "--key-id", alias)["KeyMetadata"]
    assert by_alias["KeyId"] == key_id and by_alias["Arn"] == arn
    assert by_alias["Description"] == f"cli test key {tag}"
    assert {
        "AWSAccountId", "KeyId", "Arn", "CreationDate", "Enabled", "Description", "KeyUsage", "KeyState",
        "Origin", "KeyManager", "CustomerMasterKeySpec", "KeySpec", "EncryptionAlgorithms", "MultiRegion",
    } <= set(by_alias)
    assert by_alias["AWSAccountId"] == ACCOUNT and by_alias["KeyManager"] == "CUSTOMER"
    assert by_alias["Origin"] == "AWS_KMS" and by_alias["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert isinstance(by_alias["CreationDate"], (int, float)) and by_alias["MultiRegion"] is False

    # encrypt with fileb:// and a shorthand encryption context; decrypt with fileb://
    plaintext = os.urandom(200) + b"\x00\xff binary-safe"
    (tmp_path / "pt.bin").write_bytes(plaintext)
    enc = cli.ok(
        "encrypt", "--key-id", alias, "--plaintext", f"fileb://{tmp_path / 'pt.bin'}",
        "--encryption-context", "purpose=cli-test,stage=dev",
    )
    assert enc["KeyId"] == arn
    assert enc["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    (tmp_path / "ct.bin").write_bytes(base64.b64decode(enc["CiphertextBlob"]))
    out = cli.ok(
        "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'ct.bin'}",
        "--encryption-context", "purpose=cli-test,stage=dev",
        output="text", query="Plaintext",
    )
    assert base64.b64decode(out) == plaintext

    # a different encryption context: non-zero exit, InvalidCiphertextException on stderr
    err = cli.fails(
        "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'ct.bin'}",
        "--encryption-context", "purpose=something-else,stage=dev",
    )
    assert "InvalidCiphertextException" in err

    # generate-data-key: 32 plaintext bytes whose ciphertext decrypts to them
    dk = cli.ok("generate-data-key", "--key-id", key_id, "--key-spec", "AES_256", "--encryption-context", "use=dek")
    data_key = base64.b64decode(dk["Plaintext"])
    assert len(data_key) == 32 and dk["KeyId"] == arn
    back = boto.decrypt(CiphertextBlob=base64.b64decode(dk["CiphertextBlob"]), EncryptionContext={"use": "dek"})
    assert back["Plaintext"] == data_key and back["KeyId"] == arn

    # rotation: a custom period, then an on-demand rotation
    assert cli.ok("enable-key-rotation", "--key-id", key_id, "--rotation-period-in-days", "180") == {}
    status = cli.ok("get-key-rotation-status", "--key-id", key_id)
    assert status["KeyRotationEnabled"] is True
    assert status["RotationPeriodInDays"] == 180
    assert status["KeyId"] == arn
    assert "NextRotationDate" in status
    rotated = cli.ok("rotate-key-on-demand", "--key-id", key_id)
    assert rotated["KeyId"] in (key_id, arn)
    rotations = cli.ok("list-key-rotations", "--key-id", key_id)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"]
    assert rotations[0]["KeyId"] == key_id and "RotationDate" in rotations[0]
    # the old ciphertext still decrypts after rotation
    assert boto.decrypt(
        CiphertextBlob=(tmp_path / "ct.bin").read_bytes(), EncryptionContext={"purpose": "cli-test", "stage": "dev"}
    )["Plaintext"] == plaintext

    # put-key-policy from file://, get-key-policy back as text
    policy = {
        "Version": "2012-10-17",
        "Id": f"cli-{tag}",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    assert cli.ok(
        "put-key-policy", "--key-id", key_id, "--policy-name", "default", "--policy", f"file://{tmp_path / 'policy.json'}"
    ) == {}
    got = cli.ok("get-key-policy", "--key-id", key_id, "--policy-name", "default", output="text", query="Policy")
    assert json.loads(got) == policy

    # tag-resource adds to the tags given at creation
    assert cli.ok("tag-resource", "--key-id", key_id, "--tags", "TagKey=env,TagValue=dev") == {}
    tags = cli.ok("list-resource-tags", "--key-id", key_id)
    assert {t["TagKey"]: t["TagValue"] for t in tags["Tags"]} == {"team": "platform", "run": tag, "env": "dev"}

    # schedule-key-deletion (7 days, the minimum), then cancel: the key comes back Disabled
    sched = cli.ok("schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7")
    assert sched["KeyId"] == arn
    assert sched["KeyState"] == "PendingDeletion"
    assert sched["PendingWindowInDays"] == 7
    assert "DeletionDate" in sched
    assert cli.ok("cancel-key-deletion", "--key-id", key_id)["KeyId"] == arn
    after = cli.ok("describe-key", "--key-id", arn)["KeyMetadata"]
    assert after["KeyState"] == "Disabled" and after["Enabled"] is False
    assert "DeletionDate" not in after and "PendingDeletionWindowInDays" not in after


def test_errors_with_endpoint_url_flag(cli_flag: Cli, server):
    missing = str(uuid.uuid4())
    err = cli_flag.fails("describe-key", "--key-id", missing)
    assert "NotFoundException" in err
    assert f"Key 'arn:aws:kms:us-east-1:111122223333:key/{missing}' does not exist" in err

    key_id = server.client().create_key(Description="cli validation")["KeyMetadata"]["KeyId"]
    err = cli_flag.fails("schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "3")
    assert "ValidationException" in err
    assert "pendingWindowInDays" in err and "greater than or equal to 7" in err
    # the refusal changed nothing
    assert server.client().describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_env_var_endpoint_and_pagination(cli_env: Cli, server):
    """``AWS_ENDPOINT_URL_KMS`` alone routes the CLI; ``--page-size`` makes it fetch several pages."""
    cli = cli_env
    boto = server.client()
    tag = uuid.uuid4().hex[:8]

    created = cli.ok("create-key", "--description", f"env {tag}", "--tags", f"TagKey=run,TagValue={tag}")
    key_id = created["KeyMetadata"]["KeyId"]
    described = cli.ok("describe-key", "--key-id", key_id)["KeyMetadata"]
    assert described["Arn"] == _arn(key_id) and described["Description"] == f"env {tag}"

    # enough keys and aliases that a small page size needs several pages
    extra = [boto.create_key(Description=f"page {tag} {i}")["KeyMetadata"]["KeyId"] for i in range(4)]
    aliases = [f"alias/page-{tag}-{i}" for i in range(5)]
    for i, name in enumerate(aliases):
        boto.create_alias(AliasName=name, TargetKeyId=([key_id] + extra)[i])
    all_keys = {k["KeyId"] for page in boto.get_paginator("list_keys").paginate() for k in page["Keys"]}
    assert {key_id, *extra} <= all_keys
    n = len(all_keys)
    page_size = max(1, math.ceil(n / 3))  # 3 pages (or 2 when n is tiny)
    expected_pages = math.ceil(n / page_size)
    assert expected_pages >= 2

    tail = AuditTail(server.data_dir)
    listed = cli.ok("list-keys", "--page-size", str(page_size))
    assert {k["KeyId"] for k in listed["Keys"]} == all_keys
    assert len(listed["Keys"]) == n  # no page fetched twice
    assert "NextMarker" not in listed
    calls = [e for e in tail.events() if e["eventName"] == "ListKeys"]
    assert len(calls) == expected_pages
    assert all(e["requestParameters"]["limit"] == page_size for e in calls)
    assert sum(1 for e in calls if "marker" in (e["requestParameters"] or {})) == expected_pages - 1
    assert all(e["userAgent"].startswith("aws-cli/") and "errorCode" not in e for e in calls)

    tail = AuditTail(server.data_dir)
    listed_aliases = cli.ok("list-aliases", "--page-size", "2")["Aliases"]
    names = [a["AliasName"] for a in listed_aliases]
    assert set(aliases) <= set(names)
    assert len(names) == len(set(names))
    mine = {a["AliasName"]: a for a in listed_aliases if a["AliasName"] in aliases}
    assert mine[aliases[0]]["TargetKeyId"] == key_id
    assert mine[aliases[0]]["AliasArn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:{aliases[0]}"
    alias_calls = [e for e in tail.events() if e["eventName"] == "ListAliases"]
    assert len(alias_calls) == math.ceil(len(names) / 2) >= 3

    # --max-items stops early and hands back a token; --starting-token resumes from the backend's marker
    first = cli.ok("list-aliases", "--page-size", "2", "--max-items", "3")
    assert [a["AliasName"] for a in first["Aliases"]] == names[:3]
    rest = cli.ok("list-aliases", "--page-size", "2", "--starting-token", first["NextToken"])
    assert [a["AliasName"] for a in rest["Aliases"]] == names[3:]
    assert "NextToken" not in rest

    # an error through the environment-variable route too
    missing = str(uuid.uuid4())
    err = cli.fails("describe-key", "--key-id", missing)
    assert f"An error occurred (NotFoundException) when calling the DescribeKey operation: Key '{_arn(missing)}' does not exist" in err
