"""An incremental reader for the export document: JSON of any size read in bounded memory.

The stdlib decoder reads one value from a buffer (``raw_decode``); this reader walks
the document's outer structure itself (the top-level object, ``tables``, each
table's array) and hands every row to the decoder one at a time, reading the
stream in chunks as it goes. Any valid JSON layout works, one row per line or not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, TextIO

from ..codec import JSON_MAX_DEPTH
from ..exceptions import ValidationError

_WHITESPACE = re.compile(r"[ \t\n\r]*")


class _RepeatedKey(Exception):
    """A key given twice in one JSON object (JSON itself would keep the last silently)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: the object as a dict, refusing a repeated key."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return found


#: Decoder errors this close to the end of the buffer may just mean "read more".
_TAIL = 8


class JSONStreamReader:
    """Reads JSON values one at a time from a text stream."""

    chunk_size = 1 << 16
    #: The largest single value (one row) accepted, in characters.
    max_value_size = 16 << 20

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._buffer = ""
        self._pos = 0
        self._eof = False
        self._line = 1  # line number of self._buffer[0]
        self._decoder = json.JSONDecoder(object_pairs_hook=_unique_keys)

    # -- low level ---------------------------------------------------------------

    def _fill(self, at_least: int = 0) -> bool:
        """Append more text (dropping what was consumed); False at the end of the stream."""
        if self._eof:
            return False
        chunk = self._stream.read(max(self.chunk_size, at_least))
        if not isinstance(chunk, str):
            raise ValidationError("import: the stream must be opened in text mode (or pass bytes)")
        if not chunk:
            self._eof = True
            return False
        if self._pos:
            self._line += self._buffer.count("\n", 0, self._pos)
            self._buffer = self._buffer[self._pos :]
            self._pos = 0
        self._buffer += chunk
        return True

    def _skip_whitespace(self) -> None:
        while True:
            match = _WHITESPACE.match(self._buffer, self._pos)
            assert match is not None
            self._pos = match.end()
            if self._pos < len(self._buffer) or not self._fill():
                return

    def where(self, position: int | None = None) -> str:
        """``line L column C`` of ``position`` in the buffer (default: the current one)."""
        position = self._pos if position is None else position
        line = self._line + self._buffer.count("\n", 0, position)
        start = self._buffer.rfind("\n", 0, position) + 1
        return f"line {line} column {position - start + 1}"

    def error(self, message: str, position: int | None = None) -> ValidationError:
        return ValidationError(f"import: malformed JSON at {self.where(position)}: {message}")

    def peek(self) -> str:
        """The next non-blank character, or ``""`` at the end."""
        self._skip_whitespace()
        return self._buffer[self._pos] if self._pos < len(self._buffer) else ""

    def expect(self, character: str, context: str) -> None:
        found = self.peek()
        if found != character:
            shown = repr(found) if found else "the end of the document"
            raise self.error(f"expected {character!r} {context}, found {shown}")
        self._pos += 1

    def value(self) -> Any:
        """The next complete JSON value."""
        self._skip_whitespace()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as error:
                pending = len(self._buffer) - self._pos
                maybe_incomplete = error.pos >= len(self._buffer) - _TAIL or error.msg.startswith(
                    "Unterminated string"
                )
                if maybe_incomplete and pending <= self.max_value_size and self._fill(pending):
                    continue
                if pending > self.max_value_size:
                    raise self.error(
                        f"a value is larger than {self.max_value_size} characters"
                    ) from None
                raise self.error(error.msg, error.pos) from None
            except _RepeatedKey as repeated:
                shown = str(repeated)[:64]
                raise self.error(f"key {shown!r} appears twice in one object") from None
            except RecursionError:
                raise self.error(
                    f"a value is nested too deeply (JSON columns take at most {JSON_MAX_DEPTH} "
                    "levels)"
                ) from None
            except ValueError:  # an integer past Python's digit limit for int(str)
                raise self.error("a number has too many digits") from None
            if end == len(self._buffer) and self._buffer[end - 1] not in '}]"' and self._fill():
                continue  # a number or literal at the end of the buffer may go on
            self._pos = end
            return value

    def at_end(self) -> bool:
        return self.peek() == ""

    # -- structure -----------------------------------------------------------------

    def members(self, context: str) -> Iterator[str]:
        """The keys of the object starting here; the caller reads each member's value.

        A key given twice is refused with its line.
        """
        self.expect("{", context)
        if self.peek() == "}":
            self._pos += 1
            return
        seen: set[str] = set()
        while True:
            if self.peek() != '"':
                raise self.error(f"expected a quoted member name in {context}")
            at = self._pos
            key = self.value()
            if key in seen:
                raise self.error(f"{key[:64]!r} appears twice in {context}", at)
            seen.add(key)
            self.expect(":", f"after {key!r}")
            yield key
            if self.peek() == ",":
                self._pos += 1
                continue
            self.expect("}", f"to close {context}")
            return

    def items(self, context: str) -> Iterator[Any]:
        """The values of the array starting here, one at a time."""
        self.expect("[", context)
        if self.peek() == "]":
            self._pos += 1
            return
        while True:
            run, separated = self._whole_lines()
            if run:
                yield from run
                if separated:  # the run took the comma after its last value
                    continue
            else:
                yield self.value()
            if self.peek() == ",":
                self._pos += 1
                continue
            self.expect("]", f"to close {context}")
            return

    def _whole_lines(self) -> tuple[list[Any], bool]:
        """The array's values on the buffer's complete lines, decoded in one call, and
        whether the comma after the last of them was taken too; ``([], False)`` if not.

        An export has one row per line, and decoding a run of lines as one array spares
        the per-value steps. A line break never falls inside a JSON string, number or
        literal, so the text up to the last one is either whole values separated by
        commas or not taken (a value spread over lines, the array's end, anything
        refused): those values are read one at a time, which reports any error where it
        is.
        """
        buffer, start = self._buffer, self._pos
        cut = buffer.rfind("\n", start)
        if cut <= start:
            return [], False
        text = buffer[start:cut].rstrip()
        separated = text.endswith(",")
        candidate = "[" + (text[:-1] if separated else text) + "]"
        try:
            values, end = self._decoder.raw_decode(candidate)
        except (ValueError, _RepeatedKey, RecursionError):
            return [], False
        if end != len(candidate) or not values:
            return [], False
        self._pos = start + len(text)
        return values, separated


#: Events of :func:`read_json_document`: ``("header", key, value)``, ``("tables", "", None)``
#: once the rows begin, then ``("table", name, None)`` and ``("row", name, row)``, and
#: ``("trailer", "", value)`` for the trailer, which must be the document's last member.
DocumentEvent = tuple[str, str, Any]


def read_json_document(stream: TextIO) -> Iterator[DocumentEvent]:
    """Walk an export document, yielding its header members, then each table's rows."""
    reader = JSONStreamReader(stream)
    if reader.at_end():
        raise ValidationError("import: the document is empty")
    if reader.peek() != "{":
        raise reader.error("the document must be a JSON object")
    trailer_seen = False
    for key in reader.members("the document"):
        if trailer_seen:
            raise reader.error(f'"trailer" must be the last member, found {key[:64]!r} after it')
        if key == "trailer":
            trailer_seen = True
            yield ("trailer", "", reader.value())
            continue
        if key != "tables":
            yield ("header", key, reader.value())
            continue
        if reader.peek() != "{":
            raise reader.error('"tables" must be an object of table name to rows')
        yield ("tables", "", None)
        for name in reader.members('"tables"'):
            yield ("table", name, None)
            if reader.peek() != "[":
                raise reader.error(f'"tables.{name}" must be an array of rows')
            for row in reader.items(f'"tables.{name}"'):
                yield ("row", name, row)
    if not reader.at_end():
        raise reader.error("unexpected text after the end of the document")
