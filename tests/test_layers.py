"""The import graph is a contract: packages in layers (each imports only those below it), inside ``search`` its
subpackages and top-level modules in layers too, no two modules importing each other, and the settings and the plan
check (what bad input is refused by) importable without Ray."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
LAYERS = ("backbones", "spaces", "trials", "devices", "search", "dashboards", "benchmarks")  # lowest first
# Inside search, lowest first (search/__init__.py says what each holds): names and pure helpers, the settings and the
# plan's data, then the phases in the order they build on each other, the entry points last.
SEARCH_LAYERS = ("log", "outcomes", "records", "pareto", "samplers", "settings", "execution", "plan_check", "study",
                 "tracking", "confirm", "summary", "export", "proxy", "run")


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


def _search_layer(module: str) -> str | None:
    """The search subpackage or top-level module ``module`` belongs to (``search.execution.tuner`` -> execution); None
    for the package's own ``__init__``, which only re-exports names of the lowest layers."""
    parts = module.split(".")
    return parts[1] if parts[0] == "search" and len(parts) > 1 else None


def test_search_layers_name_every_subpackage_and_module() -> None:
    found = {p.stem if p.is_file() else p.name for p in (REPO / "search").iterdir()
             if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()}
    assert found == set(SEARCH_LAYERS), f"search layers to add or drop: {found ^ set(SEARCH_LAYERS)}"


def test_no_search_subpackage_imports_one_above_it() -> None:
    upward = [(module, target) for module, targets in _imports().items() for target in targets
              if (low := _search_layer(module)) and (high := _search_layer(target))
              and SEARCH_LAYERS.index(high) > SEARCH_LAYERS.index(low)]
    assert not upward, f"imports from a lower search layer to a higher one: {upward}"


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


def _fresh_python(code: str) -> str:
    """What ``code`` prints, run in a fresh interpreter in the repository."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout


def test_settings_load_without_ray() -> None:
    """One fresh interpreter imports each module in turn and says after which one Ray first appeared (one process
    rather than one per module: each start costs seconds of torch imports in CI)."""
    modules = ["search.settings.plan", "search.settings.cli", "search.plan_check", "search.export"]
    out = _fresh_python(f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
                        "    if any(m == 'ray' or m.startswith('ray.') for m in sys.modules):\n        print(name); break\n")
    assert out.strip() == "", f"{out.strip()} imports Ray"


def test_importing_the_search_leaves_the_environment_alone() -> None:
    """Importing a module does no work: environment variables for Ray, Tune and MLflow are set by the functions that
    start them (``search.execution.tuner.ray_runtime``, ``search.export.export``), not at import. One fresh
    interpreter imports the libraries first (their own import-time settings are theirs), then every module of
    ``search`` and ``dashboards``, and prints the variables that changed."""
    modules = sorted(name for name in _imports() if name.split(".")[0] in ("search", "dashboards"))
    code = ("import importlib, os, ray, ray.tune, mlflow, optuna, torch, timm, hydra\n"
            "before = dict(os.environ)\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))\n"
            "print(' '.join(changed))\n")
    out = _fresh_python(code)
    assert out.strip() == "", f"importing the search changed the environment: {out.strip()}"
