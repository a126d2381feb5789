"""The package's modules import each other without cycles.

The graph is read from the source with ``ast``: every import that runs, at module
level or inside a function (a function-local import can hide a cycle as well as it
can defer a module). Imports under ``if TYPE_CHECKING:`` never run and are left out.
A function-local import is kept only to defer a heavy optional module, and says so
in a comment on its line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE_ROOT = SOURCE_ROOT / "cardlink" / "database"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, *, in_function: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    """Every import statement that runs, with whether it sits inside a function."""
    for node in ast.iter_child_nodes(tree):
        if _is_type_checking_block(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
        nested = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        yield from _imports(node, in_function=nested)


def _targets(module: str, is_package: bool, node: ast.stmt, known: set[str]) -> set[str]:
    """The package modules an import statement loads."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    found = set()
    for alias in node.names:
        submodule = f"{source}.{alias.name}"
        if submodule in known:
            found.add(submodule)  # ``from . import migrate`` loads the submodule
        elif source in known:
            found.add(source)
    return found


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    """(module -> the package modules it imports, function-local imports without a comment)."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    uncommented = []
    for name, path in modules.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        edges: set[str] = set()
        for node, in_function in _imports(ast.parse(source)):
            edges |= _targets(name, path.name == "__init__.py", node, known)
            if in_function and "#" not in lines[node.lineno - 1]:
                uncommented.append(f"{path.relative_to(SOURCE_ROOT)}:{node.lineno}")
        graph[name] = edges - {name}
    return graph, uncommented


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
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
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _is_ancestor(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def test_the_package_has_no_import_cycle() -> None:
    graph, _ = _graph()
    # Importing a submodule runs its parent packages first; that is not a cycle.
    graph = {
        module: {target for target in targets if not _is_ancestor(target, module)}
        for module, targets in graph.items()
    }
    assert graph.get("cardlink.database.manager")
    assert _cycles(graph) == []


def test_every_function_local_import_says_why_in_a_comment() -> None:
    _, uncommented = _graph()
    assert uncommented == []


def test_the_engine_owner_does_not_import_alembic_or_the_migration_api() -> None:
    tree = ast.parse((PACKAGE_ROOT / "manager.py").read_text(encoding="utf-8"))
    names = set()
    for node, _ in _imports(tree):
        if isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
        else:
            names.update(alias.name for alias in node.names)
    assert not {name for name in names if name.startswith("alembic")}
    assert ".migrate" not in names


def test_the_cycle_finder_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
