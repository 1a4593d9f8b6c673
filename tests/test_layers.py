"""The package's layers import downwards only, and no package has an import cycle.

The contracts live in pyproject.toml ([tool.importlinter]); import-linter (grimp) sees imports
inside functions too, so a cycle cannot hide behind a function-level import. The second test
re-creates each cycle that once hid in the code and checks that the contracts catch it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(src: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the package under ``src`` with the contracts in ``config``."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but import-linter is not installed (pip install -e '.[test]')")
        pytest.skip("import-linter is not installed: pip install -e '.[test]' to check the layers")
    return subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo", str(config)],
        cwd=src.parent,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_layers_and_no_cycles() -> None:
    result = _lint_imports(ROOT / "src", ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# (module file, module it must never import): each pair re-creates one of the cycles that
# were hidden behind a function-level import before the layers were enforced.
CYCLES = [
    ("methods/__init__.py", "sparecast.selection"),
    ("inventory/report.py", "sparecast.pipeline.plan"),
    ("data/mapping.py", "sparecast.data.sources"),
    # not a cycle of the old code, but the same hole: the root package imports every layer
    ("inventory/report.py", "sparecast"),
    ("inventory/plan.py", "sparecast.selection.router"),
]


@pytest.mark.parametrize(("module_file", "imported"), CYCLES)
def test_contracts_catch_a_hidden_cycle(tmp_path: Path, module_file: str, imported: str) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "sparecast", src / "sparecast")
    target = src / "sparecast" / module_file
    assert target.exists(), f"{module_file} moved: update CYCLES"
    with target.open("a") as fh:
        fh.write(f"\n\ndef _hidden_cycle() -> None:\n    import {imported}  # noqa: F401\n")
    result = _lint_imports(src, ROOT / "pyproject.toml")
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
