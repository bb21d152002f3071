"""The import graph is a contract: packages in layers (each imports only those below it), no two modules importing
each other, and the settings (what bad input is checked against) importable without Ray."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
LAYERS = ("backbones", "spaces", "trials", "devices", "search", "dashboards", "benchmarks")  # lowest first


def _imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports (module level and inside functions alike)."""
    files = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
             for layer in LAYERS for p in (REPO / layer).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    found.add(target)
        graph[name] = found
    return graph


def test_no_package_imports_a_package_above_it() -> None:
    upward = [(module, target) for module, targets in _imports().items() for target in targets
              if LAYERS.index(target.split(".")[0]) > LAYERS.index(module.split(".")[0])]
    assert not upward, f"imports from a lower package to a higher one: {upward}"


def test_no_two_modules_import_each_other() -> None:
    graph = _imports()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                component.append(member)
                on_stack.discard(member)
            on_stack.discard(node)
            if component:
                cycles.append(sorted([node, *component]))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"modules importing each other: {cycles}"


def test_settings_load_without_ray() -> None:
    """One fresh interpreter imports each module in turn and says after which one Ray first appeared (one process
    rather than one per module: each start costs seconds of torch imports in CI)."""
    modules = ["search.settings.plan", "search.settings.cli", "search.export"]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "    if any(m == 'ray' or m.startswith('ray.') for m in sys.modules):\n"
            "        print(name); break\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "", f"{out.strip()} imports Ray"
