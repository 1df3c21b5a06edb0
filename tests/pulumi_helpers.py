"""Running the real Pulumi CLI on small test programs, with a local file state backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import ROOT

VENV_BIN = Path(sys.executable).parent


def pulumi_bin_dir() -> Path:
    """Where setup put the Pulumi CLI (built from the Go module proxy, or the one on PATH)."""
    out = subprocess.run([str(ROOT / "scripts" / "ensure_pulumi.sh")], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


class PulumiProject:
    """A throwaway Pulumi project and stack in ``work``; state in a local file backend."""

    def __init__(self, work: Path, pulumi_bin: Path, config: dict[str, str] | None = None, stack: str = "test",
                 env: dict[str, str] | None = None, init_args: tuple[str, ...] = ()) -> None:
        self.dir = work / "project"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = work / "state"
        self.state.mkdir(exist_ok=True)
        self.home = work / "pulumi-home"
        self.stack = stack
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "AWS_ENDPOINT"))},
            "PATH": f"{pulumi_bin}:{VENV_BIN}:{os.environ.get('PATH', '')}",
            "PULUMI_HOME": str(self.home),
            "PULUMI_BACKEND_URL": f"file://{self.state}",
            "PULUMI_CONFIG_PASSPHRASE": "kms-iac-test",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        (self.dir / "Pulumi.yaml").write_text(textwrap.dedent(f"""\
            name: kms-iac-test
            runtime:
              name: python
              options:
                virtualenv: {VENV_BIN.parent}
            """))
        self.write_program("import pulumi\n")
        self.run("stack", "init", stack, *init_args)
        for k, v in (config or {}).items():
            self.run("config", "set", k, v)

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
