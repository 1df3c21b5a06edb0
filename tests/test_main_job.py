"""The main job (``./run.sh``) end to end, in its own state dir and stack so it never touches
the developer's ``.kms-iac/``: up with the JSON report, a second up that changes nothing,
then ``destroy``."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from kms_iac.backend.embedded import embedded_client
from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def main_job(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "examples" / "main_job.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)


def test_up_report_as_json_then_destroy(tmp_path) -> None:
    stack = f"mainjob-{uuid.uuid4().hex[:8]}"
    common = ("--stack", stack, "--state-dir", str(tmp_path))
    try:
        first = main_job(*common, "--json")
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)  # stdout is the JSON alone; pulumi's output went to stderr
        assert "Traceback" not in first.stderr
        tenants = {k["tenant"] for k in report["keys"]}
        assert tenants == {"acme", "globex", "initech", "umbrella", "hooli", "platform (signing)"}
        assert report["failures"] == 0
        assert {f["rule"] for f in report["findings"]} >= {"KMS001", "KMS002", "KMS004"}
        acme = next(k for k in report["keys"] if k["tenant"] == "acme")
        assert acme["aliases"] == ["alias/tenants/acme"] and acme["envelope_round_trip"] is True
        kms = embedded_client(tmp_path / "data")
        assert kms.describe_key(KeyId=acme["arn"])["KeyMetadata"]["KeyState"] == "Enabled"

        again = main_job(*common)  # text report; nothing to change
        assert again.returncode == 0, again.stderr
        assert "unchanged" in again.stdout and "Compliance report" in again.stdout

        gone = main_job(*common, "destroy", "--json")
        assert gone.returncode == 0, gone.stderr
        result = json.loads(gone.stdout)
        assert kms.describe_key(KeyId=acme["arn"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
        # As on AWS, the CloudHSM key store outlives its (pending deletion) key; said, not failed.
        assert {urn.rsplit("::", 1)[1] for urn in result["remaining"]} == {"regulated", "regulated-cluster"}
        assert "waiting period" in gone.stderr

        purged = main_job(*common, "destroy", "--purge", "--json")
        assert purged.returncode == 0, purged.stderr
        assert json.loads(purged.stdout)["purged"] is True and not tmp_path.exists()
    finally:
        (ROOT / f"Pulumi.{stack}.yaml").unlink(missing_ok=True)
