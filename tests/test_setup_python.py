"""scripts/pick_python.sh: the interpreter setup makes the virtualenv with.

The local server is bound by the interpreter, so setup takes the fastest python3.11 it finds.
These run the script with fake interpreters on PATH: wrappers around this test's own Python,
one of them made slower by running its probe under cProfile."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "pick_python.sh"


def _wrapper(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True)
    path = directory / "python3.11"
    path.write_text(f"#!/bin/sh\n{body}\nexec {sys.executable} \"$@\"\n")
    path.chmod(0o755)
    return path


def _pick(path_dirs: list[Path], **env: str) -> subprocess.CompletedProcess:
    """Run the script with PATH = the given dirs and the three tools it needs, nothing else: no
    python3 of the machine's can answer in the fakes' place."""
    tools = path_dirs[0].parent / "tools"
    if not tools.exists():
        tools.mkdir()
        for tool in ("readlink", "awk", "dirname"):
            (tools / tool).symlink_to(shutil.which(tool))
    base = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    base.update(PATH=os.pathsep.join([*map(str, path_dirs), str(tools)]), KMS_IAC_PYTHON_DIRS="", **env)
    bash = shutil.which("bash")
    return subprocess.run([bash, str(SCRIPT)], cwd=REPO, env=base, capture_output=True, text=True, timeout=300)


def test_the_faster_interpreter_is_picked_over_one_earlier_on_path(tmp_path: Path) -> None:
    slow = _wrapper(tmp_path / "slow", 'case "$1" in *.py) exec %s -m cProfile -o /dev/null "$@";; esac'
                    % sys.executable)
    fast = _wrapper(tmp_path / "fast", "")
    done = _pick([slow.parent, fast.parent])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(fast)


def test_equal_interpreters_keep_path_order_and_one_that_cannot_host_a_venv_is_skipped(tmp_path: Path) -> None:
    broken = _wrapper(tmp_path / "broken", 'case "$1" in *.py) exit 1;; esac')  # e.g. no ensurepip
    first = _wrapper(tmp_path / "first", "")
    second = _wrapper(tmp_path / "second", "")
    done = _pick([broken.parent, first.parent, second.parent])
    assert done.returncode == 0, done.stderr
    # the same interpreter twice: the second is never 10% faster, bar a very unlucky probe
    assert done.stdout.strip() in (str(first), str(second))
    assert done.stdout.strip() != str(broken)


def test_no_usable_interpreter_is_a_clear_error(tmp_path: Path) -> None:
    broken = _wrapper(tmp_path / "broken", 'case "$1" in *.py) exit 1;; esac')
    done = _pick([broken.parent])
    assert done.returncode == 1
    assert "no Python 3.11+" in done.stderr and done.stdout == ""


def test_python_overrides_the_choice(tmp_path: Path) -> None:
    fast = _wrapper(tmp_path / "fast", "")
    done = _pick([fast.parent], PYTHON=sys.executable)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == sys.executable
