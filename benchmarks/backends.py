"""Which databases a benchmark script runs on: the same options and server URLs in every script.

Each script adds the options to its parser and turns the parsed arguments into URLs,
naming its own server database and SQLite file::

    backends.add_options(parser)
    args = parser.parse_args(argv)
    urls = backends.database_urls(args, server_database="cardlink_bench_traces",
                                  sqlite_file="traces.db")
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from sqlalchemy.engine import URL

from cardlink.database import DatabaseConfig
from cardlink.database.maintenance import create_database, drop_database

#: The servers ``--all-backends`` uses, without a database: the script names its own.
SERVER_URLS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432",
    "mysql": "mysql://root@127.0.0.1:3306",
}


def add_options(
    parser: argparse.ArgumentParser,
    *,
    db_name: str | None = None,
    db_name_help: str = "server database for --all-backends (default %(default)s)",
) -> None:
    """Add ``--db-url URL`` (repeatable; ``--database-url`` is the same) or ``--all-backends``,
    and, given ``db_name``, ``--db-name`` with it as the default."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--db-url",
        "--database-url",
        dest="db_url",
        action="append",
        metavar="URL",
        help="database to use (repeatable)",
    )
    where.add_argument("--all-backends", action="store_true", help="SQLite, PostgreSQL and MariaDB")
    if db_name is not None:
        parser.add_argument(
            "--db-name",
            default=db_name,
            help=db_name_help,
        )


def database_urls(
    args: argparse.Namespace,
    *,
    server_database: str,
    sqlite_file: str,
    sqlite_by_default: bool = True,
) -> list[URL]:
    """The URLs the options name: each ``--db-url``; or a new SQLite file ``sqlite_file`` in a
    temporary folder, with ``server_database`` on each server under ``--all-backends``.
    With neither option: that SQLite file alone, or nothing if not ``sqlite_by_default``."""
    if args.db_url:
        return [DatabaseConfig(database_url=url).url for url in args.db_url]
    if not (args.all_backends or sqlite_by_default):
        return []
    workdir = Path(tempfile.mkdtemp(prefix="cardlink-bench-"))
    urls = [DatabaseConfig(database_url=f"sqlite:///{workdir / sqlite_file}").url]
    if args.all_backends:
        for server in SERVER_URLS.values():
            urls.append(DatabaseConfig(database_url=f"{server}/{server_database}").url)
    return urls


def ensure_database(url: URL, *, fresh: bool = False) -> None:
    """Create the server database if needed (``fresh``: drop it first); a SQLite file starts
    afresh."""
    if url.get_backend_name() == "sqlite":
        for ending in ("", "-wal", "-shm"):
            Path(f"{url.database}{ending}").unlink(missing_ok=True)
        return
    if fresh:
        drop_database(DatabaseConfig(url))
    create_database(DatabaseConfig(url))
