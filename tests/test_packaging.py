"""What the installed package needs is declared: every third-party module it imports is a dependency."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE_FOLDERS = ("swin_umamba", "preprocessing", "nnunet_plans")  # what pyproject.toml installs
# top-level modules an optional distribution installs under another name, for machines without it
PROVIDED_BY = {"selective_scan_cuda": "mamba-ssm"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_normal(re.match(r"[A-Za-z0-9_.-]+", r).group(0)) for r in requirements}


def _imported_top_level_modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in PACKAGE_FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], path)
    return found


@pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11")
def test_every_third_party_import_of_the_package_is_declared():
    declared = _declared()
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, path in _imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module in ("swin_umamba", "__future__"):
            continue
        # an installed module maps to its distribution (PIL -> Pillow); one that is not installed here
        # (an optional CUDA package) must be declared under its own name
        names = {_normal(d) for d in distributions.get(module, [])} or {_normal(PROVIDED_BY.get(module, module))}
        if not names & declared:
            missing.append(f"{module} (imported by {path.relative_to(REPO)})")
    assert not missing, f"imported but not declared in pyproject.toml: {', '.join(missing)}"


def test_the_maintainers_dataset_script_is_not_installed():
    import swin_umamba.preprocessing as preprocessing

    assert not (Path(preprocessing.__file__).parent / "make_demo_dataset.py").exists()
    assert (REPO / "tools" / "make_demo_dataset.py").is_file()
