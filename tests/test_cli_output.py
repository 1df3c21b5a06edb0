"""Machine-readable output (``local seed --json``, ``policy explain --json``) and shell completion
(``_KMS_IAC_COMPLETE``) of the real ``kms-iac`` console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

KMS_IAC = Path(sys.executable).with_name("kms-iac")
KEY_ID = "0b7f3c1e-1111-4222-8333-944445555666"
ACCOUNT = "111122223333"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/KeyAdmin"
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*",
     "Resource": "*"},
    {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": ADMIN}, "Action": ["kms:Describe*", "kms:PutKeyPolicy"],
     "Resource": "*"},
]}


def kms_iac(*args: str | Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(KMS_IAC), *map(str, args)], capture_output=True, text=True, timeout=90,
                          env={**os.environ, **env})


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    base = tmp_path_factory.mktemp("seed-json")
    seed = base / "seed.yaml"
    seed.write_text(yaml.safe_dump({"keys": [
        {"id": KEY_ID, "policy": POLICY, "aliases": ["alias/orders", "alias/orders-v2"]},
        {"id": "mrk-0123456789abcdef0123456789abcdef"},
    ]}))
    return base / "kms", kms_iac("local", "seed", seed, "--data-dir", base / "kms", "--json")


def test_seed_json(seeded):
    _, run = seeded
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert json.loads(run.stdout) == {"keys": [KEY_ID, "mrk-0123456789abcdef0123456789abcdef"],
                                      "aliases": ["alias/orders", "alias/orders-v2"]}


def test_explain_json(seeded):
    data_dir, _ = seeded
    run = kms_iac("policy", "explain", "--data-dir", data_dir, "--key", "alias/orders", "--json",
                  "--action", "kms:DescribeKey", "--action", "kms:PutKeyPolicy", "--action", "kms:Decrypt")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["key"] == f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}"
    assert doc["actions"] == ["kms:DescribeKey", "kms:PutKeyPolicy", "kms:Decrypt"]
    by_principal = {p["principal"]: p["allowed"] for p in doc["principals"]}
    assert by_principal == {
        f"arn:aws:iam::{ACCOUNT}:root": {"kms:DescribeKey": True, "kms:PutKeyPolicy": True, "kms:Decrypt": True},
        ADMIN: {"kms:DescribeKey": True, "kms:PutKeyPolicy": True, "kms:Decrypt": False},
    }
    assert "encryption context" in doc["note"]


def test_explain_text_is_still_the_default(seeded):
    data_dir, _ = seeded
    run = kms_iac("policy", "explain", "--data-dir", data_dir, "--key", "alias/orders", COLUMNS="250")
    assert run.returncode == 0 and "Who can do what with" in run.stdout and ADMIN in run.stdout


def test_bash_completion_script_and_answers():
    """``eval "$(_KMS_IAC_COMPLETE=bash_source kms-iac)"`` installs completion for subcommands,
    options and KMS actions."""
    script = kms_iac(_KMS_IAC_COMPLETE="bash_source")
    assert script.returncode == 0 and "complete -o nosort -F _kms_iac_completion kms-iac" in script.stdout

    def complete(words: str) -> list[str]:
        run = kms_iac(_KMS_IAC_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1))
        assert run.returncode == 0, run.stderr
        return [line.split(",", 1)[1] for line in run.stdout.splitlines()]

    assert complete("kms-iac local se") == ["seed", "serve"]
    assert "--principal" in complete("kms-iac policy simulate --pri")
    assert complete("kms-iac policy simulate --action kms:Decr") == ["kms:Decrypt"]
    assert complete("kms-iac policy simulate --action GenerateM") == ["kms:GenerateMac"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_in_bash():
    env = {**os.environ, "PATH": f"{KMS_IAC.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    script = ('eval "$(_KMS_IAC_COMPLETE=bash_source kms-iac)"; COMP_WORDS=(kms-iac local au); COMP_CWORD=2; '
              '_kms_iac_completion kms-iac; echo "${COMPREPLY[@]}"')
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0 and run.stdout.split() == ["audit"], run.stderr
