"""Writing one table's imported rows: checks, conflict handling and batched Core statements."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, String, bindparam, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from ..bulk import OpenCopy
from ..codec import FieldError, default_value, document_decoder, insert_rows
from ..exceptions import (
    ValidationError,
    describe_integrity_error,
    is_check_violation,
    translated_errors,
)
from .formats import PSK_COLUMN, ConflictMode, check_psk_ciphertext, primary_key, table_for

Counts = dict[str, int]
#: A batch is also written once its free-text fields (APDUs, messages) hold this many
#: characters, so that memory stays bounded when rows are large.
_BATCH_TEXT_CHARACTERS = 2_000_000
#: The parameters one statement may hold in every SQLite build (3.32 raised it to 32,766).
_SQLITE_MAX_PARAMETERS = 999


class TableWriter:
    """Collects a table's rows into batches and writes each batch with executemany."""

    def __init__(
        self,
        session: Session,
        name: str,
        *,
        mode: ConflictMode,
        keep_stored_psk: bool,
        psk_check: Callable[[str, str], None] = check_psk_ciphertext,
        counts: Counts,
        batch_size: int = 5000,
        progress: Callable[[str, int], Any] | None = None,
    ) -> None:
        self.session = session
        self.name = name
        self.table = table_for(name)
        self.key = primary_key(self.table)
        self.mode = mode
        self.counts = counts
        self.batch_size = batch_size
        self.progress = progress
        self.psk_check = psk_check
        self.rows_done = 0
        self.explicit_ids = False
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._pending_text = 0  # characters in the pending rows' unbounded text columns
        self._columns = {column.name: column for column in self.table.columns}
        self._never_updated = (
            {PSK_COLUMN[1]} if keep_stored_psk and name == PSK_COLUMN[0] else set()
        )
        self._foreign_keys = [(fk.parent, fk.column) for fk in self.table.foreign_keys]
        self._plan_cache_mode: str | None = None  # PostgreSQL's, as the import found it
        self._open_insert: tuple[OpenCopy, str] | None = None  # a COPY ending, its rows
        self._decoders = {name: document_decoder(column) for name, column in self._columns.items()}
        self._nulls = {name: None for name, column in self._columns.items() if column.nullable}
        self._text_fields = [
            name
            for name, column in self._columns.items()
            if isinstance(column.type, String) and column.type.length is None
        ]

    def where(self, index: int, field: str | None = None) -> str:
        return f"import: {self.name}[{index}]" + (f".{field}" if field else "")

    # -- collecting --------------------------------------------------------------------

    def add(self, index: int, raw: Any) -> None:
        """Check and decode one document row; writes a batch when enough are collected."""
        if not isinstance(raw, dict):
            kind = type(raw).__name__ if raw is not None else "null"
            raise ValidationError(f"{self.where(index)}: expected an object, got {kind}")
        row = self._decode(raw)
        if row is None:
            row = self._decode_carefully(index, raw)
        token = row.get(PSK_COLUMN[1]) if self.name == PSK_COLUMN[0] else None
        if token is not None:
            self.psk_check(token, self.where(index, PSK_COLUMN[1]))
        key = self.key.name
        if row.get(key) is None:
            if self.key.default is not None:
                row[key] = default_value(self.key)
            elif self.key.autoincrement is not True:
                raise ValidationError(f"{self.where(index, key)}: required field is missing")
        self._pending.append((index, row))
        for name in self._text_fields:
            value = row.get(name)
            if value:
                self._pending_text += len(value)
        if len(self._pending) >= self.batch_size or self._pending_text >= _BATCH_TEXT_CHARACTERS:
            self.flush()

    def _decode(self, raw: dict[Any, Any]) -> dict[str, Any] | None:
        """The decoded row in one pass; None when a field is refused (the careful pass says why).

        An unknown field, or a null in a required one, is a KeyError here: ``_nulls``
        holds only the nullable columns, ``_decoders`` only the known ones.
        """
        decoders, nulls = self._decoders, self._nulls
        try:
            return {
                field: nulls[field] if value is None else decoders[field](value)
                for field, value in raw.items()
            }
        except (
            LookupError,
            TypeError,
            ValueError,
            AttributeError,
            ArithmeticError,
            RecursionError,
        ):
            # Only a refused value: a signal's exception (a timeout) must pass through.
            return None

    def _decode_carefully(self, index: int, raw: dict[Any, Any]) -> dict[str, Any]:
        """Field by field, raising the first refused one's error (table, row and field)."""
        row: dict[str, Any] = {}
        for field, value in raw.items():
            decode = self._decoders.get(field) if isinstance(field, str) else None
            if decode is None:
                valid = ", ".join(self._columns)
                raise ValidationError(
                    f"{self.where(index, str(field))}: unknown field; valid fields: {valid}"
                )
            if value is None:
                if field not in self._nulls:
                    raise ValidationError(f"{self.where(index, field)}: required field is null")
                row[field] = None
                continue
            try:
                row[field] = decode(value)
            except FieldError as error:
                raise ValidationError(f"{self.where(index, field)}: {error}") from None
        return row

    # -- writing -----------------------------------------------------------------------

    def flush(self) -> None:
        """Write the collected rows: new keys inserted, existing ones per the conflict mode."""
        if not self._pending:
            return
        batch, self._pending, self._pending_text = self._pending, [], 0
        key = self.key.name
        keys = {row.get(key) for _, row in batch}
        keys.discard(None)
        existing = self._existing(keys)
        inserts: list[tuple[int, dict[str, Any]]] = []
        updates: list[tuple[int, dict[str, Any]]] = []
        seen: set[Any] = set()
        for index, row in batch:
            value = row.get(key)
            if value is not None and (value in existing or value in seen):
                updates.append((index, row))
            else:
                inserts.append((index, self._complete(index, row)))
                if value is not None:
                    seen.add(value)
        if self.mode is ConflictMode.SKIP:
            self.counts["skipped"] += len(updates)
            updates = []
        else:
            updates = [(index, self._changes(index, row)) for index, row in updates]
        self._check_foreign_keys(inserts + updates)
        self.rows_done += len(batch)
        if self.progress is not None:  # before the writes, which may leave a COPY open
            self.progress(self.name, self.rows_done)
        self._insert(inserts)
        self._update(updates)
        self.counts["created"] += len(inserts)
        self.counts["updated"] += len(updates)

    def finish(self, *, dry_run: bool) -> None:
        """Write the last batch; on PostgreSQL move the log id sequence past imported ids."""
        self.flush()
        self._end_insert()
        if (
            self.explicit_ids
            and not dry_run
            and self.session.get_bind().dialect.name == "postgresql"
        ):
            # Never lower it: a concurrent writer may already hold higher ids.
            name, key = self.table.name, self.key.name
            self._run(
                text(
                    f"SELECT setval(seq, GREATEST((SELECT MAX({key}) FROM {name}), "
                    "pg_sequence_last_value(seq::regclass))) "
                    f"FROM (SELECT pg_get_serial_sequence('{name}', '{key}') AS seq) AS found"
                ),
                None,
                "the id sequence",
            )

    def _complete(self, index: int, row: dict[str, Any]) -> dict[str, Any]:
        """Every column for INSERT/OVERWRITE: defaults for absent ones, required ones checked."""
        if len(row) == len(self._columns):  # every field given (row holds column names only)
            return row
        full: dict[str, Any] = {}
        for name, column in self._columns.items():
            if name in row:
                full[name] = row[name]
            elif column is self.key and column.autoincrement is True:
                continue
            elif column.default is not None:
                full[name] = default_value(column)
            elif column.nullable:
                full[name] = None
            else:
                raise ValidationError(f"{self.where(index, name)}: required field is missing")
        return full

    def _changes(self, index: int, row: dict[str, Any]) -> dict[str, Any]:
        """The SET of an update: all columns (OVERWRITE) or only the incoming ones (MERGE)."""
        values = self._complete(index, row) if self.mode is ConflictMode.OVERWRITE else dict(row)
        return {name: value for name, value in values.items() if name not in self._never_updated}

    def _existing(self, keys: set[Any]) -> set[Any]:
        return self._present(self.key, keys, "looking up keys") if keys else set()

    def _present(self, column: Column[Any], values: set[Any], what: str) -> set[Any]:
        """Which of ``values`` are in ``column``, in one query (SQLite: one per 999 values).

        On PostgreSQL the values go as one array parameter: an IN list of hundreds of
        parameters is parsed and planned afresh for every batch.
        SQLite before 3.32 takes at most 999 parameters in a statement.
        """
        dialect = self.session.get_bind().dialect
        if dialect.name != "postgresql":
            wanted = list(values)
            step = _SQLITE_MAX_PARAMETERS if dialect.name == "sqlite" else len(wanted)
            found: set[Any] = set()
            for start in range(0, len(wanted), step):
                chunk = wanted[start : start + step]
                found.update(
                    self._run(select(column).where(column.in_(chunk)), None, what).scalars()
                )
            return found
        quote = dialect.identifier_preparer.quote
        # TEXT, not VARCHAR(n): a cast to a bounded type would cut a longer value short.
        item_type = "TEXT" if isinstance(column.type, String) else column.type.compile(dialect)
        name, array_type = quote(column.name), f"{item_type}[]"
        statement = text(
            f"SELECT {name} FROM {quote(column.table.name)} "
            f"WHERE {name} = ANY(CAST(:wanted AS {array_type}))"
        )
        if self._plan_cache_mode is None:
            setting = text("SELECT current_setting('plan_cache_mode')")
            self._plan_cache_mode = str(self._run(setting, None, what).scalar_one())
        self._set_plan_cache_mode("force_custom_plan", what)
        found = set(self._run(statement, {"wanted": list(values)}, what).scalars())
        self._set_plan_cache_mode(self._plan_cache_mode, what)
        return found

    def _set_plan_cache_mode(self, mode: str, what: str) -> None:
        """Set PostgreSQL's ``plan_cache_mode`` for the rest of the transaction.

        The key lookups run as prepared statements, and a generic plan made while the
        table was small seq-scans it for every batch's keys (an import of 100,000
        sessions took minutes): they are planned afresh for their values. Only they are,
        and the setting goes back to what it was after each: the server's foreign key
        checks run a kept plan for every inserted row, and planning each of those afresh
        would double the server's work for the rows. A failed statement rolls the
        import's savepoint back, which restores the setting as well.
        """
        statement = text("SELECT set_config('plan_cache_mode', :mode, true)")
        self._run(statement, {"mode": mode}, what)

    def _check_foreign_keys(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        for column, parent in self._foreign_keys:
            wanted = {row[column.name] for _, row in rows if row.get(column.name) is not None}
            # A row may point at another row of this batch (a response at its command).
            here = (
                {row.get(parent.name) for _, row in rows} if parent.table is self.table else set()
            )
            if not wanted - here:
                continue
            found = here | self._present(parent, wanted - here, "checking references")
            if wanted <= found:
                continue
            for index, row in rows:  # the first row pointing at a missing one
                value = row.get(column.name)
                if value is not None and value not in found:
                    raise ValidationError(
                        f"{self.where(index, column.name)}: {parent.table.name} {str(value)!r} "
                        "does not exist (dangling foreign key)"
                    )

    def _insert(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for _, row in rows:
            groups.setdefault(tuple(row), []).append(row)
        # Rows carrying their own id first, so ids the database hands out cannot take theirs.
        ordered = sorted(groups.items(), key=lambda group: self.key.name not in group[0])
        for fields, params in ordered:
            if self.key.name in fields and self.key.autoincrement is True:
                self.explicit_ids = True
            self._run(None, params, f"rows {rows[0][0]}..{rows[-1][0]}", bulk_insert=True)

    def _update(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        key = self.key.name
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for _, row in rows:
            fields = tuple(name for name in row if name != key)
            values = {f"v_{name}": row[name] for name in fields}
            values["k_key"] = row[key]
            groups.setdefault(fields, []).append(values)
        for fields, params in groups.items():
            if not fields:
                continue
            statement = (
                update(self.table)
                .where(self.key == bindparam("k_key", type_=self.key.type))
                .values(
                    {
                        name: bindparam(f"v_{name}", type_=self._columns[name].type)
                        for name in fields
                    }
                )
            )
            self._run(statement, params, f"rows {rows[0][0]}..{rows[-1][0]}")

    def _run(self, statement: Any, params: Any, what: str, *, bulk_insert: bool = False) -> Any:
        """Execute on the unit of work's connection; a refused row becomes a ValidationError.

        ``bulk_insert`` inserts ``params`` into this table with values converted once
        for the driver (``cardlink.database.codec``): imports are mostly INSERTs. On
        PostgreSQL its COPY ends in the background while the next batch is read, and is
        waited for before the next statement (``bulk.OpenCopy``).
        """
        self._end_insert()
        connection = self.session.connection()
        if not bulk_insert:
            return self._refusals(what, lambda: connection.execute(statement, params))
        copy = self._refusals(
            what, lambda: insert_rows(connection, self.table, params, leave_open=True)
        )
        if copy is not None:
            self._open_insert = (copy, what)
        return None

    def _end_insert(self) -> None:
        """Wait until the server has stored the rows of a COPY ending in the background;
        its refusal of a row raises."""
        if self._open_insert is not None:
            copy, what = self._open_insert
            self._open_insert = None
            self._refusals(what, copy.close)

    def abandon(self) -> None:
        """Wait for a COPY still ending, whatever it gives: the import is failing anyway
        and rolls its rows back."""
        if self._open_insert is not None:
            copy, _ = self._open_insert
            self._open_insert = None
            with contextlib.suppress(Exception):
                copy.close()

    def _refusals(self, what: str, action: Callable[[], Any]) -> Any:
        """``action()``, with a refused row raised as a ValidationError naming ``what``."""
        with translated_errors():
            try:
                return action()
            except (sa_exc.IntegrityError, sa_exc.DataError, sa_exc.OperationalError) as error:
                if isinstance(error, sa_exc.OperationalError) and not is_check_violation(error):
                    raise
                raise ValidationError(
                    f"import: {self.name} {what}: {describe_integrity_error(error)}"
                ) from None
