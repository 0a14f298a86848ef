"""Layers written down and checked: the import-linter contracts in pyproject.toml ([tool.importlinter]: the
layers of ../shared/DESIGN.md, LightFM only in models, pynndescent only in ann, papermill only in execution, DuckDB
only in the warehouse layer, matplotlib only in plots), and ``__all__`` in every public module."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "recsys_lab"
MODULES = {".".join(p.relative_to(PKG).with_suffix("").parts): p for p in PKG.rglob("*.py") if p.stem != "__init__"}


def test_import_contracts_are_kept():
    """``lint-imports`` over this checkout (run from its root so that this recsys_lab is the one analysed)."""
    proc = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                           "sys.exit(lint_imports_command())", "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and " kept, 0 broken." in proc.stdout


def test_every_public_module_declares_all():
    for name, path in MODULES.items():
        if not name.rsplit(".", 1)[-1].startswith("_") and not name.startswith("cli."):
            tree = ast.parse(path.read_text())
            assert any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets)
                       for n in tree.body), name
