"""The import-linter contracts in pyproject.toml: they hold, and every module of the package has a layer."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter depends on tomli there
    import tomli as tomllib

import grimp

REPO = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]


def test_lint_imports_keeps_every_contract():
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(REPO / 'pyproject.toml')!r}, no_cache=True, no_logo=True))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{len(CONFIG['contracts'])} kept, 0 broken" in proc.stdout


def test_every_module_of_the_package_sits_in_a_layer():
    (layers,) = [c["layers"] for c in CONFIG["contracts"] if c["type"] == "layers" and "containers" not in c]
    placed = {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}
    graph = grimp.build_graph(CONFIG["root_package"], cache_dir=None)
    top_level = {m for m in graph.modules if m.count(".") == 1}
    assert top_level - placed == set(), "modules outside every layer of pyproject.toml's contract"
    assert placed - top_level == set(), "layers naming modules that do not exist"
