"""Rules on a large template: kms-iac's rule engine against checkov, on the same file.

One CloudFormation template with 1,000 keys (varied policies: well-governed, no root,
wildcard with and without a narrowing condition, unnarrowed partner accounts, unrestricted
CreateGrant, admin-and-user; aliases on most keys, rotation on most, some HMAC and
asymmetric keys, some multi-Region, short deletion windows) is judged by

  (a) kms-iac: ``kms-iac scan template FILE --format json`` as a subprocess (what a
      pipeline runs: interpreter start, imports, parsing, all 16 rules, the report), and
      in-process (load + views + evaluate: the engine alone);
  (b) checkov (the pinned one, from its own environment, run the way ``kms-iac checkov``
      runs it) with only KMS checks: its built-in CloudFormation KMS checks (CKV_AWS_7
      rotation, CKV_AWS_33 wildcard principal) and kms-iac's CKV_KMSIAC_1..16.

Three interleaved rounds (kms-iac subprocess, kms-iac in-process, checkov, repeated), the
median of each, and the ratio checkov / kms-iac (goal: kms-iac at least 20x faster). Wall
time and CPU time (user+sys of the child process, or of this process in-process) are both
reported: on a shared machine the CPU figures are the steadier ones. Both sides' outputs
are checked for the expected number of results, so a tool that fails fast is not mistaken
for a fast one, and kms-iac's verdicts are compared with checkov's CKV_KMSIAC verdicts key
by key (they must agree: the checks are the same rules).

    .venv/bin/python benchmarks/bench_rules_templates.py [--keys 1000] [--rounds 3] [--format json|yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ACCOUNT = "111122223333"
PARTNER = "444455556666"
ROOT_ARN = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
ADMIN = {"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:role/KeyAdmin"}
USER = {"Fn::Sub": "arn:aws:iam::${AWS::AccountId}:role/App"}
ADMIN_ACTIONS = ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                 "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource",
                 "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"]
USER_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
CHECKOV_CHECKS = "CKV_AWS_7,CKV_AWS_33,CKV_KMSIAC_*"


def _stmt(sid, principal, actions, condition=None, effect="Allow") -> dict:
    st = {"Sid": sid, "Effect": effect, "Principal": principal, "Action": actions, "Resource": "*"}
    if condition:
        st["Condition"] = condition
    return st


def _policy(i: int) -> dict:
    """Ten policy shapes, round robin, each with a per-key twist so no two documents are equal."""
    tenant = f"t{i:04d}"
    root = _stmt("Root", {"AWS": ROOT_ARN}, "kms:*")
    admin = _stmt("Admins", {"AWS": ADMIN}, ADMIN_ACTIONS)
    user = _stmt("Users", {"AWS": USER}, USER_ACTIONS, {"StringEquals": {"kms:EncryptionContext:tenant": tenant}})
    shape = i % 10
    extra = {
        0: [admin, user],
        1: [admin, user, _stmt("Partner", {"AWS": f"arn:aws:iam::{PARTNER}:role/C{i}"}, USER_ACTIONS,
                               {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}})],
        2: [admin, _stmt("Partner", {"AWS": f"arn:aws:iam::{PARTNER}:root"}, USER_ACTIONS)],
        3: [admin, _stmt("Everyone", "*", ["kms:Decrypt"])],
        4: [admin, _stmt("ViaS3", {"AWS": "*"}, USER_ACTIONS, {"StringEquals": {
            "kms:CallerAccount": {"Ref": "AWS::AccountId"}, "kms:ViaService": "s3.us-east-1.amazonaws.com"}})],
        5: [_stmt("Admins", {"AWS": ADMIN}, ADMIN_ACTIONS + USER_ACTIONS)],
        6: [admin, user, _stmt("Grants", {"AWS": USER}, ["kms:CreateGrant", "kms:ListGrants"])],
        7: [admin, user, _stmt("Grants", {"AWS": USER}, ["kms:CreateGrant"],
                               {"Bool": {"kms:GrantIsForAWSResource": "true"}})],
        8: [admin, user, _stmt("NoPolicyChanges", "*", "kms:PutKeyPolicy", effect="Deny")],
        9: [admin, user],
    }[shape]
    statements = ([] if shape == 9 else [root]) + extra  # shape 9: no root (lockout risk)
    return {"Version": "2012-10-17", "Id": f"key-policy-{tenant}", "Statement": statements}


def template(n: int) -> dict:
    resources: dict = {}
    for i in range(n):
        lid = f"TenantKey{i:04d}"
        props: dict = {"Description": f"tenant t{i:04d}", "KeyPolicy": _policy(i),
                       "Tags": [{"Key": "tenant", "Value": f"t{i:04d}"}] if i % 9 else [{"Key": "team", "Value": "x"}]}
        kind = i % 25
        if kind == 3:
            props.update(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
        elif kind == 7:
            props.update(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
        elif kind == 11:
            props.update(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
        else:
            props["EnableKeyRotation"] = i % 6 != 0
            if props["EnableKeyRotation"] and i % 4 == 1:
                props["RotationPeriodInDays"] = 180 if i % 8 == 1 else 730
        if i % 13 == 0:
            props["PendingWindowInDays"] = 7
        if i % 17 == 0:
            props["MultiRegion"] = True
        if i % 31 == 0:
            props["Enabled"] = False
        resources[lid] = {"Type": "AWS::KMS::Key", "Properties": props}
        if i % 10 != 4:
            target = {"Ref": lid} if i % 2 else {"Fn::GetAtt": [lid, "Arn"]}
            resources[f"{lid}Alias"] = {"Type": "AWS::KMS::Alias", "Properties": {
                "AliasName": f"alias/tenants/t{i:04d}", "TargetKeyId": target}}
    return {"AWSTemplateFormatVersion": "2010-09-09", "Description": f"{n} tenant keys", "Resources": resources}


def write_template(n: int, fmt: str, work: Path) -> Path:
    doc = template(n)
    path = work / f"tenants.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(doc, indent=1))
    else:
        from tests.rules_doors_templates import to_cfn_yaml

        path.write_text(to_cfn_yaml(doc))
    return path


# --- the runs --------------------------------------------------------------------------

def _timed(fn, children: bool = True):
    """(wall seconds, CPU seconds, fn()); CPU of the child processes fn waited for, or of this process."""
    def cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime
    c0, t0 = cpu(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, cpu() - c0, out


def kms_iac_subprocess(path: Path, work: Path) -> tuple[float, float, int]:
    out = work / "kms-iac.json"

    def run():
        proc = subprocess.run([sys.executable, "-m", "kms_iac", "scan", "template", str(path), "--format", "json",
                               "--output", str(out)], capture_output=True, text=True, cwd=work,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        if proc.returncode not in (0, 1):
            raise SystemExit(f"kms-iac scan template failed ({proc.returncode}): {proc.stderr}")
        return len(json.loads(out.read_text())["findings"])
    return _timed(run)


def kms_iac_in_process(path: Path) -> tuple[float, float, int]:
    from kms_iac.rules.adapters.cloudformation import load_template, views_from_template
    from kms_iac.rules.config import RulesConfig
    from kms_iac.rules.engine import evaluate

    def run():
        doc = load_template(path)
        return len(evaluate(views_from_template(doc, str(path), RulesConfig())))
    return _timed(run, children=False)


def checkov_run(path: Path, work: Path) -> tuple[float, float, int]:
    from kms_iac.cli.checkov import checkov_command, checkov_env

    out = work / "checkov"
    cmd = checkov_command(["-f", str(path), "--framework", "cloudformation", "--check", CHECKOV_CHECKS,
                           "-o", "json", "--output-file-path", str(out), "--compact"])

    def run():
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=checkov_env())
        if proc.returncode not in (0, 1) or "Failed to run check" in proc.stderr:
            raise SystemExit(f"checkov failed ({proc.returncode}): {proc.stderr[-3000:]}")
        rep = json.loads((out / "results_json.json").read_text())
        return rep["summary"]["passed"] + rep["summary"]["failed"]
    return _timed(run)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--format", choices=("json", "yaml"), default="json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        work = Path(tmp)
        (work / "kms-iac.yaml").write_text("{}\n")  # the defaults, for both tools
        path = write_template(args.keys, args.format, work)
        print(f"template: {args.keys} keys, {args.format}, {path.stat().st_size / 1e6:.1f} MB")
        names = ("kms-iac scan template (subprocess)", "kms-iac engine (in-process)", "checkov (KMS checks only)")
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        counts: dict[str, int] = {}
        for r in range(args.rounds):
            for name, fn in zip(names, (lambda: kms_iac_subprocess(path, work), lambda: kms_iac_in_process(path),
                                        lambda: checkov_run(path, work))):
                t, c, n = fn()
                wall[name].append(t)
                cpu[name].append(c)
                counts[name] = n
                print(f"  round {r + 1}: {name:38s} {t:8.3f} s wall {c:8.3f} s CPU  ({n} results)", flush=True)
        # kms-iac reports every key rule for every key (PASS/FAIL/NOT_APPLICABLE); checkov reports
        # passed+failed for its checks that apply. Both must have judged every key.
        assert counts["kms-iac engine (in-process)"] == 15 * args.keys, counts
        assert counts["checkov (KMS checks only)"] >= 10 * args.keys, counts
        agree, differ = compare(work / "kms-iac.json", work / "checkov" / "results_json.json")
        print(f"\nverdicts: kms-iac and checkov's CKV_KMSIAC checks agree on {agree} (key, rule) pairs, differ on "
              f"{len(differ)}" + (f": {differ[:5]}" if differ else ""))
        print(f"\nmedians of {args.rounds} interleaved rounds ({os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}):")
        for k in names:
            mw, mc = statistics.median(wall[k]), statistics.median(cpu[k])
            print(f"  {k:38s} {mw:8.3f} s wall {mc:8.3f} s CPU {args.keys / mw:8.0f} keys/s")
        ck = names[2]
        for k in names[:2]:
            print(f"checkov / {k}: {statistics.median(wall[ck]) / statistics.median(wall[k]):5.1f}x wall, "
                  f"{statistics.median(cpu[ck]) / statistics.median(cpu[k]):5.1f}x CPU")
        print("goal: kms-iac >= 20x faster than checkov")
        if differ:
            raise SystemExit("kms-iac and checkov disagree")


def compare(kms_iac_json: Path, checkov_json: Path) -> tuple[int, list]:
    """(pairs agreeing, pairs differing) between kms-iac's findings and checkov's CKV_KMSIAC records.
    checkov leaves out what does not apply (UNKNOWN); kms-iac says NOT_APPLICABLE."""
    mine = {(f["resource"], f["rule"]): f["status"] for f in json.loads(kms_iac_json.read_text())["findings"]}
    results = json.loads(checkov_json.read_text())["results"]
    theirs = {}
    for kind, status in (("passed_checks", "PASS"), ("failed_checks", "FAIL")):
        for rec in results.get(kind, []):
            if rec["check_id"].startswith("CKV_KMSIAC_"):
                rule = f"KMS{int(rec['check_id'].rsplit('_', 1)[1]):03d}"
                theirs[(rec["resource"].split(".", 1)[1], rule)] = status
    differ = [(k, mine.get(k), theirs.get(k, "NOT_APPLICABLE")) for k in sorted(set(mine) | set(theirs))
              if mine.get(k) != theirs.get(k, "NOT_APPLICABLE")]
    return len(set(mine) | set(theirs)) - len(differ), differ

if __name__ == "__main__":
    main()
