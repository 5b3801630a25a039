"""The layout stays what docs/architecture.md draws: small modules, and imports that point one way.

The import graph is read from the source (every ``import``, at module level or inside a
function; only those under ``if TYPE_CHECKING:`` are left out, since they never run), so a lazy
import that closes a circle fails here as surely as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "asgispy"
MAX_LINES = 400

#: Each package (or top-level module) and what it may import, by the layers of
#: docs/architecture.md; a name not listed here fails the test, so a new package is placed.
ALLOWED: dict[str, set[str]] = {
    "asgispy.types": set(),
    "asgispy.version": set(),
    "asgispy.codec": {"asgispy.types", "asgispy.version"},
    "asgispy.capture": {"asgispy.types", "asgispy.codec"},
    "asgispy.model": {"asgispy.types", "asgispy.codec"},
    "asgispy.analysis": {"asgispy.types", "asgispy.codec", "asgispy.model"},
    "asgispy.store": {"asgispy.types", "asgispy.codec", "asgispy.model", "asgispy.analysis"},
    # the sending side runs in the app's process, the receiving side (the collector) feeds the store
    "asgispy.wire": {
        "asgispy.types",
        "asgispy.version",
        "asgispy.codec",
        "asgispy.capture",
        "asgispy.model",
        "asgispy.store",
    },
    # the filter language reads the model; rules and addons use it to say what they apply to
    "asgispy.filter": {"asgispy.types", "asgispy.codec", "asgispy.model", "asgispy.analysis"},
    "asgispy.intercept": {
        "asgispy.types",
        "asgispy.codec",
        "asgispy.capture",
        "asgispy.model",
        "asgispy.filter",
    },
    "asgispy.inside": {"asgispy.types", "asgispy.codec", "asgispy.capture"},
    "asgispy.spy": {
        "asgispy.types",
        "asgispy.codec",
        "asgispy.capture",
        "asgispy.inside",
        "asgispy.wire",
        "asgispy.intercept",
    },
}
#: The views: anything below them, never each other unless listed, never the facade.
VIEWS: dict[str, set[str]] = {
    "asgispy.exports": set(),
    "asgispy.imports": set(),
    "asgispy.replay": set(),
    "asgispy.agents": {"asgispy.filter", "asgispy.exports", "asgispy.replay"},
    "asgispy.demo": {"asgispy.exports"},
    "asgispy.pytest_plugin": {"asgispy.exports"},
    "asgispy.tui": {"asgispy.filter", "asgispy.exports", "asgispy.replay"},
    "asgispy.cli": {
        "asgispy.filter",
        "asgispy.exports",
        "asgispy.imports",
        "asgispy.replay",
        "asgispy.agents",
        "asgispy.demo",
        "asgispy.tui",
    },
    "asgispy.__main__": {"asgispy.cli"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """Every import statement that can run, at any depth, but those guarded by TYPE_CHECKING."""

    def __init__(self) -> None:
        self.nodes: list[ast.Import | ast.ImportFrom] = []

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for inner in node.orelse:
                self.visit(inner)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.nodes.append(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.nodes.append(node)


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    visitor = _Imports()
    visitor.visit(tree)
    return visitor.nodes


def _target(name: str) -> str | None:
    """The module of ours that importing ``name`` runs (the longest known prefix)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module; `from mod import name`, the module.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for name in names:
            if name == "asgispy" or name.startswith("asgispy."):
                target = _target(name)
                if target is not None and target != module:
                    found.add(target)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _unit(module: str) -> str:
    """The package a module belongs to (``asgispy.wire``), or the top-level module itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else module


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of more than one node (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                part = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    part.append(member)
                    if member == node:
                        break
                if len(part) > 1:
                    found.append(sorted(part))
    return found


def test_no_module_is_over_the_line_limit() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_two_modules_import_each_other_even_lazily() -> None:
    assert _cycles(GRAPH) == []


def test_no_two_packages_import_each_other() -> None:
    units: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        if module == "asgispy":
            continue  # the facade: it imports the public names, and nothing imports it
        units.setdefault(_unit(module), set()).update(_unit(t) for t in targets if _unit(t) != _unit(module))
    assert _cycles(units) == []


def test_nothing_inside_imports_the_facade() -> None:
    importers = sorted(m for m, targets in GRAPH.items() if "asgispy" in targets)
    assert importers == [], "import from the module that holds the name (asgispy.version for __version__)"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_layer_imports_only_what_lies_below_it(module: str) -> None:
    if module == "asgispy":
        return
    unit = _unit(module)
    foundation = set().union(*ALLOWED.values(), ALLOWED)
    if unit in ALLOWED:
        allowed = ALLOWED[unit]
    else:
        assert unit in VIEWS, f"{unit} is in neither ALLOWED nor VIEWS: place it in the layers"
        allowed = foundation | VIEWS[unit]
    wrong = sorted(t for t in GRAPH[module] if _unit(t) != unit and _unit(t) not in allowed)
    assert wrong == [], f"{module} imports {wrong}, which lie above it or beside it"


def test_the_checker_finds_a_circle_and_a_lazy_import() -> None:
    """The graph reader itself: a function-level import is an arrow, a TYPE_CHECKING one is not."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from asgispy.types import Scope\n"
        "def f():\n    from asgispy.codec import pack\n"
    )
    tree = ast.parse(source)
    modules = [
        n.module or "" if isinstance(n, ast.ImportFrom) else n.names[0].name for n in _import_nodes(tree)
    ]
    assert modules == ["typing", "asgispy.codec"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
