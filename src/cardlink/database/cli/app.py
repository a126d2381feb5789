"""The ``cardlink-db`` click group: global options, the database it talks to, and error output.

Commands live in sibling modules, one function each, registered with
``@cli.command()``; add a module and import it in ``cli/__init__.py`` to extend.
Every failure the user can cause ends as ONE red line on stderr with a hint and a
non-zero exit code; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import click
import yaml

from ..config import DatabaseConfig
from ..exceptions import (
    ConfigurationError,
    ConnectionError,
    DatabaseError,
    EncryptionError,
    MigrationError,
    RetryableError,
    SchemaOutOfDateError,
    ValidationError,
)
from ..manager import DatabaseManager


class CommandFailed(click.ClickException):
    """A user-facing failure: printed as one red ``Error: ...`` line on stderr."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click types it a ClassVar; 2 for usage

    def show(self, file: Any = None) -> None:
        click.secho(f"Error: {self.message}", err=True, fg="red")


def fail(message: str, *, exit_code: int = 1) -> NoReturn:
    """Stop the command with one red error line."""
    raise CommandFailed(message, exit_code=exit_code)


def describe(error: BaseException) -> str:
    """One line for an error, ending with a hint on what to do about it."""
    first = str(error).strip().splitlines()
    text = first[0] if first else type(error).__name__
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
    if isinstance(error, UnicodeDecodeError):
        return f"the file is not UTF-8 text: {text} (hint: pass an export written by cardlink-db)"
    if isinstance(error, OSError):
        name = f" {error.filename}" if error.filename else ""
        reason = error.strerror or text
        return f"cannot access{name}: {reason} (hint: check the path and permissions)"
    if isinstance(error, yaml.YAMLError | json.JSONDecodeError):
        return f"malformed data: {text} (hint: is the file a cardlink-db export?)"
    return f"unexpected {type(error).__name__}: {text} (hint: run with --debug for the traceback)"


class CardlinkGroup(click.Group):
    """A click group that turns any error into one line, unless ``--debug`` is on."""

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
    def manager(self) -> Iterator[DatabaseManager]:
        """An initialized manager for the chosen database, closed afterwards."""
        manager = DatabaseManager(self.config())
        manager.initialize()
        try:
            yield manager
        finally:
            manager.close()


@click.group(cls=CardlinkGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    metavar="URL",
    help="Database URL (default: DATABASE_URL, then CARDLINK_DB_*, then sqlite:///data/cardlink.db).",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks and log SQLAlchemy warnings.")
@click.version_option(package_name="gp-ota-tester", prog_name="cardlink-db")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, debug: bool) -> None:
    """Manage the CardLink database: schema, migrations, backups and housekeeping.

    \b
    Example:
      cardlink-db --database-url sqlite:///data/cardlink.db status
    """
    if debug:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = CliState(database_url=database_url, debug=debug)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point of ``cardlink-db``."""
    cli.main(args=argv, prog_name="cardlink-db")
