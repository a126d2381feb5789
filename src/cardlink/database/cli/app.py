"""The ``cardlink-db`` click group: global options, the database it talks to, and error output.

Commands live in sibling modules, one function each, registered with
``@cli.command()``; add a module and import it in ``cli/__init__.py`` to extend.
Every failure the user can cause ends as ONE red line on stderr with a hint and a
non-zero exit code; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import gc
import gzip
import json
import logging
import os
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import click
import yaml
from sqlalchemy.exc import SQLAlchemyError

from ..config import DatabaseConfig
from ..exceptions import (
    ConfigurationError,
    ConnectionError,
    DatabaseError,
    DatabaseNotFoundError,
    EncryptionError,
    MigrationError,
    RetryableError,
    SchemaOutOfDateError,
    ValidationError,
    translate_dbapi_error,
)
from ..maintenance import missing_tables
from ..manager import DatabaseManager


class CommandFailed(click.ClickException):
    """A user-facing failure: printed as one red ``Error: ...`` line on stderr."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # a ClassVar since click 8.2

    def show(self, file: Any = None) -> None:
        # NO_COLOR (https://no-color.org): any non-empty value turns colour off.
        color = False if os.environ.get("NO_COLOR") else None
        click.secho(f"Error: {self.message}", err=True, fg="red", color=color)


def fail(message: str, *, exit_code: int = 1) -> NoReturn:
    """Stop the command with one red error line."""
    raise CommandFailed(message, exit_code=exit_code)


def describe(error: BaseException) -> str:
    """One line for an error, ending with a hint on what to do about it."""
    if isinstance(error, SQLAlchemyError):  # e.g. from SQLAlchemy's reflection, untranslated
        error = translate_dbapi_error(error, url="the database") or DatabaseError(
            _first_line(error)
        )
    text = _first_line(error)
    if isinstance(error, DatabaseNotFoundError):
        return text
    if isinstance(error, ConfigurationError):
        return f"{text} (hint: check --database-url or DATABASE_URL / CARDLINK_DB_*)"
    if isinstance(error, ConnectionError):
        return text if "(" in text else f"{text} (hint: is the database server running?)"
    if isinstance(error, MigrationError):
        return f"{text} (hint: `cardlink-db status` shows the current revision)"
    if isinstance(error, EncryptionError):
        return f"{text} (hint: set CARDLINK_ENCRYPTION_KEY to the key the data was written with)"
    if isinstance(error, (ValidationError, SchemaOutOfDateError, RetryableError)):
        return text  # their message already says what to do
    if isinstance(error, DatabaseError):
        return f"{text} (hint: run with --debug for details)"
    if isinstance(error, EOFError | zlib.error | gzip.BadGzipFile):
        return f"the file is not whole gzip data: {text} (hint: is the backup truncated?)"
    if isinstance(error, UnicodeDecodeError):
        return f"the file is not UTF-8 text: {text} (hint: pass an export written by cardlink-db)"
    if isinstance(error, OSError):
        name = f" {error.filename}" if error.filename else ""
        reason = error.strerror or text
        return f"cannot access{name}: {reason} (hint: check the path and permissions)"
    if isinstance(error, yaml.YAMLError | json.JSONDecodeError):
        return f"malformed data: {text} (hint: is the file a cardlink-db export?)"
    return f"unexpected {type(error).__name__}: {text} (hint: run with --debug for the traceback)"


def _first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


def _turn_on_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--debug`` given after the subcommand: the same as before it."""
    state = ctx.find_object(CliState)
    if value and state is not None and not state.debug:
        state.debug = True
        _log_to_stderr()


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


DEBUG_HELP = "Show full tracebacks and log SQLAlchemy warnings."


class CardlinkGroup(click.Group):
    """A click group that turns any error into one line, unless ``--debug`` is on."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Register a command, giving it ``--debug`` too (accepted before or after its name)."""
        if not any(param.name == "debug" for param in cmd.params):
            cmd.params.append(
                click.Option(
                    ["--debug"],
                    is_flag=True,
                    expose_value=False,
                    callback=_turn_on_debug,
                    help=DEBUG_HELP,
                )
            )
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except BrokenPipeError:
            _silence_stdout()  # the reader went away (`| head`): stop quietly
            ctx.exit(1)
        except Exception as error:
            state = ctx.obj if isinstance(ctx.obj, CliState) else None
            if state is not None and state.debug:
                raise
            raise CommandFailed(describe(error)) from error


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (a test runner's buffer)


@dataclass
class CliState:
    """What the global options chose: the database and whether to show tracebacks."""

    database_url: str | None
    debug: bool

    def config(self) -> DatabaseConfig:
        return DatabaseConfig(self.database_url)

    @contextmanager
    def manager(self, *, create: bool = False, tables: bool = False) -> Iterator[DatabaseManager]:
        """An initialized manager for the chosen database, closed afterwards.

        Only commands that write a schema or rows pass ``create=True``: the others
        refuse a missing SQLite file instead of creating an empty one. ``tables=True``
        stops the command, before it writes anything, when a CardLink table is missing.
        """
        manager = DatabaseManager(self.config())
        try:
            manager.initialize(create=create)
            if tables:
                require_tables(manager)
            yield manager
        finally:
            manager.close()


def require_tables(manager: DatabaseManager) -> None:
    """Stop with one line naming the missing tables and the command that creates them."""
    missing = missing_tables(manager)
    if missing:
        fail(
            f"table(s) missing in {manager.config.database_url}: {', '.join(missing)} "
            "(hint: run `cardlink-db init` to create them, or `cardlink-db migrate`)"
        )


@click.group(cls=CardlinkGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    metavar="URL",
    help=(
        "Database URL (default: DATABASE_URL, then CARDLINK_DB_*, then "
        "sqlite:///data/cardlink.db). A server URL with a user but no password takes "
        "the password from CARDLINK_DB_PASSWORD, so it stays out of shell history and ps."
    ),
)
@click.option("--debug", is_flag=True, help=DEBUG_HELP)
@click.version_option(package_name="gp-ota-tester", prog_name="cardlink-db")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, debug: bool) -> None:
    """Manage the CardLink database: schema, migrations, backups and housekeeping.

    Shell completion (bash): eval "$(_CARDLINK_DB_COMPLETE=bash_source cardlink-db)"

    \b
    Example:
      cardlink-db --database-url sqlite:///data/cardlink.db status
      CARDLINK_DB_PASSWORD=secret cardlink-db --database-url postgresql://me@host/cardlink status
    """
    if debug:
        _log_to_stderr()
    ctx.obj = CliState(database_url=database_url, debug=debug)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``cardlink-db``."""
    # One command per process: the objects its imports built live until it exits, so
    # the collector is told not to scan them again in each full collection that the
    # rows of an import or export set off.
    gc.freeze()
    cli.main(args=argv, prog_name="cardlink-db")
