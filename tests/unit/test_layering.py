"""Three layers, one direction: `providers/` (catalogue, configs, pure wire adapters) imports neither
`accounting/` nor `gomodel/`; `accounting/` (tenants, keys, prices, usage) never imports `gomodel/`; the
gateway (`gomodel/gateway/`) imports neither the management API nor the dashboard; and no two modules of
the three packages import each other, directly or round a longer loop. Checked on every import
statement of every module, including imports inside functions."""

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


# -- no import cycles between modules -----------------------------------------------------------------
#
# One edge per import statement, wherever it sits (a function-level import hides a cycle from Python at
# import time, not from this walk): `from pkg import name` points at `pkg.name` when that is a module,
# else at `pkg`; a package's own `__init__` is not implied by importing one of its modules.

CYCLE_PACKAGES = ("gomodel", "providers", "accounting")
# gomodel/gateway/ is the /v1 run time: it never reaches into the management API or the dashboard.
GATEWAY_NEVER_IMPORTS = ("gomodel.api", "gomodel.dashboard")


def module_files(root: Path, packages=CYCLE_PACKAGES) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def import_graph(root: Path = ROOT, packages=CYCLE_PACKAGES) -> dict[str, set[str]]:
    """{module: the project modules it imports}, from every import statement in it."""
    modules = module_files(root, packages)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    targets.add(full if full in modules else known(source))
        targets.discard(None)
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each sorted."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in graph:
                    continue
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def test_no_import_cycle_between_modules():
    graph = import_graph()
    assert {"accounting.usage.drain", "accounting.budgets.services", "gomodel.gateway.app"} <= set(graph)
    assert cycles(graph) == []


def test_the_gateway_imports_neither_the_management_api_nor_the_dashboard():
    graph = import_graph()
    bad = sorted(f"{module} imports {target}" for module, targets in graph.items()
                 if module.startswith("gomodel.gateway") for target in targets
                 if any(target == p or target.startswith(p + ".") for p in GATEWAY_NEVER_IMPORTS))
    assert bad == []


def test_the_cycle_walk_sees_function_level_imports_and_submodules(tmp_path):
    (tmp_path / "accounting" / "budgets").mkdir(parents=True)
    (tmp_path / "gomodel" / "gateway").mkdir(parents=True)
    (tmp_path / "gomodel" / "api").mkdir(parents=True)
    for init in ("accounting", "accounting/budgets", "gomodel", "gomodel/gateway", "gomodel/api"):
        (tmp_path / init / "__init__.py").write_text("")
    (tmp_path / "accounting" / "drain.py").write_text("from .budgets import services\n")
    (tmp_path / "accounting" / "budgets" / "services.py").write_text(
        "def reconcile():\n    from ..drain import lock\n")  # the cycle hidden in a function
    (tmp_path / "accounting" / "usage.py").write_text("from . import usage_metrics\n")
    (tmp_path / "accounting" / "usage_metrics.py").write_text("def spool():\n    import accounting.usage\n")
    (tmp_path / "gomodel" / "gateway" / "views.py").write_text("def f():\n    from gomodel.api import serializers\n")
    (tmp_path / "gomodel" / "api" / "serializers.py").write_text("from accounting.budgets.services import x\n")
    graph = import_graph(tmp_path, ("gomodel", "accounting"))
    assert cycles(graph) == [["accounting.budgets.services", "accounting.drain"],
                             ["accounting.usage", "accounting.usage_metrics"]]
    assert graph["gomodel.gateway.views"] == {"gomodel.api.serializers"}
    assert graph["gomodel.api.serializers"] == {"accounting.budgets.services"}
