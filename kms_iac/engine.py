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

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def pulumi_bin_dir() -> Path:
    """Where setup put the Pulumi CLI (built from the Go module proxy, or the one on PATH)."""
    out = subprocess.run([str(ROOT / "scripts" / "ensure_pulumi.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"scripts/ensure_pulumi.sh failed:\n{out.stderr}")
    return Path(out.stdout.strip().splitlines()[-1])


def engine_env(pulumi_bin: Path, state_dir: Path, home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the Pulumi CLI: pinned binaries first, local file state, nothing fetched."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "AWS_ENDPOINT"))},
        "PATH": f"{pulumi_bin}:{VENV_BIN}:{os.environ.get('PATH', '')}",
        "PULUMI_HOME": str(home),
        "PULUMI_BACKEND_URL": f"file://{state_dir}",
        "PULUMI_CONFIG_PASSPHRASE": os.environ.get("PULUMI_CONFIG_PASSPHRASE", "kms-iac-local"),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        "PULUMI_SKIP_CONFIRMATIONS": "true",
        "PYTHONPATH": str(ROOT),
        **(extra or {}),
    }


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
