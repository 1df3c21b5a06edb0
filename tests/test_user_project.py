"""kms-iac in a user's own project: the wheel, `kms-iac new`, `kms-iac pulumi`, and the engine's
environment.

The end-to-end test does what a user does, outside this repository: builds the wheel from the
source tree (the files git would commit, no stale build state), installs it into a fresh
virtualenv (pip resolves its dependencies), scaffolds a project with `kms-iac new`, and runs
`kms-iac pulumi preview/up/destroy` with a PATH that holds neither that virtualenv's bin nor
the repository's: the provider must come from the project's `plugins:` entry, the CLI from
kms-iac's toolchain, and the engine must not warn about a plugin found on $PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from kms_iac.backend.embedded import embedded_client
from kms_iac.components.fleet import load_tenants_file
from kms_iac.toolchain._common import Reporter, ToolchainError
from kms_iac.toolchain.pulumi_cli import DEFAULT_PASSPHRASE, ensure_pulumi, pulumi_env, pinned_version, source_stamp
from tests.helpers import ROOT

PATH_WARNING = "from $PATH"
PROVIDER = "pulumi-resource-kms-iac"


def kms_iac(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The repository's kms-iac, as a user runs it (a subprocess; exit status and streams)."""
    return subprocess.run([sys.executable, "-m", "kms_iac", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("Error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


# --- kms-iac new ---------------------------------------------------------------------------------

def test_new_writes_a_project_wired_to_this_virtualenv(tmp_path) -> None:
    proc = kms_iac("new", "tenants-demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    project = tmp_path / "tenants-demo"
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == sorted([".gitignore", ".pulumi-state/.gitignore", "Pulumi.yaml", "README.md", "__main__.py",
                            "tenants.yaml"])

    doc = yaml.safe_load((project / "Pulumi.yaml").read_text())
    assert doc["name"] == "tenants-demo"
    assert doc["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": sys.prefix}}
    (plugin,) = doc["plugins"]["providers"]
    assert plugin == {"name": "kms-iac", "path": str(Path(sys.prefix) / "bin")}
    assert (Path(plugin["path"]) / PROVIDER).is_file()  # what the engine will start
    assert doc["backend"] == {"url": "file://./.pulumi-state"}
    assert doc["config"] == {"kms-iac:target": "local"}

    compile((project / "__main__.py").read_text(), "__main__.py", "exec")
    tenants, defaults = load_tenants_file(project / "tenants.yaml")
    assert [t["tenant"] for t in tenants] == ["acme", "globex"] and defaults["key_administrators"]
    readme = (project / "README.md").read_text()
    assert "${" not in readme and "pulumi stack init dev" in readme and pinned_version() in readme
    assert ".kms-iac/" in (project / ".gitignore").read_text().splitlines()
    assert (project / ".pulumi-state" / ".gitignore").read_text().splitlines()[-2:] == ["*", "!.gitignore"]
    assert "Next:" in proc.stdout and "pulumi stack init dev" in proc.stdout and "pulumi up" in proc.stdout


def test_new_refuses_a_non_empty_directory_unless_forced(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    err = one_error_line(kms_iac("new", str(tmp_path), cwd=tmp_path))
    assert "is not empty" in err and "--force" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written

    assert kms_iac("new", str(tmp_path), "--force", cwd=tmp_path).returncode == 0
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "Pulumi.yaml").is_file()


def test_new_in_the_current_directory(tmp_path) -> None:
    project = tmp_path / "My Keys!"
    project.mkdir()
    proc = kms_iac("new", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((project / "Pulumi.yaml").read_text())["name"] == "My-Keys"
    assert "  cd " not in proc.stdout  # already there


def test_new_checks_the_virtualenv_and_the_name(tmp_path) -> None:
    err = one_error_line(kms_iac("new", "p1", "--venv", str(tmp_path / "nowhere"), cwd=tmp_path))
    assert "is not a virtualenv" in err
    bare = tmp_path / "bare-venv"
    (bare / "bin").mkdir(parents=True)
    (bare / "bin" / "python").symlink_to(sys.executable)
    err = one_error_line(kms_iac("new", "p2", "--venv", str(bare), cwd=tmp_path))
    assert "kms-iac is not installed in" in err and "pip install kms-iac" in err
    err = one_error_line(kms_iac("new", "p3", "--name", "no spaces", cwd=tmp_path))
    assert "not a Pulumi project name" in err
    assert not any((tmp_path / p).exists() for p in ("p1", "p2", "p3"))


def test_new_writes_a_virtualenv_inside_the_project_relative_to_it(tmp_path) -> None:
    """The project and its venv move together (e.g. `python -m venv venv` inside a clone)."""
    project = tmp_path / "proj"
    venv_bin = project / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    (venv_bin / PROVIDER).symlink_to(Path(sys.prefix) / "bin" / PROVIDER)
    assert kms_iac("new", str(project), "--venv", str(project / "venv"), "--force", cwd=tmp_path).returncode == 0
    doc = yaml.safe_load((project / "Pulumi.yaml").read_text())
    assert doc["runtime"]["options"]["virtualenv"] == "venv"
    assert doc["plugins"]["providers"][0]["path"] == "venv/bin"


# --- the environment the Pulumi CLI runs in ---------------------------------------------------------

def test_pulumi_env_adds_defaults_and_the_callers_pulumi_settings_win(tmp_path) -> None:
    user = {"PATH": "/usr/bin:/bin", "PULUMI_SKIP_UPDATE_CHECK": "false", "PULUMI_EXPERIMENTAL": "1",
            "PULUMI_CONFIG_PASSPHRASE_FILE": "/secrets/pass", "HOME": "/home/u"}
    env = pulumi_env(tmp_path, user)
    assert env["PATH"] == f"{tmp_path}:/usr/bin:/bin"  # the pinned CLI first
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "false" and env["PULUMI_EXPERIMENTAL"] == "1"
    assert env["PULUMI_CONFIG_PASSPHRASE_FILE"] == "/secrets/pass" and "PULUMI_CONFIG_PASSPHRASE" not in env
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true" and env["HOME"] == "/home/u"

    bare = pulumi_env(tmp_path, {"PATH": "/bin"})
    assert bare["PULUMI_CONFIG_PASSPHRASE"] == DEFAULT_PASSPHRASE and bare["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert pulumi_env(tmp_path, {"PULUMI_CONFIG_PASSPHRASE": ""})["PULUMI_CONFIG_PASSPHRASE"] == ""  # set, if empty


def test_engine_env_passes_user_pulumi_settings_and_isolates_state(tmp_path, monkeypatch) -> None:
    from kms_iac.engine import VENV_BIN, engine_env

    monkeypatch.setenv("PULUMI_HOME", "/somewhere/else")
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://someone-elses-bucket")
    monkeypatch.setenv("PULUMI_EXPERIMENTAL", "1")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "users-own")
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", "http://elsewhere")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    env = engine_env(tmp_path / "bin", tmp_path / "state", tmp_path / "home", {"KMS_IAC_X": "y"})
    assert env["PULUMI_HOME"] == str(tmp_path / "home") and env["PULUMI_BACKEND_URL"] == f"file://{tmp_path}/state"
    assert env["PULUMI_EXPERIMENTAL"] == "1" and env["PULUMI_CONFIG_PASSPHRASE"] == "users-own"
    assert env["PULUMI_IGNORE_AMBIENT_PLUGINS"] == "true" and env["KMS_IAC_X"] == "y"
    assert "AWS_ENDPOINT_URL_KMS" not in env
    assert str(VENV_BIN) not in env["PATH"].split(":")  # a provider on PATH is an ambient plugin: a warning
    # ... it is an installed plugin of that home instead, at the version the SDK asks for
    link = tmp_path / "home" / "plugins" / "resource-kms-iac-v0.1.0" / PROVIDER
    assert link.resolve() == (VENV_BIN / PROVIDER).resolve()

    monkeypatch.setenv("PULUMI_IGNORE_AMBIENT_PLUGINS", "false")
    assert engine_env(tmp_path / "bin", tmp_path / "state", tmp_path / "home")["PULUMI_IGNORE_AMBIENT_PLUGINS"] == "false"


def test_kms_iac_pulumi_says_how_to_point_a_project_at_the_provider(tmp_path) -> None:
    from kms_iac.cli.toolchain import _project_file, missing_plugin_hint

    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    (tmp_path / "sub").mkdir()
    found = _project_file(("-C", str(tmp_path / "sub"), "up"))
    assert found == tmp_path / "Pulumi.yaml"  # pulumi looks upward too
    hint = missing_plugin_hint(found)
    assert hint is not None and f"path: {Path(sys.prefix) / 'bin'}" in hint
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\nplugins:\n  providers:\n"
                                          "    - name: kms-iac\n      path: /x\n")
    assert missing_plugin_hint(found) is None
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: yaml\n")
    assert missing_plugin_hint(found) is None  # YAML programs use the component package


# --- the toolchain -------------------------------------------------------------------------------

def test_ensure_pulumi_script_prints_the_pinned_cli_and_nothing_else(tmp_path) -> None:
    out = subprocess.run([str(ROOT / "scripts" / "ensure_pulumi.sh")], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    bin_dir = Path(out.stdout.strip().splitlines()[-1])
    assert bin_dir == ensure_pulumi()
    version = subprocess.run([str(bin_dir / "pulumi"), "version"], capture_output=True, text=True,
                             env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"})
    assert version.stdout.strip() == f"v{pinned_version()}"
    assert all((bin_dir / f).is_file() for f in ("pulumi-language-python", "pulumi-language-yaml"))


def test_a_long_step_reports_its_elapsed_time_until_it_ends(tmp_path) -> None:
    """The heartbeat repeats while the step runs; the step here ends only once two were printed."""
    release = tmp_path / "release"

    class Stream:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def write(self, text: str) -> None:
            self.lines.extend(line for line in text.splitlines() if line)
            if sum("(all steps so far" in line for line in self.lines) >= 2:
                release.touch()

        def flush(self) -> None:
            pass

    stream = Stream()
    reporter = Reporter("kms-iac", "usually 6-17 minutes on 2 cores", interval=0.05, stream=stream)
    waiter = ("import os, sys, time\n"
              "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n")
    reporter.run("[2/5] building the Pulumi CLI", [sys.executable, "-c", waiter, str(release)])
    assert stream.lines[0] == "kms-iac: [2/5] building the Pulumi CLI ..."
    beats = [line for line in stream.lines if "(all steps so far" in line]
    assert len(beats) >= 2 and all("usually 6-17 minutes on 2 cores" in b for b in beats)
    assert stream.lines[-1].startswith("kms-iac: [2/5] building the Pulumi CLI: done in ")

    with pytest.raises(ToolchainError, match=r"\[3/5\] failing failed \(exit status 3\)"):
        reporter.run("[3/5] failing", [sys.executable, "-c", "import sys; print('go: broken'); sys.exit(3)"])
    assert "go: broken" in stream.lines  # the step's own output, shown because it failed


def test_a_missing_go_is_one_line_saying_what_to_install(tmp_path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "KMS_IAC_PULUMI_CACHE": str(tmp_path / "cache")}
    with pytest.raises(ToolchainError, match=r"'go' is not installed .*\(https://go\.dev/dl/\)"):
        ensure_pulumi(env)
    err = one_error_line(kms_iac("pulumi", "version", cwd=tmp_path, env=env))
    assert "Pulumi CLI v" in err and "'go' is not installed" in err
    assert not (tmp_path / "cache").exists()


# --- the wheel, in a virtualenv of its own ------------------------------------------------------

@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """The wheel, built once per session from the files git would commit (a clean tree: no stale
    egg-info or build/ can add or hide anything), as `pip install git+URL` builds it."""
    src = tmp_path_factory.mktemp("src")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("kms_iac-*.whl")
    return wheel


@pytest.fixture(scope="session")
def user_venv(built_wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv outside the repository with only the wheel (and what it pulls) installed."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", str(built_wheel)],
                          capture_output=True, text=True, timeout=1200, env=clean_env(venv))
    assert proc.returncode == 0, proc.stderr
    return venv


def clean_env(venv: Path, **extra: str) -> dict[str, str]:
    """A user's shell: no PYTHONPATH to this checkout, no PULUMI_* of ours, and neither that
    virtualenv's bin nor the repository's on PATH."""
    hidden = {os.path.realpath(p) for p in (venv / "bin", ROOT / ".venv" / "bin", Path(sys.executable).parent)}
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and os.path.realpath(p) not in hidden]
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("PULUMI_")}
    return {**env, "PATH": os.pathsep.join(path), **extra}


@pytest.mark.slow
@pytest.mark.xdist_group("user-project")
def test_the_wheel_carries_every_module_and_bundled_file(built_wheel) -> None:
    from kms_iac.bundled import LAYOUT

    names = set(zipfile.ZipFile(built_wheel).namelist())
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "kms_iac", "components", "rules", "tools"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    want = set()
    for rel in listed:
        if rel.startswith("kms_iac/") and (rel.endswith(".py") or "/new_project/" in rel):
            want.add(rel)
        elif rel.startswith("components/") and (rel.endswith(".py") or rel.endswith("PulumiPlugin.yaml")):
            want.add("kms_iac/" + rel)
        for name, (source, _) in LAYOUT.items():
            if rel.startswith(source + "/") and not rel.endswith(".md"):
                want.add(f"kms_iac/_bundled/{name}/{rel[len(source) + 1:]}")
    assert want - names == set()


@pytest.mark.slow
@pytest.mark.xdist_group("user-project")
def test_a_user_project_from_the_wheel_end_to_end(user_venv, tmp_path) -> None:
    venv_bin = user_venv / "bin"
    env = clean_env(user_venv, PULUMI_HOME=str(tmp_path / "pulumi-home"),
                    KMS_IAC_POLICY_PACK_CACHE=str(tmp_path / "policy-packs"))
    outputs: list[str] = []

    def run(*args: str, cwd: Path, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(venv_bin / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=900)
        outputs.append(f"$ {' '.join(args)}\n{proc.stdout}{proc.stderr}")
        assert proc.returncode in ok, outputs[-1]
        assert "Traceback" not in proc.stdout + proc.stderr, outputs[-1]
        assert PATH_WARNING not in proc.stdout + proc.stderr, outputs[-1]
        return proc

    # The wheel's kms-iac is the one running, and its toolchain finds the CLI this checkout uses
    # (the same sources and stamp: no build).
    where = run("python", "-c", "import kms_iac, kms_iac.components; print(kms_iac.__file__)", cwd=tmp_path)
    assert where.stdout.strip().startswith(str(user_venv))
    stamp = run("python", "-c", "from kms_iac.toolchain.pulumi_cli import source_stamp as s, pinned_version as v;"
                "print(s(v()))", cwd=tmp_path)
    assert stamp.stdout.strip() == source_stamp(pinned_version())
    assert Path(run("python", "-m", "kms_iac.toolchain", "pulumi", cwd=tmp_path).stdout.split()[-1]) == \
        ensure_pulumi(env)

    run("kms-iac", "new", "keys", cwd=tmp_path)
    project = tmp_path / "keys"
    run("kms-iac", "pulumi", "stack", "init", "dev", cwd=project)
    preview = run("kms-iac", "pulumi", "preview", cwd=project)
    assert "kms-iac:index:TenantKeyFleet" in preview.stdout and "8 to create" in preview.stdout
    run("kms-iac", "pulumi", "up", "--yes", cwd=project)
    out = json.loads(run("kms-iac", "pulumi", "stack", "output", "--json", cwd=project).stdout)
    assert out["aliases"] == {"acme": "alias/tenants/acme", "globex": "alias/tenants/globex"}

    # The keys are in the embedded backend of the project (.kms-iac/), as the outputs say.
    kms = embedded_client(project / ".kms-iac")
    for tenant, arn in out["keys"].items():
        meta = kms.describe_key(KeyId=f"alias/tenants/{tenant}")["KeyMetadata"]
        assert meta["Arn"] == arn and meta["KeyState"] == "Enabled"
        assert kms.get_key_rotation_status(KeyId=arn)["KeyRotationEnabled"] is True
    scan = json.loads(run("kms-iac", "scan", "live", "--data-dir", ".kms-iac", "--format", "json", cwd=project).stdout)
    assert {f["resource"] for f in scan["findings"]} == set(out["keys"].values())
    assert not [f for f in scan["findings"] if f["status"] == "FAIL"]

    # The rule front doors from the installed package: the policy pack as a gate, checkov.
    pack = run("kms-iac", "policy-pack", "path", cwd=project).stdout.strip()
    assert pack.startswith(str(tmp_path / "policy-packs"))
    gated = run("kms-iac", "pulumi", "preview", "--policy-pack", pack, cwd=project)
    assert "kms-iac@v0.1.0" in gated.stdout
    run("kms-iac", "setup", "checkov", cwd=project)
    shutil.copy(ROOT / "examples" / "templates" / "tenant-keys.yaml", tmp_path / "template.yaml")
    checked = run("kms-iac", "checkov", "-f", str(tmp_path / "template.yaml"), "--compact", cwd=tmp_path, ok=(1,))
    assert "CKV_KMSIAC_1:" in checked.stdout and "FAILED for resource: AWS::KMS::Key.LegacyKey" in checked.stdout

    run("kms-iac", "pulumi", "destroy", "--yes", cwd=project)
    for arn in out["keys"].values():
        assert kms.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "PendingDeletion"


@pytest.mark.slow
def test_the_repositorys_engine_runs_the_provider_without_a_path_warning(tmp_path, monkeypatch) -> None:
    """Even with the venv's bin on the caller's PATH (an activated venv), the tests' and main job's
    engine (kms_iac.engine) loads the provider from its Pulumi home, silently."""
    from kms_iac.engine import VENV_BIN, PulumiProject, pulumi_bin_dir

    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    project = PulumiProject(tmp_path, pulumi_bin_dir(), config={"kms-iac:dataDir": str(tmp_path / "data")})
    project.write_program("""
        import pulumi
        from kms_iac.components import TenantKey
        pulumi.export("arn", TenantKey("acme", tenant="acme").key_arn)
        """)
    up = project.up()
    assert PATH_WARNING not in up.stdout + up.stderr and "warning" not in up.stdout + up.stderr
    arn = project.outputs()["arn"]
    assert embedded_client(tmp_path / "data").describe_key(KeyId="alias/tenants/acme")["KeyMetadata"]["Arn"] == arn
