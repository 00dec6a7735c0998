"""The type checker holds the project to its annotations, and every kind of index to the one
index contract (`index_tools/contract.py`, checked in `index_tools/opening.py`): mypy, configured in
pyproject.toml, must pass on `index_tools` and `tracetui`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_passes_on_index_tools_and_tracetui() -> None:
    pytest.importorskip("mypy", reason="mypy is in the test extra")
    run = subprocess.run([sys.executable, "-m", "mypy", "index_tools", "tracetui"], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "Success" in run.stdout


def test_import_contracts_hold() -> None:
    """The layers of index_tools import only downward (no cycles), tracetui reaches index_tools'
    internals only through its public modules, and the tracing pipeline knows nothing of the
    screens: import-linter's contracts in pyproject.toml."""
    pytest.importorskip("importlinter", reason="import-linter is in the test extra")
    run = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                          "sys.exit(lint_imports_command())"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout
