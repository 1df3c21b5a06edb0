"""Errors a person can act on: every bad input to the real ``kms-iac`` console script gets one
``Error: <what is wrong>; <what to do>`` line on stderr, no traceback, its documented exit status
(kms_iac/cli/errors.py: 2 input, 3 data dir, 4 network; ``scan`` keeps 2 for every error), and
leaves the data dir exactly as it was (a hash of the whole directory before and after).

Each test runs ``.venv/bin/kms-iac`` as a subprocess in its own temporary directory; ``serve``
cases use ports the test holds or port 0 and wait for the process to exit (bounded), never sleep.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from kms_iac.cli.errors import EXIT_DATA_DIR, EXIT_NETWORK, EXIT_USAGE

KMS_IAC = Path(sys.executable).with_name("kms-iac")  # the installed console script, as users run it
KEY_ID = "0b7f3c1e-1111-4222-8333-944445555666"
ROOT_ARN = "arn:aws:iam::111122223333:root"
SEED = {"keys": [{"id": KEY_ID, "description": "orders", "aliases": ["alias/orders"]}]}


def kms_iac(*args: str | Path, cwd: Path | None = None, prefix: tuple[str, ...] = (),
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the console script; bounded, so a command that would hang (a server that started
    despite a bad input) fails the test instead of blocking it."""
    return subprocess.run([*prefix, str(KMS_IAC), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=90, env={**os.environ, "COLUMNS": "200", **(env or {})})


def one_error(proc: subprocess.CompletedProcess, status: int, *needles: str) -> str:
    """The run failed with ``status`` and exactly one stderr line, ``Error: ...; ...``, naming ``needles``."""
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    lines = proc.stderr.splitlines()
    assert proc.returncode == status, (proc.returncode, out)
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "; " in lines[0], proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def tree_hash(path: Path, skip: tuple[str, ...] = ()) -> str | None:
    """A digest of every name, kind and content under ``path`` (None when it does not exist)."""
    if not path.exists():
        return None
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        if rel in skip:
            continue
        h.update(rel.encode() + b"\0")
        h.update(b"d" if p.is_dir() else b"f" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory) -> Path:
    """A data dir holding one key (alias/orders), made once by the real `local seed`."""
    base = tmp_path_factory.mktemp("seeded")
    seed_file = base / "seed.yaml"
    seed_file.write_text(yaml.safe_dump(SEED))
    run = kms_iac("local", "seed", seed_file, "--data-dir", base / "kms")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (base / "kms").iterdir()) == ["audit.log", "kms.sqlite3", "kms.sqlite3-commits", "root.key"]
    return base / "kms"


@pytest.fixture
def data_dir(seeded_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of the seeded data dir."""
    return Path(shutil.copytree(seeded_template, tmp_path / "kms"))


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(SEED))
    return path


@pytest.fixture
def binary_file(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.yaml"
    path.write_bytes(b"\xff\xfe\x00\x9c" + bytes(range(256)) * 4)  # not UTF-8 at the first byte
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port this test listens on, so a server asked for it finds it taken."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def dead_endpoint() -> Iterator[str]:
    """A URL that refuses connections: a port bound by this test and never listened on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def serve(data_dir: Path, *extra: str | Path) -> subprocess.CompletedProcess:
    return kms_iac("local", "serve", "--port", "0", "--data-dir", data_dir, *extra)


# -- local serve: the address ------------------------------------------------------------------


def test_serve_on_a_port_in_use(data_dir, busy_port):
    before = tree_hash(data_dir)
    run = kms_iac("local", "serve", "--port", str(busy_port), "--data-dir", data_dir)
    one_error(run, EXIT_NETWORK, f"127.0.0.1:{busy_port}", "already in use", "--port")
    assert tree_hash(data_dir) == before


@pytest.mark.parametrize("host", ["nosuch.invalid", "999.1.1.1"])
def test_serve_on_an_invalid_host(tmp_path, host):
    run = kms_iac("local", "serve", "--host", host, "--port", "0", "--data-dir", tmp_path / "kms")
    one_error(run, EXIT_USAGE, repr(host), "127.0.0.1")
    assert not (tmp_path / "kms").exists()


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_serve_port_out_of_range(tmp_path, port):
    run = kms_iac("local", "serve", "--port", port, "--data-dir", tmp_path / "kms")
    one_error(run, EXIT_USAGE, "--port", "0<=x<=65535", "kms-iac local serve --help")
    assert not (tmp_path / "kms").exists()


def test_serve_requests_per_second_must_be_positive(tmp_path):
    run = kms_iac("local", "serve", "--requests-per-second", "-1", "--data-dir", tmp_path / "kms")
    one_error(run, EXIT_USAGE, "--requests-per-second", "x>0")
    assert not (tmp_path / "kms").exists()


# -- the data dir ---------------------------------------------------------------------------------


def test_empty_data_dir_is_refused(tmp_path):
    run = kms_iac("local", "serve", "--port", "0", "--data-dir", "", cwd=tmp_path)
    one_error(run, EXIT_USAGE, "--data-dir", "empty path")
    assert list(tmp_path.iterdir()) == []  # not the current directory either


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("where", ["/proc/kms-iac-data", "/proc"])
def test_proc_data_dir(where):
    one_error(serve(Path(where)), EXIT_DATA_DIR, where, "writable directory")


@pytest.fixture
def unprivileged() -> Iterator[tuple[Path, tuple[str, ...]]]:
    """(a directory, a command prefix) to run kms-iac as a user who cannot write where it is told.

    Root ignores permissions, so as root the command runs as ``nobody`` (setpriv) in a
    world-readable temporary directory; otherwise as the test's own user.
    """
    base = Path(tempfile.mkdtemp(prefix="kms-iac-cli-"))
    try:
        if os.geteuid() != 0:
            yield base, ()
            return
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot test an unwritable directory")
        prefix = (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
        if kms_iac("--version", prefix=prefix).returncode != 0:
            pytest.skip(f"user nobody cannot run {KMS_IAC}")
        base.chmod(0o755)
        yield base, prefix
    finally:
        for p in (base, *base.rglob("*")):
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("existing", [False, True], ids=["to-create", "existing"])
def test_unwritable_data_dir(unprivileged, existing):
    base, prefix = unprivileged
    read_only = base / "read-only"
    read_only.mkdir()
    target = read_only / "kms" if not existing else read_only
    read_only.chmod(0o555)
    before = tree_hash(read_only)
    run = kms_iac("local", "serve", "--port", "0", "--data-dir", target, prefix=prefix, env={"HOME": str(base)})
    one_error(run, EXIT_DATA_DIR, str(target), "Permission denied", "writable directory")
    assert tree_hash(read_only) == before


DAMAGE = {
    "corrupt database": (lambda d: (d / "kms.sqlite3").write_bytes(os.urandom(8192)),
                         ("kms.sqlite3", "not a readable kms-iac database", "backup")),
    "truncated root.key": (lambda d: (d / "root.key").write_bytes((d / "root.key").read_bytes()[:10]),
                           ("root.key is 10 bytes", "restore root.key")),
    "deleted root.key": (lambda d: (d / "root.key").unlink(),
                         ("root.key is missing", "kms.sqlite3 holds keys", "restore root.key")),
}


@pytest.mark.parametrize("command", ["serve", "seed", "simulate"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_data_dir_is_refused_and_left_alone(data_dir, seed_file, damage, command):
    """Never "repaired": above all, no new root.key next to keys wrapped under the old one
    (it used to be created, and every Encrypt then failed with KMSInternalException)."""
    harm, needles = DAMAGE[damage]
    harm(data_dir)
    before = tree_hash(data_dir)
    if command == "serve":
        run = serve(data_dir)
    elif command == "seed":
        other = seed_file.with_name("other.yaml")
        other.write_text(yaml.safe_dump({"keys": [{"id": "aaaaaaaa-1111-4222-8333-944445555666"}]}))
        run = kms_iac("local", "seed", other, "--data-dir", data_dir)
    else:
        run = kms_iac("policy", "simulate", "--data-dir", data_dir, "--key", "alias/orders", "--principal", ROOT_ARN,
                      "--action", "kms:Decrypt")
    one_error(run, EXIT_DATA_DIR, *needles)
    assert tree_hash(data_dir) == before


def test_binary_principals_file(tmp_path, binary_file):
    run = serve(tmp_path / "kms", "--principals", binary_file)
    one_error(run, EXIT_USAGE, str(binary_file), "not UTF-8", "principals file")
    assert not (tmp_path / "kms").exists()


# -- local seed -----------------------------------------------------------------------------------


def test_binary_seed_file(tmp_path, binary_file):
    one_error(kms_iac("local", "seed", binary_file, "--data-dir", tmp_path / "kms"), EXIT_USAGE,
              str(binary_file), "not UTF-8", "seed file")
    assert not (tmp_path / "kms").exists()


def test_missing_seed_file(tmp_path):
    one_error(kms_iac("local", "seed", tmp_path / "nope.yaml", "--data-dir", tmp_path / "kms"), EXIT_USAGE,
              "nope.yaml", "does not exist")
    assert not (tmp_path / "kms").exists()


def test_invalid_seed_is_checked_before_the_data_dir_is_made(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"keys": [{"id": KEY_ID, "rotation": {"enabled": True, "period_days": "often"}}]}))
    one_error(kms_iac("local", "seed", bad, "--data-dir", tmp_path / "kms"), EXIT_USAGE, "period_days", "seed file")
    assert not (tmp_path / "kms").exists()


def test_seed_of_an_existing_key_changes_nothing(data_dir, seed_file):
    # The commit beacon is told of the rolled-back transaction (a fresh token: readers look once
    # and find nothing new); it holds no state
    unstated = ("audit.log", "kms.sqlite3-commits")
    before = tree_hash(data_dir, skip=unstated)
    one_error(kms_iac("local", "seed", seed_file, "--data-dir", data_dir), EXIT_USAGE, KEY_ID, "already exists")
    assert tree_hash(data_dir, skip=unstated) == before


# -- local audit ----------------------------------------------------------------------------------


def test_audit_since_unparseable(data_dir):
    one_error(kms_iac("local", "audit", "--data-dir", data_dir, "--since", "yesterday"), EXIT_USAGE,
              "'yesterday'", "ISO 8601", "2026-11-28T12:00:00Z", "2h")


def test_audit_of_a_missing_data_dir(tmp_path):
    one_error(kms_iac("local", "audit", "--data-dir", tmp_path / "nonexistent"), EXIT_DATA_DIR,
              "no such data dir", "nonexistent")
    assert not (tmp_path / "nonexistent").exists()


def test_audit_of_a_directory_that_is_not_a_data_dir(tmp_path):
    one_error(kms_iac("local", "audit", "--data-dir", tmp_path), EXIT_DATA_DIR, "not a kms-iac data dir")


def test_audit_negative_limit(data_dir):
    one_error(kms_iac("local", "audit", "--data-dir", data_dir, "--limit", "-5"), EXIT_USAGE, "--limit", "x>=0")


def test_audit_skips_garbage_lines_with_a_warning(data_dir):
    """A binary audit.log is not a crash: its unreadable lines are counted, the rest shown."""
    with (data_dir / "audit.log").open("ab") as f:
        f.write(b"\xff\xfe garbage \x00\n")
    run = kms_iac("local", "audit", "--data-dir", data_dir, "--json")
    assert run.returncode == 0 and "Traceback" not in run.stderr
    assert run.stderr.startswith("warning: skipped 1 line(s)") and run.stdout == ""


# -- policy simulate / explain ------------------------------------------------------------------


def simulate(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return kms_iac("policy", "simulate", "--data-dir", data_dir, *args)


def test_simulate_unknown_key(data_dir):
    before = tree_hash(data_dir, skip=("audit.log",))
    run = simulate(data_dir, "--key", "alias/nope", "--principal", ROOT_ARN, "--action", "kms:Decrypt")
    one_error(run, EXIT_USAGE, "'alias/nope'", "no such key", "--region")
    assert tree_hash(data_dir, skip=("audit.log",)) == before


def test_simulate_principal_not_an_arn(data_dir):
    before = tree_hash(data_dir)
    run = simulate(data_dir, "--key", "alias/orders", "--principal", "bob", "--action", "kms:Decrypt")
    one_error(run, EXIT_USAGE, "'bob'", "arn:aws:iam::ACCOUNT:root", "arn:aws:iam::ACCOUNT:role/NAME")
    assert tree_hash(data_dir) == before  # refused before the data dir was opened


@pytest.mark.parametrize("action,hint", [
    ("kms:Decrpyt", "did you mean kms:Decrypt?"),
    ("kms:GenerateDataKy", "did you mean kms:GenerateDataKey?"),
    ("Encrypt", "did you mean kms:Encrypt?"),
    ("kms:ReEncrypt", "kms:ReEncryptFrom"),
    ("kms:Decrypt*", "a pattern"),
])
def test_simulate_unknown_action_suggests_the_closest(data_dir, action, hint):
    run = simulate(data_dir, "--key", "alias/orders", "--principal", ROOT_ARN, "--action", action)
    one_error(run, EXIT_USAGE, repr(action), hint)


def test_simulate_action_is_case_insensitive(data_dir):
    run = simulate(data_dir, "--key", "alias/orders", "--principal", ROOT_ARN, "--action", "KMS:decrypt")
    assert run.returncode == 0 and run.stdout.startswith("kms:Decrypt: Allowed"), run.stdout + run.stderr


def test_simulate_missing_data_dir(tmp_path):
    run = simulate(tmp_path / "nonexistent", "--key", "alias/orders", "--principal", ROOT_ARN, "--action", "kms:Decrypt")
    one_error(run, EXIT_DATA_DIR, "no such data dir")
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize("command", ["simulate", "explain"])
def test_policy_against_a_dead_endpoint(dead_endpoint, command):
    args = ["--principal", ROOT_ARN, "--action", "kms:Decrypt"] if command == "simulate" else []
    run = kms_iac("policy", command, "--endpoint", dead_endpoint, "--key", "alias/orders", *args)
    one_error(run, EXIT_NETWORK, dead_endpoint, "--endpoint")


def test_policy_endpoint_must_be_a_url():
    run = kms_iac("policy", "explain", "--endpoint", "localhost:4599", "--key", "alias/orders")
    one_error(run, EXIT_USAGE, "'localhost:4599'", "http://")


# -- other commands -----------------------------------------------------------------------------


def test_scan_live_dead_endpoint_keeps_the_scan_contract(dead_endpoint):
    """design.md: every scan error is exit 2 with one line saying why."""
    one_error(kms_iac("scan", "live", "--endpoint", dead_endpoint), 2, f"cannot connect to {dead_endpoint}")


def test_scan_live_damaged_data_dir_keeps_the_scan_contract(data_dir):
    (data_dir / "root.key").unlink()
    before = tree_hash(data_dir)
    one_error(kms_iac("scan", "live", "--data-dir", data_dir), 2, "root.key is missing")
    assert tree_hash(data_dir) == before


def test_scan_template_missing_path(tmp_path):
    one_error(kms_iac("scan", "template", tmp_path / "nope.yaml"), 2, "nope.yaml", "no such file")


@pytest.mark.parametrize("pins,needle", [
    (("--user-pin", "short"), "7 to 32 characters"),
    (("--user-pin", ""), "7 to 32 characters"),
    (("--so-pin", "123"), "4 to 255 characters"),
])
def test_hsm_create_cluster_bad_pins(tmp_path, pins, needle):
    run = kms_iac("local", "hsm", "create-cluster", "c1", "--data-dir", tmp_path / "kms", *pins)
    one_error(run, EXIT_USAGE, needle, "--user-pin")
    assert not (tmp_path / "kms").exists()


def test_unknown_option_is_one_line():
    one_error(kms_iac("local", "serve", "--prot", "1"), EXIT_USAGE, "--prot", "kms-iac local serve --help")


@pytest.mark.parametrize("option,value,needle", [
    ("--account", "1234", "not an AWS account id"),
    ("--region", "US_EAST", "not an AWS Region name"),
])
def test_serve_account_and_region_are_checked(tmp_path, option, value, needle):
    one_error(kms_iac("local", "serve", "--port", "0", option, value, "--data-dir", tmp_path / "kms"), EXIT_USAGE,
              repr(value), needle)
    assert not (tmp_path / "kms").exists()
