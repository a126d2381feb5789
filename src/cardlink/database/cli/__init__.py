"""The ``cardlink-db`` command line: a thin click layer over the library.

Each command is one function in a module of this package; importing the module
registers it on the ``cli`` group. To add a command, write it with
``@cli.command()`` (from ``.app``) and import its module below.
"""

from . import (
    data,
    keys,
    logs,
    maintenance,
    report,
    schema,
    sessions,
    tests_cmd,
    timeline,
    trace,
)
from .app import CliState, CommandFailed, cli, main

__all__ = [
    "CliState",
    "CommandFailed",
    "cli",
    "data",
    "keys",
    "logs",
    "main",
    "maintenance",
    "report",
    "schema",
    "sessions",
    "tests_cmd",
    "timeline",
    "trace",
]
