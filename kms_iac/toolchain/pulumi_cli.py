"""The pinned Pulumi CLI and its language hosts: found, or built once from the Go module proxy.

The one implementation behind ``scripts/ensure_pulumi.sh`` (setup, the tests' engine) and
``kms-iac pulumi`` (a user's project, from a wheel install): the Go sources it builds from
(``tools/pulumi``, ``tools/pulumi-yaml``) travel inside the wheel (see kms_iac/bundled.py).

The version comes from one place, ``tools/pulumi/VERSION``. It must equal the pulumi/pkg/v3
and sdk/v3 requires of both Go modules and the Python SDK pin (``pulumi==X`` in
pyproject.toml, or the installed wheel's metadata); :func:`ensure_pulumi` refuses to go on
if they disagree, so every machine runs the engine the pinned SDK was written for.

Order of preference:

1. a ``pulumi`` on PATH whose ``pulumi version`` is exactly the pinned version and that has
   ``pulumi-language-python`` and ``pulumi-language-yaml`` beside it (an official install);
   any other version is ignored. ``KMS_IAC_PULUMI_IGNORE_PATH=1`` skips this.
2. the cache, ``${KMS_IAC_PULUMI_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kms-iac/pulumi}/<version>/bin``,
   when it holds every binary and its stamp (a hash of the Go sources and this recipe)
   matches: instant.
3. a build with ``go`` (GOTOOLCHAIN fetches a newer Go if go.mod asks for one): the CLI from
   github.com/pulumi/pulumi/pkg/v3/cmd/pulumi; the Python language host from
   tools/pulumi/cmd/pulumi-language-python (kms-iac's own build: the proxy does not serve
   upstream's module, see that file's header); the two Python scripts the host runs, copied
   from the sdk/v3 module (pulumi-language-python-exec runs programs,
   pulumi-resource-pulumi-python runs dynamic providers); and the YAML language host from
   github.com/pulumi/pulumi-yaml (tools/pulumi-yaml pins it, with pkg/v3 and sdk/v3 raised to
   the CLI's version). A cold build downloads ~0.5 GB of modules; it usually takes 6-17
   minutes on 2 cores, and says what it is doing every 30 seconds.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping

from kms_iac.bundled import SOURCE_ROOT, bundled, installed_from_wheel
from kms_iac.toolchain._common import Reporter, ToolchainError, cache_root, exclusive, minutes

BINARIES = ("pulumi", "pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-pulumi-python",
            "pulumi-language-yaml")
USUALLY = "a cold build usually takes 6-17 minutes on 2 cores"
CLI_PACKAGE = "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
YAML_PACKAGE = "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml"
LDFLAGS = "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v{version}"
YAML_LDFLAGS = "-s -w -X github.com/pulumi/pulumi-yaml/pkg/version.Version={yaml_version}"
# Part of the cache stamp with the sources: bump it when the build below changes in a way the
# constants above do not show, so every cache is rebuilt.
RECIPE = 1

# The local secrets provider's passphrase when the caller has none: it protects nothing (it
# is written here), it only lets a local sandbox stack run without a prompt. Anyone with
# secrets worth keeping sets PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE, or
# creates the stack with another --secrets-provider.
DEFAULT_PASSPHRASE = "kms-iac-local"


def pinned_version() -> str:
    """The Pulumi version kms-iac is written for (tools/pulumi/VERSION)."""
    path = bundled("pulumi") / "VERSION"
    try:
        version = path.read_text().strip()
    except OSError:
        raise ToolchainError(f"missing {path}") from None
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise ToolchainError(f"{path} is not X.Y.Z: {version!r}")
    return version


def python_sdk_pin() -> str | None:
    """The ``pulumi==X`` the Python side pins: pyproject.toml in a checkout, the metadata of an install."""
    if not installed_from_wheel():
        try:
            text = (SOURCE_ROOT / "pyproject.toml").read_text()
        except OSError:
            return None
        m = re.search(r'"pulumi\s*==\s*([^",;\s]+)', text)
        return m.group(1) if m else None
    from importlib import metadata

    try:
        requires = metadata.requires("kms-iac") or []
    except metadata.PackageNotFoundError:
        return None
    for req in requires:
        m = re.fullmatch(r"pulumi\s*==\s*([^;\s]+)\s*(;.*)?", req.strip())
        if m:
            return m.group(1)
    return None


def check_pins(version: str) -> None:
    """Refuse sources that disagree with VERSION (a half-done upgrade builds a mismatched engine)."""
    for name in ("pulumi", "pulumi_yaml"):
        go_mod = bundled(name) / "go.mod"
        text = go_mod.read_text()
        for mod in ("github.com/pulumi/pulumi/pkg/v3", "github.com/pulumi/pulumi/sdk/v3"):
            if not re.search(rf"^\s*(require\s+)?{re.escape(mod)} v{re.escape(version)}(\s|$)", text, re.M):
                raise ToolchainError(
                    f"{go_mod} does not require {mod} v{version} (VERSION says {version}); fix with: cd "
                    f"{go_mod.parent} && go get {mod.rsplit('/', 1)[0]}/pkg/v3@v{version} "
                    f"github.com/pulumi/pulumi/sdk/v3@v{version} && go mod tidy")
    pin = python_sdk_pin()
    if pin is not None and pin != version:
        raise ToolchainError(f"the Python SDK is pinned to pulumi=={pin} but tools/pulumi/VERSION says {version}; "
                             "they must match")


def source_stamp(version: str) -> str:
    """What the binaries are built from: the Go sources (by path within their module) and the recipe.
    The same in a checkout and in a wheel, so both find one cache."""
    h = hashlib.sha256(f"{version}\n{RECIPE}\n{CLI_PACKAGE}\n{YAML_PACKAGE}\n{LDFLAGS}\n{YAML_LDFLAGS}\n".encode())
    for name in ("pulumi", "pulumi_yaml"):
        root = bundled(name)
        for path in sorted(p for p in root.rglob("*") if p.is_file() and (p.suffix == ".go" or p.name in (
                "go.mod", "go.sum", "VERSION"))):
            h.update(f"{name}/{path.relative_to(root).as_posix()}\n".encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:32]


def pulumi_on_path(version: str, env: Mapping[str, str]) -> Path | None:
    """The bin dir of a ``pulumi`` on PATH that is exactly ``version`` with its language hosts beside it."""
    exe = shutil.which("pulumi", path=env.get("PATH", ""))
    if exe is None:
        return None
    bin_dir = Path(exe).parent
    try:
        got = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=60,
                             env={**env, "PULUMI_SKIP_UPDATE_CHECK": "true"}).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        got = ""
    if got == f"v{version}" and all(os.access(bin_dir / f, os.X_OK)
                                    for f in ("pulumi-language-python", "pulumi-language-yaml")):
        return bin_dir
    return None


def _cache_ok(dest: Path, stamp: str) -> bool:
    stamp_file = dest / ".stamp"
    return (all(os.access(dest / "bin" / f, os.X_OK) for f in BINARIES) and stamp_file.is_file()
            and stamp_file.read_text().strip() == stamp)


def ensure_pulumi(env: Mapping[str, str] | None = None, reporter: Reporter | None = None) -> Path:
    """The directory holding the pinned ``pulumi`` and its language hosts, building them if needed."""
    env = dict(os.environ if env is None else env)
    reporter = reporter or Reporter("kms-iac", USUALLY)
    version = pinned_version()
    check_pins(version)

    if env.get("KMS_IAC_PULUMI_IGNORE_PATH", "0") != "1" and shutil.which("pulumi", path=env.get("PATH", "")):
        found = pulumi_on_path(version, env)
        if found is not None:
            return found
        reporter.say(f"ignoring the pulumi on PATH ({shutil.which('pulumi', path=env.get('PATH', ''))}): "
                     f"kms-iac needs v{version} with pulumi-language-python and pulumi-language-yaml beside it")

    root = cache_root("pulumi", "KMS_IAC_PULUMI_CACHE", env)
    dest = root / version
    stamp = source_stamp(version)
    if _cache_ok(dest, stamp):
        return dest / "bin"
    if shutil.which("go", path=env.get("PATH", "")) is None:
        raise ToolchainError(
            f"the Pulumi CLI v{version} is not on PATH and not built in {dest / 'bin'}, and 'go' is not installed "
            f"to build it: install Go (https://go.dev/dl/) and run this again, or put Pulumi v{version} on PATH "
            f"(https://www.pulumi.com/docs/install/versions/)")
    with exclusive(root / ".lock"):
        if not _cache_ok(dest, stamp):  # another process may have built it while we waited
            _build(version, dest, stamp, env, reporter)
    return dest / "bin"


def _go(args: list[str], cwd: Path, env: Mapping[str, str]) -> str:
    """A short ``go`` query (no progress needed); its stdout."""
    proc = subprocess.run(["go", *args], cwd=cwd, env=dict(env), capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolchainError(f"go {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _build(version: str, dest: Path, stamp: str, env: Mapping[str, str], reporter: Reporter) -> None:
    """Build every binary into a temporary directory beside ``dest``, then swap it in whole, so an
    interrupted build never looks finished."""
    reporter.say(f"building the Pulumi CLI v{version} and its Python and YAML language hosts into {dest / 'bin'} "
                 f"(once; {USUALLY})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    go_env = {**env, "GOWORK": "off", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    with tempfile.TemporaryDirectory(prefix=f".src-{version}.", dir=dest.parent) as src_tmp:
        # The Go modules are copied out of the package: a wheel's site-packages may be read-only.
        src = Path(src_tmp)
        shutil.copytree(bundled("pulumi"), src / "pulumi", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(bundled("pulumi_yaml"), src / "pulumi-yaml", ignore=shutil.ignore_patterns("__pycache__"))
        out = Path(tempfile.mkdtemp(prefix=f".build-{version}.", dir=dest.parent))
        try:
            _build_into(version, src, out, go_env, reporter)
            (out / ".stamp").write_text(stamp + "\n")
            out.chmod(0o755)
            old = dest.with_name(dest.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            if dest.exists():
                dest.rename(old)
            out.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            raise
    size = sum(p.stat().st_size for p in (dest / "bin").iterdir()) // (1 << 20)
    reporter.say(f"built the Pulumi CLI v{version} in {minutes(reporter.elapsed())} ({size} MB in {dest / 'bin'})")


def _build_into(version: str, src: Path, out: Path, env: Mapping[str, str], reporter: Reporter) -> None:
    bin_dir = out / "bin"
    bin_dir.mkdir()
    cli, yaml_src = src / "pulumi", src / "pulumi-yaml"
    ldflags = LDFLAGS.format(version=version)
    reporter.run("[1/5] downloading the Go modules of the CLI and the Python host",
                 ["go", "list", "-deps", CLI_PACKAGE, "./cmd/pulumi-language-python"], cwd=cli, env=env)
    reporter.run("[2/5] building the Pulumi CLI (the longest step)",
                 ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(bin_dir / "pulumi"), CLI_PACKAGE],
                 cwd=cli, env=env)
    reporter.run("[3/5] building the Python language host",
                 ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(bin_dir / "pulumi-language-python"),
                  "./cmd/pulumi-language-python"], cwd=cli, env=env)
    reporter.say(f"[4/5] copying the Python host's scripts from github.com/pulumi/pulumi/sdk/v3@v{version}")
    sdk_dir = Path(_go(["list", "-m", "-f", "{{.Dir}}", "github.com/pulumi/pulumi/sdk/v3"], cli, env) or "/nonexistent")
    for name, rel in (("pulumi-language-python-exec", "python/cmd/pulumi-language-python-exec"),
                      ("pulumi-resource-pulumi-python", "python/dist/pulumi-resource-pulumi-python")):
        if not (sdk_dir / rel).is_file():
            raise ToolchainError(f"cannot find {rel} of the sdk/v3 module (looked in {sdk_dir})")
        shutil.copyfile(sdk_dir / rel, bin_dir / name)
        (bin_dir / name).chmod(0o755)
    yaml_version = _go(["list", "-m", "-f", "{{.Version}}", "github.com/pulumi/pulumi-yaml"], yaml_src, env)
    reporter.run(f"[5/5] downloading and building the YAML language host (pulumi-yaml {yaml_version})",
                 ["go", "build", "-trimpath", "-ldflags", YAML_LDFLAGS.format(yaml_version=yaml_version),
                  "-o", str(bin_dir / "pulumi-language-yaml"), YAML_PACKAGE], cwd=yaml_src, env=env)
    got = subprocess.run([str(bin_dir / "pulumi"), "version"], capture_output=True, text=True,
                         env={**env, "PULUMI_SKIP_UPDATE_CHECK": "true"}).stdout.strip()
    if got != f"v{version}":
        raise ToolchainError(f"the built pulumi reports version {got!r}, expected v{version}")


def pulumi_env(pulumi_bin: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a local project runs the Pulumi CLI in; the caller's own ``PULUMI_*`` win.

    The pinned binaries come first on PATH (the engine finds its language hosts next to
    ``pulumi``); the update check and automatic plugin downloads are off (nothing kms-iac
    needs is fetched from the internet, and a missing plugin should say so rather than try
    a download that cannot succeed); the local secrets provider gets :data:`DEFAULT_PASSPHRASE`
    when the caller has neither PULUMI_CONFIG_PASSPHRASE nor PULUMI_CONFIG_PASSPHRASE_FILE.
    """
    base = os.environ if base is None else base
    env = dict(base)
    env["PATH"] = os.pathsep.join(p for p in (str(pulumi_bin), base.get("PATH", "")) if p)
    env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    env.setdefault("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    if "PULUMI_CONFIG_PASSPHRASE" not in base and "PULUMI_CONFIG_PASSPHRASE_FILE" not in base:
        env["PULUMI_CONFIG_PASSPHRASE"] = DEFAULT_PASSPHRASE
    return env
