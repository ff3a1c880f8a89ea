"""The package's import graph, read from the source (ast): no cycles, and no layer imports one above it.

Layers, lowest first; a module may import its own layer and the ones below. Imports under
``if TYPE_CHECKING:`` are for type hints only and are not followed; imports inside functions are.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "landscape_pl"
LAYERS = [
    ("base", {"errors", "atomic", "trust", "tasks", "distributed", "devices", "labels", "layout", "recipes", "console"}),
    ("core", {"data", "models", "paths", "symmetry", "analysis", "io", "plots", "reporting"}),
    ("training", {"evaluation", "modules", "callbacks", "search", "fitting"}),
    ("library", {"api"}),
    ("orchestration", {"study"}),
    ("commands", {"commands"}),
    ("edge", {"cli", "__main__", "__init__"}),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for index, (_, members) in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"{module} is in no layer: add its top-level name to LAYERS")


def type_checking_only(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(path: Path) -> set[str]:
    """The package modules a file imports, anywhere in it but under ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("landscape_pl"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("landscape_pl"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name for name in found if name in MODULES}


GRAPH = {name: imports(path) - {name} for name, path in MODULES.items()}


def upward(graph: dict[str, set[str]]) -> list[str]:
    return [f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
            for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a)]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_layer_imports_a_higher_one() -> None:
    assert not upward(GRAPH), "\n".join(upward(GRAPH))


def test_no_import_cycles() -> None:
    assert not cycles(GRAPH)


def test_only_the_cli_imports_the_commands() -> None:
    offenders = [a for a, targets in GRAPH.items() if not a.startswith("landscape_pl.commands") and a != "landscape_pl.cli"
                 and any(b.startswith("landscape_pl.commands") for b in targets)]
    assert not offenders


def test_the_checks_find_a_planted_upward_import_and_its_cycle() -> None:
    """paths.grid importing api.lines (which imports paths.grid) is both an upward import and a cycle."""
    assert "landscape_pl.paths.grid" in GRAPH["landscape_pl.api.lines"]
    planted = {name: set(targets) for name, targets in GRAPH.items()}
    planted["landscape_pl.paths.grid"].add("landscape_pl.api.lines")
    assert upward(planted) == ["landscape_pl.paths.grid (core) imports landscape_pl.api.lines (library)"]
    assert ["landscape_pl.api.lines", "landscape_pl.paths.grid"] in cycles(planted)
