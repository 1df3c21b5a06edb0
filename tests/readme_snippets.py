"""Running the README's snippets as a reader would: in order, in one fresh working directory,
with the project's venv activated (its ``bin`` first on PATH) and nothing else.

Every fenced block in README.md is preceded by a directive, an HTML comment the rendered
page does not show, saying what to do with it:

``<!-- test: run [status=N] -->``
    bash: run it (``set -euo pipefail``; variables it exports reach later blocks); with
    ``status=N`` the block is one command that must exit N (a scan that finds failures);
    python: run it in one interpreter shared by every python block, like a REPL session.
``<!-- test: background -->``
    bash: start it (a server) and wait until it accepts connections on its port.
``<!-- test: file NAME -->``
    write the block to NAME in the working directory (a principals or seed file).
``<!-- test: pulumi-up [config K=V ...] -->``
    python: a Pulumi program; ``kms-iac new`` a project around it, then ``preview``, ``up`` and
    ``destroy`` with ``kms-iac pulumi`` (each ``config`` pair set as a secret).
``<!-- test: skip REASON -->``
    not run, and the reason says why (real AWS, the main job itself, which has its own test).

Ports 4599 and 4600 in a block are replaced by free ports, the same ones for the whole
README, so the test runs beside anything else on the machine. The working directory holds
a link to the checkout's ``examples/``, as a reader's checkout would.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

DIRECTIVE = re.compile(r"<!--\s*test:\s*(?P<kind>[\w-]+)\s*(?P<args>.*?)\s*-->")
FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")
KINDS = {"run", "background", "file", "pulumi-up", "skip"}
README_PORTS = ("4599", "4600")


@dataclass
class Snippet:
    line: int            # 1-based line of the opening fence
    lang: str
    text: str
    kind: str | None     # None: no directive (a test fails on it)
    args: str = ""

    def where(self) -> str:
        return f"README.md:{self.line} ({self.lang or 'text'} block, test: {self.kind} {self.args})".rstrip()


def parse(readme: Path) -> list[Snippet]:
    """The fenced blocks, each with the directive on the nearest non-blank line above it."""
    lines = readme.read_text().splitlines()
    out: list[Snippet] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m["lang"]
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        above = start - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        d = DIRECTIVE.search(lines[above]) if above >= 0 else None
        out.append(Snippet(start + 1, lang, "\n".join(lines[start + 1:j]) + "\n",
                           d["kind"] if d else None, d["args"] if d else ""))
        i = j + 1
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_PY_DRIVER = textwrap.dedent("""\
    import json, sys, traceback
    ns = {"__name__": "__readme__"}
    for line in sys.stdin:
        code = json.loads(line)
        try:
            exec(compile(code, "<README snippet>", "exec"), ns)
            reply = {"ok": True}
        except BaseException:
            reply = {"ok": False, "error": traceback.format_exc()}
        sys.stdout.flush()
        print("\\x00" + json.dumps(reply), flush=True)
    """)


@dataclass
class Reader:
    """A reader's shell and REPL: one working directory, one environment, one Python session."""

    work: Path
    venv_bin: Path
    ports: dict[str, int] = field(default_factory=lambda: {p: free_port() for p in README_PORTS})
    background: list[subprocess.Popen] = field(default_factory=list)
    python: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "examples").symlink_to(self.venv_bin.parents[1] / "examples")
        self.state = self.work / ".readme-env.sh"
        self.state.write_text("")
        home = self.work / "home"
        home.mkdir(exist_ok=True)
        self.env = {
            "PATH": f"{self.venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            # the caches setup filled (Pulumi CLI, checkov), as a reader's own home would have them
            "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")),
            "VIRTUAL_ENV": str(self.venv_bin.parent),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "COLUMNS": "160",
        }

    def localise(self, text: str) -> str:
        for readme_port, port in self.ports.items():
            text = text.replace(readme_port, str(port))
        return text

    # --- blocks ---------------------------------------------------------------------------
    def run(self, s: Snippet) -> str:
        if s.kind == "skip":
            return ""
        if s.kind == "file":
            (self.work / s.args.split()[0]).write_text(self.localise(s.text))
            return ""
        if s.kind == "background":
            return self._background(s)
        if s.kind == "pulumi-up":
            return self._pulumi_up(s)
        if s.kind == "run" and s.lang in ("bash", "sh", "shell"):
            status = re.fullmatch(r"status=(\d+)", s.args)
            return self._bash(self.localise(s.text), s, status=int(status[1]) if status else 0)
        if s.kind == "run" and s.lang == "python":
            return self._python(self.localise(s.text), s)
        raise AssertionError(f"{s.where()}: no way to run a {s.lang!r} block as {s.kind!r}")

    def _bash(self, text: str, s: Snippet, status: int = 0, timeout: float = 900) -> str:
        state = shlex.quote(str(self.state))
        if status:  # one command whose exit status is the point: no -e, and the status is kept
            script = f"set -uo pipefail\nsource {state}\n{text}\nrc=$?\nexport -p > {state}\nexit $rc\n"
        else:
            script = f"set -euo pipefail\nsource {state}\n{text}\nexport -p > {state}\n"
        proc = subprocess.run(["bash", "-c", script], cwd=self.work, env=self.env, capture_output=True,
                              stdin=subprocess.DEVNULL, text=True, timeout=timeout)
        if proc.returncode != status:
            raise AssertionError(f"{s.where()} exited {proc.returncode}, not {status}:\n{proc.stdout}\n{proc.stderr}")
        if "Traceback (most recent call last)" in proc.stderr:
            raise AssertionError(f"{s.where()} printed a traceback:\n{proc.stderr}")
        return proc.stdout + proc.stderr

    def _background(self, s: Snippet, timeout: float = 120) -> str:
        command = self.localise(s.text).strip()
        proc = subprocess.Popen(["bash", "-c", f"source {shlex.quote(str(self.state))}\nexec {command}"],
                                cwd=self.work, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.background.append(proc)
        port = next((p for readme_port, p in self.ports.items() if readme_port in s.text), self.ports["4599"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the condition meant: the port accepts connections
            if proc.poll() is not None:
                raise AssertionError(f"{s.where()} exited {proc.returncode}: {proc.stdout.read()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return ""
            except OSError:
                time.sleep(0.05)  # polling interval, not an expectation of work done
        raise AssertionError(f"{s.where()}: nothing listening on port {port} after {timeout:.0f} s")

    def _python(self, code: str, s: Snippet, timeout: float = 600) -> str:
        if self.python is None:
            self.python = subprocess.Popen([str(self.venv_bin / "python"), "-u", "-c", _PY_DRIVER], cwd=self.work,
                                           env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True)
        assert self.python.stdin and self.python.stdout
        self.python.stdin.write(json.dumps(code) + "\n")
        self.python.stdin.flush()
        printed = []
        for line in self.python.stdout:  # the driver answers after each block
            if line.startswith("\x00"):
                reply = json.loads(line[1:])
                if not reply["ok"]:
                    raise AssertionError(f"{s.where()} raised:\n{''.join(printed)}{reply['error']}")
                return "".join(printed)
            printed.append(line)
        raise AssertionError(f"{s.where()}: the Python session ended: {''.join(printed)}")

    def _pulumi_up(self, s: Snippet) -> str:
        """A program as a user deploys it: a project from ``kms-iac new``, the snippet as its
        program, then preview, up and destroy through ``kms-iac pulumi``."""
        n = len(list(self.work.glob("program-*")))
        project = self.work / f"program-{n}"
        cfg = [a.split("=", 1) for a in s.args.split()[1:]] if s.args.startswith("config") else []
        (self.work / f"{project.name}.py").write_text(self.localise(s.text))
        steps = [f"kms-iac new {project.name}", f"cd {project.name}", f"cp ../{project.name}.py __main__.py",
                 "kms-iac pulumi stack init dev --non-interactive"]
        steps += [f"kms-iac pulumi config set --secret {shlex.quote(k)} {shlex.quote(v)}" for k, v in cfg]
        steps += ["kms-iac pulumi preview --non-interactive", "kms-iac pulumi up --yes --non-interactive",
                  "kms-iac pulumi destroy --yes --non-interactive"]
        out = self._bash("\n".join(steps) + "\ncd ..", s)
        for line in out.splitlines():
            if "using pulumi-resource-kms-iac from $PATH" in line or "Traceback" in line:
                raise AssertionError(f"{s.where()}: {line}\n{out}")
        return out

    def close(self) -> None:
        for proc in self.background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if self.python and self.python.poll() is None:
            self.python.stdin.close()
            self.python.wait(30)


def kinds_known(snippets: list[Snippet]) -> list[str]:
    """Blocks without a directive, or with one this harness does not know."""
    return [s.where() for s in snippets if s.kind not in KINDS or (s.kind == "skip" and not s.args)]


if __name__ == "__main__":  # list the blocks and their directives
    for s in parse(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")):
        print(s.where())
