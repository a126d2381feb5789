"""Terminal helpers: confirmation of destructive work, and progress shown only when it helps."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import IO, TYPE_CHECKING

import click

from .app import fail

if TYPE_CHECKING:  # rich is imported only when something is drawn: it slows every start-up
    from rich.progress import Progress, ProgressColumn, TaskID

#: Progress appears only for work that has already taken this long.
PROGRESS_DELAY_SECONDS = 1.0


def stdin_is_terminal() -> bool:
    """True when a person can answer a prompt."""
    return sys.stdin.isatty()


def stderr_is_terminal() -> bool:
    """True when progress on stderr would be seen (and not land in a log or pipe)."""
    return sys.stderr.isatty()


def confirm_destructive(question: str, *, yes: bool, flag: str = "--yes") -> None:
    """Ask before destroying data; ``--yes`` skips; no terminal and no ``--yes`` refuses."""
    if yes:
        return
    if not stdin_is_terminal():
        fail(f"refusing to continue without confirmation: stdin is not a terminal (pass {flag})")
    if not click.confirm(question, default=False):
        fail("cancelled; nothing was changed")


class RowProgress:
    """A ``progress(table, rows_done)`` callback that draws a bar on stderr after ~1 s.

    Quiet when stderr is not a terminal, or when ``enabled`` is false (e.g. the data
    itself is going to the terminal).
    """

    def __init__(self, description: str, *, totals: dict[str, int] | None, enabled: bool) -> None:
        self._description = description
        self._totals = totals or {}
        self._enabled = enabled and stderr_is_terminal()
        self._started = time.monotonic()
        self._done: dict[str, int] = {}
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, table: str, rows_done: int) -> None:
        self._done[table] = rows_done
        if not self._enabled:
            return
        if self._progress is None:
            if time.monotonic() - self._started < PROGRESS_DELAY_SECONDS:
                return
            self._start()
        assert self._progress is not None and self._task is not None
        description = f"{self._description} {table}"
        done = sum(self._done.values())
        self._progress.update(self._task, completed=done, description=description)

    def _start(self) -> None:
        from rich.progress import MofNCompleteColumn  # rich: slow to import, only for a bar

        total = sum(self._totals.values()) or None
        self._progress = _rich_progress(MofNCompleteColumn())
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=total)

    def __enter__(self) -> RowProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()


class ByteProgress(RowProgress):
    """Import progress: rows so far, and the bytes read of a file of known size, with an ETA.

    ``source`` is the file under the reader (the compressed one for gzip), whose
    position says how far the import is; without it only rows are counted.
    """

    def __init__(self, description: str, *, source: IO[bytes] | None, total_bytes: int | None):
        super().__init__(description, totals=None, enabled=True)
        self._source = source
        self._total_bytes = total_bytes if source is not None else None

    def __call__(self, table: str, rows_done: int) -> None:
        self._done[table] = rows_done
        if not self._enabled:
            return
        if self._progress is None:
            if time.monotonic() - self._started < PROGRESS_DELAY_SECONDS:
                return
            self._start()
        assert self._progress is not None and self._task is not None
        rows = sum(self._done.values())
        description = f"{self._description} {table}: {rows:,} rows"
        if self._source is not None:
            try:
                position = self._source.tell()
            except (OSError, ValueError):  # closed or not seekable: rows only
                position = None
            self._progress.update(self._task, completed=position, description=description)
        else:
            self._progress.update(self._task, description=description)

    def _start(self) -> None:
        from rich.progress import DownloadColumn  # rich, as above

        self._progress = _rich_progress(DownloadColumn())
        self._progress.start()
        self._task = self._progress.add_task(self._description, total=self._total_bytes)


def _rich_progress(counter: ProgressColumn) -> Progress:
    """A transient bar on stderr: description, bar, ``counter``, elapsed time and ETA."""
    from rich.console import Console  # rich, as above
    from rich.progress import (  # rich, as above
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        counter,
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        # Only started once stderr is known to be a terminal.
        console=Console(stderr=True, force_terminal=True),
        transient=True,
    )


@contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner on stderr while one long statement runs (terminal only)."""
    if not stderr_is_terminal():
        yield
        return
    from rich.console import Console  # rich: slow to import, only on a terminal

    with Console(stderr=True, force_terminal=True).status(message):
        yield
