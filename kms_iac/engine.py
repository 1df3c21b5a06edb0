"""Driving the real Pulumi CLI: the pinned binaries setup provides, an environment that
never reaches the internet, and throwaway projects with a local file state backend.

Used by the main job, the end-to-end tests and the benchmarks, so all three run the
engine the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from kms_iac.provider import PACKAGE, VERSION
from kms_iac.toolchain._common import ToolchainError, point_symlink
from kms_iac.toolchain.pulumi_cli import ensure_pulumi, pulumi_env

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def pulumi_bin_dir() -> Path:
    """Where the pinned Pulumi CLI is (the one on PATH, the cache, or built now: kms_iac.toolchain)."""
    try:
        return ensure_pulumi()
    except ToolchainError as e:
        raise RuntimeError(f"the pinned Pulumi CLI is not available: {e}") from None


def install_provider_plugin(home: Path, bin_dir: Path = VENV_BIN) -> Path:
    """Make this virtualenv's provider an installed plugin of the Pulumi home ``home``.

    ``$PULUMI_HOME/plugins/resource-kms-iac-v<VERSION>/pulumi-resource-kms-iac`` is a symlink
    to the console script, so the engine resolves the SDK's ``kms-iac`` v<VERSION> from its
    own plugin cache, as it would an installed plugin, whatever project it runs (tests write
    their own Pulumi.yaml files, the main job runs the root one). The venv's bin stays off
    PATH: a provider found on PATH is an "ambient" plugin, which the engine announces with a
    "using pulumi-resource-kms-iac from $PATH" warning on every command.
    """
    link = home / "plugins" / f"resource-{PACKAGE}-v{VERSION}" / f"pulumi-resource-{PACKAGE}"
    point_symlink(link, bin_dir / f"pulumi-resource-{PACKAGE}")
    return link


def engine_env(pulumi_bin: Path, state_dir: Path, home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the Pulumi CLI: pinned binaries first, local file state, nothing fetched.

    :func:`kms_iac.toolchain.pulumi_cli.pulumi_env` (what ``kms-iac pulumi`` runs with: the
    caller's ``PULUMI_*`` pass through and win), with the state isolated: ``PULUMI_HOME`` and
    the backend are always this project's own, and ambient plugins are ignored (unless the
    caller says otherwise) so a venv bin on the caller's PATH cannot shadow the provider
    installed in that home. ``AWS_ENDPOINT*`` variables are dropped: the provider's target
    comes from stack config.
    """
    # PYTHONUNBUFFERED is dropped too: a user's shell rarely has it, and the engine's Python
    # plugins (provider, policy pack) must start without it (this machine's image sets it).
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT") and k != "PYTHONUNBUFFERED"}
    env = pulumi_env(pulumi_bin, base)
    env.update(PULUMI_HOME=str(home), PULUMI_BACKEND_URL=f"file://{state_dir}", PYTHONPATH=str(ROOT))
    for key in ("PULUMI_IGNORE_AMBIENT_PLUGINS", "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK",
                "PULUMI_SKIP_CONFIRMATIONS"):
        env.setdefault(key, "true")
    env.update(extra or {})
    install_provider_plugin(Path(env["PULUMI_HOME"]))
    return env


class PulumiProject:
    """A Pulumi project and stack; state in a local file backend.

    With ``create=True`` (tests, benchmarks) ``work/project`` gets a fresh Pulumi.yaml
    and the stack is initialised; otherwise ``project_dir`` is an existing project.
    """

    def __init__(self, work: Path, pulumi_bin: Path, config: dict[str, str] | None = None, stack: str = "test",
                 env: dict[str, str] | None = None, init_args: tuple[str, ...] = (),
                 project_dir: Path | None = None) -> None:
        self.dir = project_dir or work / "project"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = work / "state"
        self.state.mkdir(parents=True, exist_ok=True)
        self.home = work / "pulumi-home"
        self.stack = stack
        self.env = engine_env(pulumi_bin, self.state, self.home, env)
        if project_dir is None:
            (self.dir / "Pulumi.yaml").write_text(textwrap.dedent(f"""\
                name: kms-iac-test
                runtime:
                  name: python
                  options:
                    virtualenv: {VENV_BIN.parent}
                """))
            self.write_program("import pulumi\n")
        # One CLI call in the common case (each costs an engine start-up): a fresh project
        # inits its stack; an existing one selects it.
        init, select = ("stack", "init", stack, *init_args), ("stack", "select", stack)
        first, then = (init, select) if project_dir is None else (select, init)
        if self.run(*first, check=False).returncode != 0:
            self.run(*then)
        self.set_config(config or {})

    def set_config(self, config: dict[str, str]) -> None:
        """Plain-text stack config, in one CLI call."""
        if config:
            self.run("config", "set-all", *(a for k, v in config.items() for a in ("--plaintext", f"{k}={v}")))

    def write_program(self, source: str) -> None:
        (self.dir / "__main__.py").write_text(textwrap.dedent(source))

    def run(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["pulumi", *args, "--non-interactive"] if args[0] not in ("version",) else ["pulumi", *args],
                              cwd=self.dir, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=600)
        if check and proc.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def up(self, **kw) -> subprocess.CompletedProcess:
        return self.run("up", "--yes", "--skip-preview", **kw)

    def outputs(self) -> dict:
        return json.loads(self.run("stack", "output", "--json", "--show-secrets").stdout)

    def resources(self) -> list[dict]:
        doc = json.loads(self.run("stack", "export", "--show-secrets").stdout)
        return doc["deployment"].get("resources", [])

    def resource(self, type_token: str, name: str) -> dict:
        return next(r for r in self.resources() if r["type"] == type_token and r["urn"].endswith(f"::{name}"))
