"""Three layers, one direction: `providers/` (catalogue, configs, pure wire adapters) imports neither
`accounting/` nor `gomodel/`; `accounting/` (tenants, keys, prices, usage) never imports `gomodel/`.
Checked on every import statement of every module, including imports inside functions."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"providers": {"gomodel", "accounting"}, "accounting": {"gomodel"}}


def imported_packages(root: Path, path: Path, package: str) -> set[str]:
    """Top-level package of every module that `path` imports (relative imports resolved)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside its own top-level package unless it climbs out
                depth = len(path.relative_to(root).parts) - 1  # directories between ROOT and the file
                found.add(package if node.level <= depth else "<outside>")
            elif node.module:
                found.add(node.module.split(".")[0])
    return found


def violations(package: str, root: Path = ROOT) -> list[str]:
    out = []
    for path in sorted((root / package).rglob("*.py")):
        bad = imported_packages(root, path, package) & (FORBIDDEN[package] | {"<outside>"})
        out += [f"{path.relative_to(root).as_posix()} imports {name}" for name in sorted(bad)]
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(package):
    assert list((ROOT / package).rglob("*.py")), f"{package}/ has no modules: the walk would prove nothing"
    assert violations(package) == []


def test_the_walk_sees_imports_inside_functions_and_relative_climbs(tmp_path):
    (tmp_path / "providers" / "anthropic").mkdir(parents=True)
    (tmp_path / "providers" / "probe.py").write_text(
        "import os\nfrom . import base\n\ndef f():\n    from gomodel.gateway import runtime\n"
        "    import accounting.usage\n")
    (tmp_path / "providers" / "anthropic" / "climb.py").write_text("from ..base import Target\nfrom ... import x\n")
    assert violations("providers", tmp_path) == ["providers/anthropic/climb.py imports <outside>",
                                                 "providers/probe.py imports accounting",
                                                 "providers/probe.py imports gomodel"]
