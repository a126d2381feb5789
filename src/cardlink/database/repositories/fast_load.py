"""Loading many rows of a simple entity as ORM objects, without the general ORM loader's cost.

``find_by_session`` returns a session's hundreds of logs; SQLAlchemy's ORM loader
spends more per row than the database and driver together (it handles eager
loads, polymorphism, versioning, refreshes and events, none of which a log
uses). ``load_entities`` builds the same persistent objects from a Core result:
each row becomes an instance of the mapped class, registered in the session's
identity map under its primary key, exactly as a query would leave it (lazy
relationships load on access, changes are tracked and flushed). A row whose
identity the session already holds returns that object unchanged, as a query
without ``populate_existing`` does. Classes with ``load`` event listeners (e.g.
mutable JSON columns) go through the ORM instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, inspect, select
from sqlalchemy.orm import Session, configure_mappers
from sqlalchemy.orm.state import InstanceState


class EntityLoader:
    """Builds ``model`` objects from rows of ``core_select(model)``; one per model."""

    def __init__(self, model: type[Any]) -> None:
        configure_mappers()
        mapper = inspect(model)
        self.model = model
        self.table = mapper.local_table
        self.columns = list(self.table.columns)
        self.keys = [mapper.get_property_by_column(column).key for column in self.columns]
        (key_column,) = mapper.primary_key
        self.key_index = self.columns.index(key_column)
        self.manager = mapper.class_manager
        self.supported = not mapper.inherits and not self.manager.dispatch.load

    def select(self) -> Select[Any]:
        """A Core SELECT of every column, in the order ``load`` expects."""
        return select(*self.columns)

    def load(self, session: Session, statement: Any, params: Any = None) -> list[Any]:
        """Run ``statement`` (built on ``select()``) in ``session`` and return entities."""
        if session.autoflush:
            session.flush()  # what a query's autoflush does; a no-op when nothing is pending
        rows = session.connection().execute(statement, params).all()
        identity_map = session.identity_map
        if len(identity_map):
            return self._load_into_held(session, rows)
        # A fresh unit of work holds nothing yet: no row can match a held identity, so
        # each row becomes a new persistent object, registered as the ORM's loader does.
        session_key, weak_map, held = session.hash_key, identity_map._wr, identity_map._dict
        model, manager, keys, key_index = self.model, self.manager, self.keys, self.key_index
        create: Any = model.__new__
        state_for = InstanceState
        found: list[Any] = []
        append = found.append
        for row in rows:
            entity = create(model)
            state = state_for(entity, manager)
            values = entity.__dict__
            values["_sa_instance_state"] = state
            values.update(zip(keys, row, strict=False))
            identity = (model, (row[key_index],), None)
            state.key = identity
            state.session_id = session_key
            state._instance_dict = weak_map
            held[identity] = state
            append(entity)
        return found

    def _load_into_held(self, session: Session, rows: Any) -> list[Any]:
        """``load`` for a session that already holds objects: a held identity wins."""
        identity_map = session.identity_map
        session_key = session.hash_key
        new_instance = self.manager.new_instance
        model, keys, key_index = self.model, self.keys, self.key_index
        add, held = identity_map._add_unpresent, identity_map.get
        found: list[Any] = []
        for row in rows:
            identity = (model, (row[key_index],), None)
            entity = held(identity)
            if entity is None:
                entity = new_instance()
                entity.__dict__.update(zip(keys, row, strict=False))
                state = entity.__dict__["_sa_instance_state"]
                state.key = identity
                state.session_id = session_key
                add(state, identity)
            found.append(entity)
        return found
