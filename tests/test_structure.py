"""The package's shape: no import cycles, no oversized modules, no private names shared.

Everything here reads the source with the standard library's :mod:`ast`; nothing is imported,
so the checks see function-level imports too (an import inside a function is still a
dependency: it only moves the failure from import time to call time).

How the import graph is built
-----------------------------
* One node per module of ``medpose/``; a package's node is its ``__init__.py``.
* Every ``import``/``from ... import`` anywhere in a module (top level, functions, classes,
  ``try``) adds an edge, except those under ``if TYPE_CHECKING:``, which never run.
* ``import a.b.c`` is an edge to ``a.b.c`` only.  Its parent packages are also executed, but
  by the time a submodule runs its parents are already being imported, so counting them would
  make every package ``__init__`` that re-exports its submodules look like a cycle.
* ``from a.b import c`` is an edge to the module ``a.b.c`` when that is a submodule, else to
  ``a.b`` (an attribute of the package, so its ``__init__`` runs).  Relative imports are
  resolved against the importing module's package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "medpose"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Largest module, in lines; the exceptions are listed with their reason.
MAX_LINES = 600
LONG_MODULES: set[str] = set()


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module


def _load_modules() -> dict[str, Module]:
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        name = ".".join(parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        modules[name] = Module(name, path, is_package, tree)
    return modules


MODULES = _load_modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node under ``node``, skipping the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _runtime_nodes(other)
            continue
        yield child
        yield from _runtime_nodes(child)


def _resolve_base(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module name that ``from <base> import ...`` refers to."""
    if node.level == 0:
        return node.module or ""
    package = module.name.split(".")
    if not module.is_package:
        package = package[:-1]
    if node.level > 1:
        package = package[: len(package) - (node.level - 1)]
    base = ".".join(package)
    return f"{base}.{node.module}" if node.module else base


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int


@dataclass(frozen=True)
class PrivateUse:
    module: str
    line: int
    origin: str
    name: str


def _in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def _owning_module(name: str) -> str | None:
    """The longest prefix of dotted ``name`` that is a module of the package."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _scan(module: Module) -> tuple[list[Edge], list[PrivateUse]]:
    """Import edges of ``module`` and the private names it takes from other modules."""
    edges: list[Edge] = []
    private: list[PrivateUse] = []
    module_aliases: dict[str, str] = {}  # local name -> medpose module it is bound to
    attributes: list[ast.Attribute] = []
    for node in _runtime_nodes(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _in_package(alias.name):
                    continue
                target = _owning_module(alias.name)
                if target is not None:
                    edges.append(Edge(module.name, target, node.lineno))
                if alias.asname is not None and alias.name in MODULES:
                    module_aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_base(module, node)
            if not _in_package(base):
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in MODULES:  # a submodule
                    edges.append(Edge(module.name, full, node.lineno))
                    module_aliases[alias.asname or alias.name] = full
                    continue
                target = _owning_module(base)
                if target is not None:
                    edges.append(Edge(module.name, target, node.lineno))
                if _is_private(alias.name) and target != module.name:
                    private.append(PrivateUse(module.name, node.lineno, base, alias.name))
        elif isinstance(node, ast.Attribute):
            attributes.append(node)
    # ``from . import util`` then ``util._helper``: the same sharing, spelled differently.
    for node in attributes:
        value = node.value
        if isinstance(value, ast.Name) and value.id in module_aliases and _is_private(node.attr):
            origin = module_aliases[value.id]
            if origin != module.name and f"{origin}.{node.attr}" not in MODULES:
                private.append(PrivateUse(module.name, node.lineno, origin, node.attr))
    edges = [edge for edge in edges if edge.target != edge.source]
    return edges, private


SCANS = {name: _scan(module) for name, module in MODULES.items()}


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (Tarjan 1972, SIAM J. Comput. 1(2):146-160), iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _import_graph() -> tuple[dict[str, set[str]], list[Edge]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    all_edges: list[Edge] = []
    for edges, _ in SCANS.values():
        for edge in edges:
            graph[edge.source].add(edge.target)
            all_edges.append(edge)
    return graph, all_edges


def _cycles() -> list[list[str]]:
    graph, _ = _import_graph()
    return [c for c in _strongly_connected(graph) if len(c) > 1]


# ---------------------------------------------------------------- the checker itself


def test_scc_finds_a_known_cycle_and_nothing_in_a_dag():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": set(), "f": {"d"}}
    components = sorted(c for c in _strongly_connected(graph) if len(c) > 1)
    assert components == [["a", "b", "c"]]
    dag = {"a": {"b", "c"}, "b": {"c"}, "c": set()}
    assert all(len(c) == 1 for c in _strongly_connected(dag))


def test_scc_separates_two_cycles_joined_by_one_way_edge():
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}}
    components = sorted(c for c in _strongly_connected(graph) if len(c) > 1)
    assert components == [["a", "b"], ["c", "d"]]


def test_scanner_sees_function_level_relative_and_submodule_imports(tmp_path):
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from . import data\n"  # submodule of medpose
        "from .io import _util\n"  # private module: allowed, it is a module
        "from .kinematics import Skeleton\n"  # package attribute: the package __init__
        "if TYPE_CHECKING:\n"
        "    from .protocol.session import Session\n"  # never runs: no edge
        "def f():\n"
        "    from .geometry import Transform, _private\n"  # function level still counts
        "    return _util._helper\n"  # private attribute of another module
    )
    module = Module("medpose.fake", tmp_path / "fake.py", False, ast.parse(source))
    edges, private = _scan(module)
    targets = {edge.target for edge in edges}
    assert targets == {"medpose.data", "medpose.io._util", "medpose.kinematics", "medpose.geometry"}
    assert {(use.origin, use.name) for use in private} == {
        ("medpose.geometry", "_private"),
        ("medpose.io._util", "_helper"),
    }


def test_relative_imports_resolve_from_packages_and_modules():
    init = Module("medpose.io", ROOT / "io" / "__init__.py", True, ast.parse(""))
    leaf = Module("medpose.io.trc", ROOT / "io" / "trc.py", False, ast.parse(""))
    node = ast.parse("from ._util import x").body[0]
    up = ast.parse("from ..geometry import x").body[0]
    assert isinstance(node, ast.ImportFrom) and isinstance(up, ast.ImportFrom)
    assert _resolve_base(init, node) == "medpose.io._util"
    assert _resolve_base(leaf, node) == "medpose.io._util"
    assert _resolve_base(leaf, up) == "medpose.geometry"


# ---------------------------------------------------------------- the package


def test_package_has_modules():
    assert "medpose" in MODULES and "medpose.geometry" in MODULES and len(MODULES) > 20


def test_no_import_cycles():
    cycles = _cycles()
    if cycles:
        _, edges = _import_graph()
        lines = []
        for component in cycles:
            members = set(component)
            lines.append("cycle: " + ", ".join(component))
            inside = {e for e in edges if e.source in members and e.target in members}
            for edge in sorted(inside, key=lambda e: (e.source, e.line, e.target)):
                lines.append(f"    {edge.source}:{edge.line} -> {edge.target}")
        pytest.fail("import cycles in medpose/:\n" + "\n".join(lines))


def test_no_module_over_the_line_limit():
    too_long = []
    for name, module in MODULES.items():
        count = len(module.path.read_text(encoding="utf-8").splitlines())
        if count > MAX_LINES and name not in LONG_MODULES:
            too_long.append(f"{name}: {count} lines")
    assert not too_long, f"modules over {MAX_LINES} lines: " + "; ".join(too_long)


def test_long_module_exceptions_still_exist():
    assert LONG_MODULES.issubset(MODULES)


def test_no_private_name_shared_between_modules():
    uses = [use for _, private in SCANS.values() for use in private]
    found = [f"{u.module}:{u.line} uses {u.origin}.{u.name}" for u in uses]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_py_typed_marker_ships():
    assert (ROOT / "py.typed").is_file()
