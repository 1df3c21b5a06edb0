"""The live front door of the rules, as a test helper: the shared rule cases created as real
keys in a running KMS (the local server, or moto standing in for AWS) and scanned with the
real ``kms-iac scan live`` command.

``verdicts_via_live(cases, identity_cases, server)`` is what the four-door agreement test
calls; the pieces (creating the keys, the principals file, running a scan) are here for
tests that need them separately.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml

from tests.helpers import ScanRun
from tests.rule_cases import ACCOUNT, ROOT, Case, IdentityCase

ROOT_DIR = Path(__file__).resolve().parents[1]
DOOR = "live"
SCAN_TIMEOUT = 300  # a hang guard for the subprocess, not a speed expectation
# The key arguments this door knows how to create; any other argument in a case is a bug here.
KNOWN_ARGS = {"description", "policy", "enable_key_rotation", "rotation_period_in_days", "deletion_window_in_days",
              "tags", "key_spec", "key_usage", "origin", "multi_region", "is_enabled", "scheduled_for_deletion",
              "bypass_policy_lockout_safety_check", "valid_to"}




def scan_live(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> ScanRun:
    """``kms-iac scan live ARGS`` as a real subprocess (in an empty directory unless ``cwd``: no rules
    config is found upward from it, so only ``--config`` changes the rules)."""
    with tempfile.TemporaryDirectory(prefix="kms-iac-scan-cwd-") as empty:
        proc = subprocess.run([sys.executable, "-m", "kms_iac", "scan", "live", *args], capture_output=True, text=True,
                              timeout=SCAN_TIMEOUT, cwd=cwd or empty,
                              env={**os.environ, "PYTHONPATH": str(ROOT_DIR), **(env or {})})
    return ScanRun(proc.returncode, proc.stdout, proc.stderr)


def would_lock_out(policy: dict, key_arn: str) -> bool:
    """True when ``policy`` would stop the creating account root from changing it again (the backend's evaluator)."""
    from kms_iac.policy.evaluator import Principal, lockout_check

    return not lockout_check(policy, Principal(ROOT, ACCOUNT), key_arn)


def _import_material(kms, key_id: str, valid_to: Any = None) -> None:
    """Imported key material, wrapped with RSA-OAEP SHA-256 as AWS's BYOK procedure does."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    public = serialization.load_der_public_key(params["PublicKey"])
    wrapped = public.encrypt(os.urandom(32), padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    extra = {"ExpirationModel": "KEY_MATERIAL_EXPIRES", "ValidTo": valid_to} if valid_to else \
        {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}
    kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"], EncryptedKeyMaterial=wrapped, **extra)


def create_case_key(kms, case: Case, *, strict: bool = True) -> str:
    """Create ``case``'s key as the case describes it; return its ARN.

    ``strict=False`` (moto) leaves out what the endpoint does not implement: importing key
    material, which moto answers with HTTP 500; the key then stays PendingImport."""
    a = case.key_args()
    unknown = set(a) - KNOWN_ARGS
    if unknown:
        raise ValueError(f"{case.name}: the live door cannot create {sorted(unknown)}")
    params: dict[str, Any] = {"Description": a["description"], "Policy": json.dumps(a["policy"]),
                              "Tags": [{"TagKey": k, "TagValue": v} for k, v in (a.get("tags") or {}).items()]}
    for arg, member in (("key_spec", "KeySpec"), ("key_usage", "KeyUsage"), ("origin", "Origin"), ("multi_region", "MultiRegion")):
        if a.get(arg) is not None:
            params[member] = a[arg]
    placeholder = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
    if a.get("bypass_policy_lockout_safety_check") or would_lock_out(a["policy"], placeholder):
        params["BypassPolicyLockoutSafetyCheck"] = True
    md = kms.create_key(**params)["KeyMetadata"]
    key_id, arn = md["KeyId"], md["Arn"]
    if case.alias:
        alias = case.alias.format(case=case.name)
        try:
            kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        except kms.exceptions.AlreadyExistsException:  # the same cases created twice in one server
            kms.create_alias(AliasName=f"{alias}-{secrets.token_hex(4)}", TargetKeyId=key_id)
    if a.get("origin") == "EXTERNAL":
        try:
            _import_material(kms, key_id, a.get("valid_to"))
        except kms.exceptions.ClientError as e:
            if strict or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 500:
                raise
    if a.get("enable_key_rotation"):
        period = a.get("rotation_period_in_days")
        kms.enable_key_rotation(KeyId=key_id, **({"RotationPeriodInDays": period} if period else {}))
    if a.get("is_enabled") is False:
        kms.disable_key(KeyId=key_id)
    if a.get("scheduled_for_deletion"):
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=a.get("deletion_window_in_days") or 30)
    return arn


def create_cases(kms, cases: Iterable[Case], *, strict: bool = True) -> dict[str, str]:
    """Every case whose doors include live, created; key ARN -> case name."""
    return {create_case_key(kms, c, strict=strict): c.name for c in cases if DOOR in c.doors}


def identity_arn(case: IdentityCase) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{case.name}"


def principals_document(identity_cases: Iterable[IdentityCase]) -> dict:
    """A principals file with one role per identity case, holding the case's identity policy."""
    principals = [{"arn": identity_arn(c), "access_key_id": f"AKIALIVECASE{i:08d}",
                   "secret_access_key": f"live-case-secret-{i}", "policies": [c.document]}
                  for i, c in enumerate(ic for ic in identity_cases if DOOR in ic.doors)]
    return {"accounts": {ACCOUNT: {"principals": principals}}}


def verdicts_from(findings: Iterable[dict], names: dict[str, str]) -> dict[str, dict[str, str]]:
    """{case name: {rule: status}} for the findings on resources named in ``names``."""
    out: dict[str, dict[str, str]] = {}
    for f in findings:
        name = names.get(f["resource"])
        if name is not None:
            out.setdefault(name, {})[f["rule"]] = f["status"]
    return out


def scan_cases(cases: Iterable[Case], identity_cases: Iterable[IdentityCase], server, *source: str,
               strict: bool = True) -> tuple[dict, ScanRun, dict[str, str]]:
    """Create the cases in ``server`` and scan it (``source`` defaults to ``--endpoint server.url``).

    Returns (verdicts by case name, the scan run, resource -> case name).
    """
    identity_cases = list(identity_cases)
    names = create_cases(server.client(), cases, strict=strict)
    names.update({identity_arn(c): c.name for c in identity_cases if DOOR in c.doors})
    with tempfile.TemporaryDirectory(prefix="kms-iac-live-") as tmp:
        principals = Path(tmp) / "principals.yaml"
        principals.write_text(yaml.safe_dump(principals_document(identity_cases)))
        run = scan_live(*(source or ("--endpoint", server.url)), "--format", "json", "--fail-on", "CRITICAL",
                        "--principals", str(principals))
    if run.returncode not in (0, 1):
        raise AssertionError(f"scan live failed ({run.returncode}): {run.stderr}")
    return verdicts_from(run.findings, names), run, names


def verdicts_via_live(cases: Iterable[Case], identity_cases: Iterable[IdentityCase], server) -> dict[str, dict[str, str]]:
    """{case name: {rule: status}} from ``kms-iac scan live --endpoint`` over the cases created in ``server``
    (a running tests.helpers.ServerProcess or MotoServer)."""
    return scan_cases(cases, identity_cases, server)[0]
