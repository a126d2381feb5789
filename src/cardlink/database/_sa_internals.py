"""The only module that touches private SQLAlchemy names, or writes into ``uuid.UUID``'s slots.

The fast loaders (``repositories/fast_load.py``) build persistent ORM objects from
rows the way SQLAlchemy's own loader does (``orm/loading.py``), without its
general machinery. That needs a few names SQLAlchemy does not publish; they are
all here, each with why it is needed and what the public fallback is:

``InstanceState(obj, manager)`` (constructed), and its ``key`` and ``session_id`` set
    A new object's ORM state, placed in the object's ``__dict__`` under
    ``ClassManager.STATE_ATTR`` together with the row's values, then given its
    identity and session. Public fallback: the plain ORM query.
The session's identity map's ``_dict`` and ``_wr``; ``InstanceState._instance_dict``
    The identity map's key -> state dict and the weak reference a state keeps to
    its map. A fresh session's objects are registered by writing both, as the
    inlined ``_add_unpresent`` does. Public fallback: the plain ORM query.
The identity map's ``_add_unpresent(state, key)``
    Registers a new state under a key the map does not hold (the ORM loader's
    own call). Public fallback: the plain ORM query.
``Connection._has_events``
    Whether listeners were added to one ``Connection``; SQLAlchemy checks the same
    flag before each statement. Public fallback (taken when the flag is gone):
    look into ``connection.dispatch`` on every call.
``uuid.UUID``'s ``int`` and ``is_safe`` slots
    ``uuid_from_hex`` fills them for text already known to be 32 hex digits, where
    ``UUID.__init__`` would check its form again. Public fallback (taken when the
    slots differ): ``uuid.UUID(int=int(text, 16))``.

``fast_path_enabled()`` says whether the fast loaders run: they need every name
above to be where this module expects it (checked once, at import), and
``CARDLINK_DB_FAST_PATH=0`` in the environment turns them off, so every read goes
through the plain ORM query. CI runs the SQLite tests against the newest
SQLAlchemy release the package allows, and ``tests/test_sa_internals.py`` fails
when a name has moved.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import InstanceState, Session
from sqlalchemy.orm.instrumentation import ClassManager

#: Set to ``0`` to build every entity through the plain ORM query (read on each load).
FAST_PATH_VARIABLE = "CARDLINK_DB_FAST_PATH"

#: A loop that turns rows into new persistent objects of one model in a fresh session.
NewEntities = Callable[
    [Session, type[Any], Any, Sequence[Any], Sequence[Any], Sequence[Any]], list[Any]
]


def _identity_map_names_present() -> bool:
    """Whether the installed SQLAlchemy keeps the identity map as this module expects."""
    probe = Session().identity_map  # the class is private too (WeakInstanceDict in 2.0)
    return (
        isinstance(getattr(probe, "_dict", None), dict)
        and callable(getattr(probe, "_wr", None))
        and callable(getattr(probe, "_add_unpresent", None))
        and "_instance_dict" in dir(InstanceState)
    )


#: The private names the fast loaders need are present in this SQLAlchemy.
ORM_NAMES_PRESENT = _identity_map_names_present()


def fast_path_enabled() -> bool:
    """Whether the fast loaders run: the names they need are present and the environment
    does not turn them off (``CARDLINK_DB_FAST_PATH=0``)."""
    return ORM_NAMES_PRESENT and os.environ.get(FAST_PATH_VARIABLE, "1") != "0"


# -- new persistent objects, as orm/loading.py makes them --------------------------------------

#: The instance attribute that holds an object's ORM state (named on ``ClassManager``).
_STATE_ATTRIBUTE = str(ClassManager.STATE_ATTR)

_LOOP = """\
def new_entities(rows, columns, pinned, model, manager, new_state, held, weak_map, session_key):
    ({columns}) = columns
    ({pinned}) = pinned
    found = []
    append = found.append
    create = model.__new__
    for {target} in {source}:
        entity = create(model)
        state = new_state(entity, manager)
        entity.__dict__ = {{{state_attribute!r}: state, {items}}}
        identity = (model, ({key},), None)
        state.key = identity
        state.session_id = session_key
        state._instance_dict = weak_map
        held[identity] = state
        append(entity)
    return found
"""


def compile_new_entities(
    keys: Sequence[str],
    key_index: int,
    selected: Sequence[int],
    decoded: Sequence[int],
    pinned: Sequence[int],
) -> NewEntities:
    """A loop, compiled for these attribute names, that builds new persistent objects.

    Each row holds the ``selected`` columns of ``keys`` (in order); the ``decoded``
    columns come apart, converted as whole columns, and each ``pinned`` column has one
    value for every row. Each object's ``__dict__`` is one dict display, and its state
    is registered in the session's identity map as ``_add_unpresent`` does. Only for a
    session whose identity map is empty: a row never meets an object already held.
    """
    if not all(key.isidentifier() for key in keys):
        raise ValueError(f"not attribute names: {list(keys)!r}")
    value = {index: f"v{index}" for index in selected}
    value.update({index: f"d{index}" for index in decoded})
    value.update({index: f"p{index}" for index in pinned})
    row = "(" + "".join(f"v{index}, " for index in selected) + ")"
    source = _LOOP.format(
        columns="".join(f"c{index}, " for index in decoded),
        pinned="".join(f"p{index}, " for index in pinned),
        target=row + "".join(f", d{index}" for index in decoded),
        source=f"zip(rows, {', '.join(f'c{index}' for index in decoded)})" if decoded else "rows",
        state_attribute=_STATE_ATTRIBUTE,
        items=", ".join(f"{key!r}: {value[index]}" for index, key in enumerate(keys)),
        key=value[key_index],
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<row builder {', '.join(keys)}>", "exec"), namespace)
    loop: Callable[..., list[Any]] = namespace["new_entities"]

    def new_entities(
        session: Session,
        model: type[Any],
        manager: Any,
        rows: Sequence[Any],
        columns: Sequence[Any],
        pinned_values: Sequence[Any],
    ) -> list[Any]:
        identity_map: Any = session.identity_map
        return loop(
            rows,
            columns,
            pinned_values,
            model,
            manager,
            InstanceState,
            identity_map._dict,
            identity_map._wr,
            session.hash_key,
        )

    return new_entities


def entities_beside_held(
    session: Session,
    model: type[Any],
    manager: Any,
    keys: Sequence[str],
    key_index: int,
    rows: Iterable[Sequence[Any]],
) -> list[Any]:
    """Persistent objects for whole rows in a session that already holds objects.

    A held identity wins and is returned unchanged, as a query without
    ``populate_existing`` does; the other rows become new objects registered with
    ``_add_unpresent``, the ORM loader's own call.
    """
    identity_map: Any = session.identity_map
    session_key = session.hash_key
    new_instance = manager.new_instance
    add, held = identity_map._add_unpresent, identity_map.get
    found: list[Any] = []
    for row in rows:
        identity = (model, (row[key_index],), None)
        entity = held(identity)
        if entity is None:
            entity = new_instance()
            entity.__dict__.update(zip(keys, row, strict=False))
            state = entity.__dict__[_STATE_ATTRIBUTE]
            state.key = identity
            state.session_id = session_key
            add(state, identity)
        found.append(entity)
    return found


# -- statements on the driver's cursor ---------------------------------------------------------


def connection_may_have_listeners(connection: Connection) -> bool:
    """Whether listeners may have been added to this one ``connection``.

    SQLAlchemy's own flag, checked before each statement; without it (a release that
    renamed it) the answer is yes and the caller looks into ``connection.dispatch``.
    """
    return bool(getattr(connection, "_has_events", True))


# -- uuid.UUID without re-checking its form ----------------------------------------------------

_new_uuid = uuid.UUID.__new__
_set_slot = object.__setattr__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown


def _uuid_from_hex_by_slots(text: str) -> uuid.UUID:
    value = _new_uuid(uuid.UUID)
    _set_slot(value, "int", int(text, 16))
    _set_slot(value, "is_safe", _UNKNOWN_SAFETY)
    return value


def _uuid_from_hex_public(text: str) -> uuid.UUID:
    return uuid.UUID(int=int(text, 16))


def _uuid_slots_as_expected() -> bool:
    """Whether ``UUID`` still keeps exactly its value and safety in two slots."""
    sample = "0123456789abcdef0123456789ABCDEF"
    try:
        built = _uuid_from_hex_by_slots(sample)
        return (
            set(uuid.UUID.__slots__) <= {"int", "is_safe", "__weakref__"}
            and built == uuid.UUID(hex=sample)
            and built.is_safe is uuid.UUID(hex=sample).is_safe
            and hash(built) == hash(uuid.UUID(hex=sample))
        )
    except (AttributeError, TypeError):
        return False


#: ``uuid_from_hex``'s slot writes match what ``UUID.__init__`` stores in this Python.
UUID_SLOTS_AS_EXPECTED = _uuid_slots_as_expected()

#: ``uuid.UUID(hex=text)`` for text known to be 32 hex digits; a non-hex digit raises ValueError.
uuid_from_hex: Callable[[str], uuid.UUID] = (
    _uuid_from_hex_by_slots if UUID_SLOTS_AS_EXPECTED else _uuid_from_hex_public
)
