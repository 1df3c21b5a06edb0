"""``kms-iac scan live``: the shared rule cases as real keys in a running local server, in moto
(standing in for AWS), and in a data dir read with no server; report formats, exit statuses,
refused reads as unknowns, and one-line errors for dead endpoints and bad input."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml

from kms_iac.backend.core import Backend
from kms_iac.backend.embedded import embedded_client
from kms_iac.rules.adapters.live import KeyReadings, view_from_readings
from kms_iac.rules.engine import evaluate
from tests.helpers import MotoServer, ServerProcess, free_port
from tests.rule_cases import ACCOUNT, CASES, GOOD_POLICY, IDENTITY_CASES, UNOBSERVABLE, Case
from tests.rules_doors_live import DOOR, create_case_key, scan_cases, scan_live, verdicts_from

pytestmark = pytest.mark.slow

LIVE_CASES = [c for c in CASES if DOOR in c.doors]
LIVE_IDENTITY_CASES = [c for c in IDENTITY_CASES if DOOR in c.doors]
UNSEEN = UNOBSERVABLE[DOOR]
# moto 5 ignores RotationPeriodInDays (EnableKeyRotation drops it, GetKeyRotationStatus never returns it),
# so a live scan of moto reads KMS's default period of 365 days.
MOTO_GAPS = {"KMS010-FAIL-period-730": {"KMS010"}}


def expected_live(case: Case) -> dict[str, str]:
    """The case's verdicts as a live scan must give them: what a live key cannot show is NOT_APPLICABLE."""
    return {r: ("NOT_APPLICABLE" if r in UNSEEN else v) for r, v in case.expect.items()}


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("live-scan") / "kms").start()
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def endpoint_scan(live_server):
    """(verdicts by case name, the --endpoint scan run, resource -> case name) over every live case."""
    return scan_cases(CASES, IDENTITY_CASES, live_server)


# -- the shared cases -------------------------------------------------------------------------


@pytest.mark.parametrize("case", LIVE_CASES, ids=lambda c: c.name)
def test_case_verdicts_over_endpoint(endpoint_scan, case: Case) -> None:
    got = endpoint_scan[0][case.name]
    assert {r: got.get(r) for r in case.expect} == expected_live(case)


def test_identity_case_verdicts(endpoint_scan) -> None:
    got = endpoint_scan[0]
    assert {c.name: got[c.name] for c in LIVE_IDENTITY_CASES} == {c.name: {"KMS016": c.expect} for c in LIVE_IDENTITY_CASES}


def test_what_a_live_key_cannot_show_is_not_applicable(endpoint_scan) -> None:
    verdicts, run, names = endpoint_scan
    assert verdicts["KMS011-FAIL-bypass"]["KMS011"] == "NOT_APPLICABLE"
    assert verdicts["KMS007-FAIL-window-7-days"]["KMS007"] == "NOT_APPLICABLE"
    # ...but a deletion window that is running is known, and checked
    assert verdicts["KMS003-FAIL-scheduled"]["KMS007"] == "PASS"
    assert run.stderr == ""  # the local server answers every read: no unknowns


def test_data_dir_gives_the_same_findings_as_the_endpoint(live_server, endpoint_scan) -> None:
    """The data dir read with no server (while the server runs on it) gives every finding the server gives."""
    _, endpoint_run, names = endpoint_scan
    run = scan_live("--data-dir", str(live_server.data_dir), "--format", "json", "--fail-on", "CRITICAL")
    assert run.returncode in (0, 1), run.stderr

    def keyed(findings):
        return {(f["resource"], f["rule"]): (f["status"], f["message"]) for f in findings
                if f["resource"] in names and f["rule"] != "KMS016"}  # identity policies came from --principals

    by_endpoint = keyed(endpoint_run.findings)
    assert by_endpoint and keyed(run.findings) == by_endpoint
    assert len(verdicts_from(run.findings, names)) == len(LIVE_CASES)  # every key, no identities
    # the server still answers after the scan read its store
    assert live_server.client().list_keys(Limit=1)["Keys"]
    # no rule reads grants yet: leaving ListGrants out changes nothing
    no_grants = scan_live("--endpoint", live_server.url, "--no-grants", "--format", "json", "--fail-on", "CRITICAL")
    assert keyed(no_grants.findings) == by_endpoint


def test_moto_standing_in_for_aws(monkeypatch) -> None:
    """The same cases in moto: the scan works through what moto lacks, and the verdicts agree."""
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)  # the cases' policies name this account
    with MotoServer() as moto:
        verdicts, run, names = scan_cases(CASES, IDENTITY_CASES, moto, strict=False)
        # --aws: the standard credential chain and endpoint configuration (AWS_ENDPOINT_URL_KMS here)
        as_aws = scan_live("--aws", "--region", "us-east-1", "--format", "json", "--fail-on", "CRITICAL",
                           env={"AWS_ENDPOINT_URL_KMS": moto.url})
    assert "Traceback" not in run.stderr
    assert as_aws.returncode in (0, 1), as_aws.stderr
    assert verdicts_from(as_aws.findings, names) == {n: v for n, v in verdicts.items() if not n.startswith("KMS016")}
    for case in LIVE_CASES:
        expected = {r: v for r, v in expected_live(case).items() if r not in MOTO_GAPS.get(case.name, ())}
        assert {r: verdicts[case.name].get(r) for r in expected} == expected, case.name
    for case in LIVE_IDENTITY_CASES:
        assert verdicts[case.name] == {"KMS016": case.expect}


# -- formats ------------------------------------------------------------------------------------


def test_config_format_is_aws_config_evaluations(live_server, endpoint_scan) -> None:
    _, _, names = endpoint_scan
    run = scan_live("--endpoint", live_server.url, "--format", "config", "--fail-on", "CRITICAL")
    assert run.returncode in (0, 1), run.stderr
    groups = {g["ConfigRuleName"]: g["Evaluations"] for g in json.loads(run.stdout)["ConfigRuleEvaluations"]}
    assert {"cmk-backing-key-rotation-enabled", "kms-cmk-not-scheduled-for-deletion", "kms-iac-kms001"} <= set(groups)
    key_id = {n: arn.rsplit("/", 1)[-1] for arn, n in names.items()}
    deletion = {e["ComplianceResourceId"]: e for e in groups["kms-cmk-not-scheduled-for-deletion"]}
    assert deletion[key_id["KMS003-FAIL-scheduled"]]["ComplianceType"] == "NON_COMPLIANT"
    assert deletion[key_id["compliant-baseline"]]["ComplianceType"] == "COMPLIANT"
    rotation = {e["ComplianceResourceId"]: e for e in groups["cmk-backing-key-rotation-enabled"]}
    assert rotation[key_id["KMS002-FAIL-rotation-off"]]["ComplianceType"] == "NON_COMPLIANT"
    assert rotation[key_id["KMS002-NA-hmac"]]["ComplianceType"] == "NOT_APPLICABLE"
    for evs in groups.values():
        for ev in evs:
            assert ev["ComplianceResourceType"] == "AWS::KMS::Key"
            assert set(ev) == {"ComplianceResourceType", "ComplianceResourceId", "ComplianceType", "Annotation",
                               "OrderingTimestamp"}
            assert ev["Annotation"].startswith("KMS0") and len(ev["Annotation"]) <= 256


@pytest.fixture
def data_dir(tmp_path):
    """A data dir with one compliant key, made through the embedded client."""
    d = tmp_path / "kms"
    b = Backend(d)
    kms = embedded_client(backend=b)
    case = next(c for c in CASES if c.name == "compliant-baseline")
    create_case_key(kms, case)
    b.close()
    return d


def test_exit_statuses(data_dir) -> None:
    assert scan_live("--data-dir", str(data_dir), "--format", "json").returncode == 0
    b = Backend(data_dir)
    kms = embedded_client(backend=b)
    arn = kms.list_keys()["Keys"][0]["KeyArn"]
    kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=30)
    b.close()
    assert scan_live("--data-dir", str(data_dir), "--fail-on", "HIGH").returncode == 1
    assert scan_live("--data-dir", str(data_dir), "--fail-on", "CRITICAL").returncode == 0
    # a suppression with a reason lets the pipeline through
    cfg = data_dir.parent / "kms-iac.yaml"
    cfg.write_text(yaml.safe_dump({"suppressions": [{"rule": "KMS003", "resource": arn, "reason": "retiring tenant"}]}))
    assert scan_live("--data-dir", str(data_dir), "--fail-on", "HIGH", "--config", str(cfg)).returncode == 0


def test_text_report_grouped_by_key(data_dir, tmp_path) -> None:
    run = scan_live("--data-dir", str(data_dir))
    assert run.returncode == 0 and "compliant" in run.stdout and "1 resource(s), 15 checks: 0 failed" in run.stdout
    run = scan_live("--data-dir", str(data_dir), "--show-passed", "-o", str(tmp_path / "report.txt"))
    text = (tmp_path / "report.txt").read_text()
    assert run.stdout == "" and "KMS002" in text and "PASS" in text and "arn:aws:kms:us-east-1" in text
    assert run.stderr == ""  # no progress bar when stderr is not a terminal


def test_data_dir_edge_keys_and_regions(tmp_path) -> None:
    """AWS managed keys are not applicable, expiring imported material fails KMS009, --region picks regions."""
    d = tmp_path / "kms"
    b = Backend(d)
    kms = embedded_client(backend=b)
    kms.encrypt(KeyId="alias/aws/s3", Plaintext=b"x")  # creates the AWS managed key
    expiring = Case("imported-expiring", {"origin": "EXTERNAL", "enable_key_rotation": False, "rotation_period_in_days": None,
                                           "valid_to": dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=10)}, {})
    imported = create_case_key(kms, expiring)
    eu = embedded_client(backend=b, region="eu-west-1").create_key(Description="eu")["KeyMetadata"]["Arn"]
    b.close()
    run = scan_live("--data-dir", str(d), "--format", "json", "--fail-on", "CRITICAL")
    by = {}
    for f in run.findings:
        by.setdefault(f["resource"], {})[f["rule"]] = (f["status"], f["message"])
    managed = next(r for r, v in by.items() if v["KMS002"][1].startswith("AWS managed key"))
    assert {s for s, _ in by[managed].values()} == {"NOT_APPLICABLE"}
    assert by[imported]["KMS009"][0] == "FAIL" and "expires on" in by[imported]["KMS009"][1]
    assert by[imported]["KMS002"][0] == "NOT_APPLICABLE"
    assert eu in by
    only_eu = scan_live("--data-dir", str(d), "--region", "eu-west-1", "--format", "json", "--fail-on", "CRITICAL")
    assert {f["resource"] for f in only_eu.findings} == {eu}


def test_expired_imported_material_as_aws_reports_it() -> None:
    """AWS leaves an expired key PendingImport and keeps its expiration model: KMS009 fails."""
    now = dt.datetime.now(dt.timezone.utc)
    md = {"Arn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab", "AWSAccountId": ACCOUNT,
          "KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "KeyState": "PendingImport", "Enabled": False,
          "Origin": "EXTERNAL", "KeyManager": "CUSTOMER", "KeySpec": "SYMMETRIC_DEFAULT", "KeyUsage": "ENCRYPT_DECRYPT",
          "ExpirationModel": "KEY_MATERIAL_EXPIRES", "ValidTo": now - dt.timedelta(days=1)}
    view = view_from_readings(KeyReadings(md, policy=json.dumps(GOOD_POLICY), tags=[], aliases=[]), now)
    assert view.material_expired and view.valid_to is None and view.bypass_lockout is None
    kms009 = next(f for f in evaluate([view]) if f.rule == "KMS009")
    assert kms009.status == "FAIL" and "has expired" in kms009.message
    never_imported = view_from_readings(KeyReadings({**md, "ExpirationModel": None, "ValidTo": None}, policy="{}"), now)
    assert not never_imported.material_expired


# -- refused reads, credentials, connection and usage errors ---------------------------------


ROOT_KEY = {"arn": f"arn:aws:iam::{ACCOUNT}:root", "access_key_id": "AKIALIVEROOT00000001", "secret_access_key": "root-secret"}
AUDITOR = {"arn": f"arn:aws:iam::{ACCOUNT}:role/Auditor", "access_key_id": "AKIALIVEAUDITOR00001",
           "secret_access_key": "auditor-secret", "policies": [{"Version": "2012-10-17", "Statement": [
               {"Effect": "Allow", "Action": ["kms:ListKeys", "kms:DescribeKey", "kms:ListAliases"], "Resource": "*"}]}]}
NOBODY = {"arn": f"arn:aws:iam::{ACCOUNT}:role/Nobody", "access_key_id": "AKIALIVENOBODY000001",
          "secret_access_key": "nobody-secret", "policies": []}


@pytest.fixture(scope="module")
def authorizing_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("live-authz")
    principals = d / "principals.yaml"
    principals.write_text(yaml.safe_dump({"accounts": {ACCOUNT: {"principals": [ROOT_KEY, AUDITOR, NOBODY]}}}))
    srv = ServerProcess(d / "kms", "--principals", str(principals)).start()
    kms = srv.client(aws_access_key_id=ROOT_KEY["access_key_id"], aws_secret_access_key=ROOT_KEY["secret_access_key"])
    create_case_key(kms, next(c for c in CASES if c.name == "compliant-baseline"))
    yield srv
    assert srv.stop() == 0


def creds(p: dict) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": p["access_key_id"], "AWS_SECRET_ACCESS_KEY": p["secret_access_key"]}


def test_refused_reads_are_unknown_not_crashes(authorizing_server) -> None:
    run = scan_live("--endpoint", authorizing_server.url, "--format", "json", "--fail-on", "CRITICAL", env=creds(AUDITOR))
    assert run.returncode == 0, run.stderr
    got = {f["rule"]: f["status"] for f in run.findings}
    assert got["KMS001"] == got["KMS004"] == got["KMS002"] == got["KMS012"] == "NOT_APPLICABLE"  # policy, rotation, tags unknown
    assert got["KMS008"] == got["KMS015"] == got["KMS003"] == "PASS"  # DescribeKey was allowed
    assert "unknown: GetKeyPolicy (AccessDeniedException)" in run.stderr and "Traceback" not in run.stderr
    as_root = scan_live("--endpoint", authorizing_server.url, "--format", "json", env=creds(ROOT_KEY))
    assert as_root.returncode == 0 and as_root.stderr == ""
    assert {f["rule"]: f["status"] for f in as_root.findings}["KMS001"] == "PASS"


def test_rejected_credentials_and_refused_listing_are_one_line(authorizing_server) -> None:
    bad = scan_live("--endpoint", authorizing_server.url, env={"AWS_ACCESS_KEY_ID": "AKIANOTLISTED0000001",
                                                               "AWS_SECRET_ACCESS_KEY": "nope"})
    assert bad.returncode == 2 and "rejected the credentials" in one_error_line(bad.stderr) and bad.stdout == ""
    nobody = scan_live("--endpoint", authorizing_server.url, env=creds(NOBODY))
    assert nobody.returncode == 2 and "refused ListKeys" in one_error_line(nobody.stderr)


def test_dead_endpoint_fails_at_once_with_one_line() -> None:
    """Nothing listens on the port: one attempt, one line, exit 2 (the subprocess timeout only guards a hang)."""
    url = f"http://127.0.0.1:{free_port()}"
    run = scan_live("--endpoint", url)
    assert run.returncode == 2 and run.stdout == ""
    line = one_error_line(run.stderr)
    assert f"cannot connect to {url}" in line


def test_aws_without_a_region_is_one_line() -> None:
    run = scan_live("--aws", env={"AWS_DEFAULT_REGION": "", "AWS_REGION": "", "AWS_CONFIG_FILE": "/nonexistent"})
    assert run.returncode == 2 and "no AWS region" in one_error_line(run.stderr)


@pytest.mark.parametrize("args, says", [
    (["--data-dir", "{tmp}/missing"], "no such data dir"),
    (["--data-dir", "{tmp}"], "is not a kms-iac data dir"),
    (["--endpoint", "localhost:4599"], "must be an http:// or https:// URL"),
    (["--endpoint", "http://127.0.0.1:9", "--data-dir", "{tmp}"], "choose one source"),
    (["--data-dir", "{tmp}", "--format", "xml"], "Invalid value for '--format'"),
    (["--data-dir", "{tmp}", "--concurrency", "0"], "Invalid value for '--concurrency'"),
    (["--principals", "{tmp}/nope.yaml", "--data-dir", "{tmp}"], "cannot read the file"),
    (["--config", "{tmp}/bad.yaml", "--data-dir", "{tmp}"], "bad.yaml"),
])
def test_usage_errors_are_one_line(tmp_path, args, says) -> None:
    (tmp_path / "bad.yaml").write_text("max_rotation: 3\n")
    run = scan_live(*[a.format(tmp=tmp_path) for a in args])
    assert run.returncode == 2 and says in one_error_line(run.stderr), run.stderr


def test_scan_reads_keys_concurrently(live_server, endpoint_scan) -> None:
    """--concurrency 1 and 16 give the same findings (the thread pool changes only the order of the reads)."""
    _, _, names = endpoint_scan

    def keyed(run):
        assert run.returncode in (0, 1), run.stderr
        return {(f["resource"], f["rule"]): f["status"] for f in run.findings if f["resource"] in names}

    one = keyed(scan_live("--endpoint", live_server.url, "--format", "json", "--concurrency", "1"))
    many = keyed(scan_live("--endpoint", live_server.url, "--format", "json", "--concurrency", "16"))
    assert one == many and len(one) == 15 * len(LIVE_CASES)


def test_progress_bar_on_a_terminal_only(tmp_path) -> None:
    """A large account shows a progress bar when stderr is a terminal (a pty here), and none otherwise."""
    import os
    import pty
    import subprocess
    import sys
    import uuid

    from kms_iac.backend.seed import seed
    import kms_iac.cli.scan  # noqa: F401 - the scan group first: it registers scan_live
    from kms_iac.cli.scan_live import LARGE_ACCOUNT
    from tests.rules_doors_live import ROOT_DIR

    d = tmp_path / "kms"
    b = Backend(d)
    seed(b, {"keys": [{"id": str(uuid.uuid4()), "tags": {"tenant": f"t{i}"}} for i in range(LARGE_ACCOUNT)]})
    b.close()
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "kms_iac", "scan", "live", "--data-dir", str(d), "--format", "json"],
                              stdout=subprocess.PIPE, stderr=slave, cwd=tmp_path, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT_DIR), "COLUMNS": "100"})
        os.close(slave)
        slave = -1
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal's other side is closed: everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if slave != -1:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 1  # no aliases: KMS012
    assert b"reading keys" in shown and f"{LARGE_ACCOUNT}/{LARGE_ACCOUNT}".encode() in shown
    assert len(json.loads(proc.stdout)["findings"]) == 15 * LARGE_ACCOUNT
    piped = scan_live("--data-dir", str(d), "--format", "json")
    assert piped.stderr == ""


def test_an_endpoint_that_is_not_kms_is_one_line(tmp_path) -> None:
    """Something answers HTTP on the port, but not KMS (every POST gets 501): exit 2, one line."""
    import http.server
    import threading

    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        run = scan_live("--endpoint", f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert run.returncode == 2 and "ListKeys in us-east-1 failed" in one_error_line(run.stderr)
