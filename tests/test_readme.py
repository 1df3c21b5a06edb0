"""The README, checked by running it: every shell and Python snippet in order, as a reader
with the project's venv activated would (see tests/readme_snippets.py for the directives)."""

from __future__ import annotations

import pytest

from tests.helpers import ROOT
from tests.readme_snippets import Reader, kinds_known, parse

README = ROOT / "README.md"


def test_every_snippet_says_how_it_is_tested() -> None:
    snippets = parse(README)
    assert snippets, "README.md has no code blocks?"
    assert kinds_known(snippets) == []


@pytest.mark.slow
def test_readme_snippets_run_as_written(tmp_path) -> None:
    reader = Reader(tmp_path / "reader", ROOT / ".venv" / "bin")
    try:
        for snippet in parse(README):
            print(snippet.where(), flush=True)  # shown with the failure: where the reader got to
            reader.run(snippet)
    finally:
        reader.close()
