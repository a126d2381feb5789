"""Connecting: a server that never answers times out clearly; an ambiguous URL is refused.

A loopback listener accepts TCP connections and never says a word, as a hung server
or a wrong port behind a firewall would. Every connection attempt must end after
``connect_timeout`` with a ``ConnectionError`` that says so.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from cardlink.database import (
    ConfigurationError,
    DatabaseConfig,
    DatabaseManager,
    UnitOfWork,
)
from test_cli import invoke


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()
    for connection in accepted:
        connection.close()


# Runs in its own process, so that a connection that hangs (today's behaviour) is killed by
# the test's timeout instead of hanging the suite; prints the error and the seconds it took.
CONNECT = textwrap.dedent(
    r"""
    import json, sys, time
    from cardlink.database import DatabaseConfig, DatabaseManager
    url, timeout = sys.argv[1], sys.argv[2]
    config = DatabaseConfig(database_url=url, connect_timeout=float(timeout) if timeout else None)
    started = time.monotonic()
    try:
        DatabaseManager(config).initialize()
        outcome = {"error": None}
    except Exception as error:
        outcome = {"error": type(error).__name__, "message": str(error)}
    outcome["seconds"] = time.monotonic() - started
    print(json.dumps(outcome))
    """
)


def _connect_in_a_process(url: str, timeout: str, env: dict[str, str] | None = None) -> dict:
    finished = subprocess.run(
        [sys.executable, "-c", CONNECT, url, timeout],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    return json.loads(finished.stdout)


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_a_server_that_never_answers_gives_a_connection_error_after_connect_timeout(
    silent_port: int, scheme: str
) -> None:
    url = f"{scheme}://cardlink:s3cret-pw@127.0.0.1:{silent_port}/cardlink"
    outcome = _connect_in_a_process(url, "2")
    assert outcome["error"] == "ConnectionError"
    assert "did not answer within the connect timeout of 2 s" in outcome["message"]
    assert "CARDLINK_DB_CONNECT_TIMEOUT" in outcome["message"]
    assert "s3cret-pw" not in outcome["message"]
    assert 1.5 <= outcome["seconds"] < 10


def test_the_connect_timeout_comes_from_the_environment(silent_port: int) -> None:
    env = {**os.environ, "CARDLINK_DB_CONNECT_TIMEOUT": "1"}
    outcome = _connect_in_a_process(f"mysql://u@127.0.0.1:{silent_port}/db", "", env)
    assert "connect timeout of 1 s" in outcome["message"] and outcome["seconds"] < 8


def test_connect_timeout_defaults_to_ten_seconds_and_refuses_nonsense(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CARDLINK_DB_CONNECT_TIMEOUT", raising=False)
    url = "postgresql://u@127.0.0.1/db"
    assert DatabaseConfig(database_url=url).connect_timeout == 10
    assert (
        DatabaseConfig(database_url=url, env={"CARDLINK_DB_CONNECT_TIMEOUT": "2.5"}).connect_timeout
        == 2.5
    )
    with pytest.raises(ConfigurationError, match="CARDLINK_DB_CONNECT_TIMEOUT"):
        DatabaseConfig(database_url=url, env={"CARDLINK_DB_CONNECT_TIMEOUT": "soon"})
    for bad in (0, -1, float("nan"), True):
        with pytest.raises(ConfigurationError, match="connect_timeout"):
            DatabaseConfig(database_url=url, connect_timeout=bad)


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_a_query_may_take_longer_than_the_connect_timeout(manager: DatabaseManager) -> None:
    quick = DatabaseManager(DatabaseConfig(database_url=manager.config.url, connect_timeout=1))
    sleep = "SELECT pg_sleep(2.5)" if quick.config.is_postgresql else "SELECT SLEEP(2.5)"
    try:
        with UnitOfWork(quick) as uow:
            uow.session.execute(text(sleep))
            assert uow.devices.count() == 0
    finally:
        quick.close()


AMBIGUOUS = [
    "postgresql://cardlink:Zk9@Wq3@db.example.com:5432/cardlink",
    "mysql://cardlink:Jm2@Yt5@Rp8@10.0.0.5/cardlink",
    "mysql+pymysql://cardlink:Hv4@Nb6@localhost/cardlink?charset=utf8mb4",
]
SECRETS = ("Zk9", "Wq3", "Jm2", "Yt5", "Rp8", "Hv4", "Nb6")


@pytest.mark.parametrize("url", AMBIGUOUS)
def test_a_url_with_an_unencoded_at_in_its_password_is_refused_showing_none_of_it(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        DatabaseConfig(database_url=url)
    message = str(raised.value)
    assert "percent-encode" in message and "%40" in message
    assert not [secret for secret in SECRETS if secret in message]
    monkeypatch.setenv("DATABASE_URL", url)
    result = invoke(None, "status", ok=False)
    assert result.exit_code != 0 and "percent-encode" in result.output
    assert not [secret for secret in SECRETS if secret in result.output]


def test_an_encoded_at_and_an_at_in_a_sqlite_path_or_the_query_are_fine() -> None:
    encoded = DatabaseConfig(database_url="postgresql://u:p%40ss@db.example.com/cardlink")
    assert encoded.url.password == "p@ss" and encoded.url.host == "db.example.com"
    assert DatabaseConfig(database_url="sqlite:///data/a@b@c.db").sqlite_path is not None
    with_query = DatabaseConfig(database_url="mysql://u:pw@db/cardlink?ssl_ca=/a@b/c@d.pem")
    assert with_query.url.host == "db"
