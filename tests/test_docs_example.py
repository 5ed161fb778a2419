"""The example in docs/testing.rst runs, in a pytest of its own, as a user's suite would.

A separate process and no conftest: the fixtures it uses can only come from fedbearer's
pytest plugin, loaded through its ``pytest11`` entry point.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "test_my_client.py"


def run_pytest(home):
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(EXAMPLE), "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def example_tests():
    tree = ast.parse(EXAMPLE.read_text())
    return [
        n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    ]


def test_the_docs_example_passes(tmp_path):
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = len(example_tests())
    assert expected >= 3
    assert re.search(rf"\b{expected} passed\b", result.stdout), result.stdout
    assert not (tmp_path / ".nebius").exists()  # the fixture's HOME, not this one
