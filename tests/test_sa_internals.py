"""Private SQLAlchemy names stay behind one fence: ``cardlink/database/_sa_internals.py``.

These tests read the package's source (no database): outside the fence no module
reaches a private SQLAlchemy attribute, constructs ORM state, or writes into an
object's slots; and the names the fence relies on are where it expects them in the
installed SQLAlchemy (CI also runs this against the newest release allowed).
"""

from __future__ import annotations

import ast
import re
import uuid
from pathlib import Path

import pytest

import cardlink.database
from cardlink.database import _sa_internals

PACKAGE = Path(cardlink.database.__file__).resolve().parent
FENCE = PACKAGE / "_sa_internals.py"
#: ``Row``'s documented API is spelled with one underscore, to stay clear of column names.
PUBLIC_ROW_NAMES = {"_mapping", "_asdict", "_fields", "_t", "_tuple"}


def _sources() -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text(encoding="utf-8"), str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _names_defined_here(trees: dict[Path, ast.Module]) -> set[str]:
    """Private names the package defines itself: functions, classes, attributes it assigns."""
    defined: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                defined.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined.add(node.target.id)
    defined.update(path.stem for path in trees)  # modules, named in docstrings
    return {name for name in defined if _is_private(name)}


def _annotation_nodes(tree: ast.Module) -> set[int]:
    """Nodes inside annotations: naming a class there (``InstanceState[...]``) is fine."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            every = arguments.posonlyargs + arguments.args + arguments.kwonlyargs
            every += [arg for arg in (arguments.vararg, arguments.kwarg) if arg is not None]
            annotations = [arg.annotation for arg in every] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            if annotation is not None:
                inside.update(id(child) for child in ast.walk(annotation))
    return inside


#: Reaching these lets code build ORM state or write into an object's slots by hand.
BY_HAND = {"InstanceState", "object.__setattr__", "uuid.UUID.__new__", "UUID.__new__"}
PRIVATE_IN_TEXT = re.compile(r"\.(_[a-z]\w*)|\b(_sa_\w+)")


def _names_as_text(node: ast.Call | ast.Subscript | ast.Dict) -> list[str]:
    """Attribute names given as text: ``getattr(x, "_name")``, ``x.__dict__["_name"]``, a
    dict key."""
    if isinstance(node, ast.Call):
        by_name = isinstance(node.func, ast.Name) and node.func.id in _ATTRIBUTE_FUNCTIONS
        candidates = node.args[1:2] if by_name else []
    elif isinstance(node, ast.Subscript):
        candidates = [node.slice]
    else:
        candidates = [key for key in node.keys if key is not None]
    return [
        candidate.value
        for candidate in candidates
        if isinstance(candidate, ast.Constant) and isinstance(candidate.value, str)
    ]


_ATTRIBUTE_FUNCTIONS = {"getattr", "hasattr", "setattr", "delattr"}


def _findings(path: Path, tree: ast.Module, own: set[str]) -> list[str]:
    where = path.relative_to(PACKAGE.parent.parent)
    in_annotation = _annotation_nodes(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            receiver = node.value
            on_own_object = isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")
            if not on_own_object and node.attr not in own | PUBLIC_ROW_NAMES:
                found.append(f"{line}: attribute {node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            module_parts = (node.module or "").split(".")
            names = [alias.name for alias in node.names]
            if any(_is_private(part) for part in module_parts + names):
                found.append(f"{line}: import from {node.module}: {names}")
        elif isinstance(node, ast.Call | ast.Subscript | ast.Dict):
            for text in _names_as_text(node):
                if _is_private(text) and text not in own:
                    found.append(f"{line}: name {text!r} as text (getattr/setattr/dict key)")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            for dotted, prefixed in PRIVATE_IN_TEXT.findall(text):
                name = dotted or prefixed
                if name not in own | PUBLIC_ROW_NAMES:
                    found.append(f"{line}: attribute {name} in text (generated code)")
        if (
            isinstance(node, ast.Name | ast.Attribute)
            and ast.unparse(node) in BY_HAND
            and id(node) not in in_annotation
        ):
            found.append(f"{line}: {ast.unparse(node)} used outside an annotation")
    return found


def test_no_module_but_the_fence_touches_a_private_sqlalchemy_name() -> None:
    trees = _sources()
    own = _names_defined_here({path: tree for path, tree in trees.items() if path != FENCE})
    own.add(FENCE.stem)  # naming the fence is fine
    found = [
        finding
        for path, tree in trees.items()
        if path != FENCE
        for finding in _findings(path, tree, own)
    ]
    assert found == [], "private names outside _sa_internals.py:\n" + "\n".join(found)


def test_the_check_itself_catches_each_kind_of_private_use() -> None:
    """The walker above is what keeps the fence: it must see each way in, not just one."""
    source = (
        "from sqlalchemy.orm.state import InstanceState\n"
        "from sqlalchemy.orm import _private_helper\n"
        "states = session.identity_map._dict\n"
        "flag = getattr(connection, '_has_events', True)\n"
        "state = InstanceState(entity, manager)\n"
        "set_slot = object.__setattr__\n"
        "LOOP = 'state._instance_dict = weak_map'\n"
        "ITEMS = '{\"_sa_instance_state\": state}'\n"
        "def fine(state: InstanceState[Any]) -> None: ...\n"
        "ok = row._mapping\n"
        "name = f'ck_{column}_range'\n"
        "state = entity.__dict__['_sa_state']\n"
        "mine = self._own\n"
    )
    found = _findings(PACKAGE / "example.py", ast.parse(source), own=set())
    kinds = sorted(finding.split(": ", 1)[1] for finding in found)
    assert kinds == [
        "InstanceState used outside an annotation",
        "attribute _dict",
        "attribute _instance_dict in text (generated code)",
        "attribute _sa_instance_state in text (generated code)",
        "attribute _sa_state in text (generated code)",
        "import from sqlalchemy.orm: ['_private_helper']",
        "name '_has_events' as text (getattr/setattr/dict key)",
        "name '_sa_state' as text (getattr/setattr/dict key)",
        "object.__setattr__ used outside an annotation",
    ]


def test_the_private_names_the_fast_path_needs_are_present_in_this_sqlalchemy() -> None:
    """Fails the day a SQLAlchemy release moves one: the fast loaders would then fall
    back to the plain ORM query (slower, still correct), which should be noticed."""
    assert _sa_internals.ORM_NAMES_PRESENT
    assert _sa_internals.UUID_SLOTS_AS_EXPECTED


def test_the_fast_path_switch_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_sa_internals.FAST_PATH_VARIABLE, raising=False)
    assert _sa_internals.fast_path_enabled()
    monkeypatch.setenv(_sa_internals.FAST_PATH_VARIABLE, "0")
    assert not _sa_internals.fast_path_enabled()
    monkeypatch.setenv(_sa_internals.FAST_PATH_VARIABLE, "1")
    assert _sa_internals.fast_path_enabled()


@pytest.mark.parametrize(
    "text", ["0123456789abcdef0123456789abcdef", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "0" * 32]
)
def test_uuid_from_hex_gives_what_uuid_gives(text: str) -> None:
    built = _sa_internals.uuid_from_hex(text)
    expected = uuid.UUID(hex=text)
    assert built == expected and hash(built) == hash(expected)
    assert (str(built), built.is_safe, built.version) == (
        str(expected),
        expected.is_safe,
        expected.version,
    )
    with pytest.raises(ValueError):
        _sa_internals.uuid_from_hex("g" * 32)
