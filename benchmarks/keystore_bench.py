"""Key store benchmark: ``PSKKeyStore.get_key`` beside a raw indexed SELECT plus a Fernet decrypt.

Usage::

    python benchmarks/keystore_bench.py --all-backends
    python benchmarks/keystore_bench.py --db-url sqlite:///keys.db --cards 10000

A table of 100,000 cards (each with its own identity and Fernet-encrypted key) is
written once per backend. Then every lookup asks both sides for the key of a random
identity, the two sides interleaved call by call: the package through
``PSKKeyStore.get_key``, the raw side through one driver connection in autocommit
mode (``SELECT psk_key_encrypted FROM cards WHERE psk_identity = ?`` on the unique
index, then ``Fernet.decrypt``). Printed: p50 and p99 of each side in microseconds
and their ratio; the target is package p99 <= 2x raw p99. Every key is checked.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
from cryptography.fernet import Fernet
from raw import RawDatabase
from sqlalchemy import insert
from sqlalchemy.engine import URL

from cardlink.database import Base, DatabaseConfig, DatabaseManager, PSKKeyStore

#: The server database ``--all-backends`` uses.
SERVER_DATABASE = "cardlink_bench_scp81"
TARGET = 2.0
SEED = 20261206


def key_of(number: int) -> bytes:
    return number.to_bytes(4, "big") * 4


def fill(manager: DatabaseManager, fernet: Fernet, count: int) -> None:
    """``count`` cards with identities ``psk-<n>`` and encrypted keys, written in chunks."""
    manager.recreate_tables()
    cards = Base.metadata.tables["cards"]
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with manager.engine.begin() as connection:
        for start in range(0, count, 5_000):
            connection.execute(
                insert(cards),
                [
                    {
                        "iccid": f"8901{number:015d}",
                        "psk_identity": f"psk-{number}",
                        "psk_key_encrypted": fernet.encrypt(key_of(number)).decode("ascii"),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for number in range(start, min(start + 5_000, count))
                ],
            )


def raw_side(url: URL, fernet: Fernet) -> tuple[Any, Any]:
    """(lookup function, closer) over one plain driver connection in autocommit mode."""
    raw = RawDatabase(url)
    connection = raw.connection
    if raw.backend == "postgresql":
        connection.autocommit = True
    elif raw.backend == "mysql":
        connection.autocommit(True)
    sql = f"SELECT psk_key_encrypted FROM cards WHERE psk_identity = {raw.mark}"

    def get_key(identity: str) -> bytes | None:
        cursor = connection.cursor()
        cursor.execute(sql, (identity,))
        row = cursor.fetchone()
        cursor.close()
        return None if row is None else fernet.decrypt(row[0].encode("ascii"))

    return get_key, raw.close


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def run_backend(url: URL, cards: int, lookups: int, fernet: Fernet) -> dict[str, float]:
    backends.ensure_database(url)
    manager = DatabaseManager(DatabaseConfig(database_url=url))
    started = time.perf_counter()
    fill(manager, fernet, cards)
    elapsed = time.perf_counter() - started
    print(f"{url.get_backend_name():<10} {cards:,} cards written in {elapsed:.1f} s")
    store = PSKKeyStore(manager)
    raw_get_key, raw_close = raw_side(url, fernet)
    sides = {"package": store.get_key, "raw": raw_get_key}
    timings: dict[str, list[float]] = {"package": [], "raw": []}
    rng = random.Random(SEED)
    clock = time.perf_counter
    try:
        for number in rng.sample(range(cards), min(cards, 500)):  # warm up both sides
            for get_key in sides.values():
                assert get_key(f"psk-{number}") == key_of(number)
        gc.disable()
        for call in range(lookups):
            number = rng.randrange(cards)
            identity = f"psk-{number}"
            order = ("package", "raw") if call % 2 else ("raw", "package")
            for name in order:
                get_key = sides[name]
                begun = clock()
                key = get_key(identity)
                timings[name].append(clock() - begun)
                if key != key_of(number):
                    raise AssertionError(f"{name} returned a wrong key for {identity}")
    finally:
        gc.enable()
        store.close()
        raw_close()
        manager.close()
    figures = {
        f"{name}_{label}": percentile(values, fraction) * 1e6
        for name, values in timings.items()
        for label, fraction in (("p50", 0.50), ("p99", 0.99))
    }
    figures["ratio_p50"] = figures["package_p50"] / figures["raw_p50"]
    figures["ratio_p99"] = figures["package_p99"] / figures["raw_p99"]
    verdict = "ok" if figures["ratio_p99"] <= TARGET else "MISSED"
    print(
        f"{url.get_backend_name():<10} get_key x{lookups:,}: "
        f"package p50 {figures['package_p50']:7.1f} us p99 {figures['package_p99']:7.1f} us | "
        f"raw p50 {figures['raw_p50']:7.1f} us p99 {figures['raw_p99']:7.1f} us | "
        f"p50 {figures['ratio_p50']:.2f}x, p99 {figures['ratio_p99']:.2f}x "
        f"(target p99 <= {TARGET:.0f}x) {verdict}",
        flush=True,
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    backends.add_options(parser)
    parser.add_argument("--cards", type=int, default=100_000, help="cards in the table")
    parser.add_argument("--lookups", type=int, default=20_000, help="get_key calls per side")
    args = parser.parse_args(argv)
    urls = backends.database_urls(args, server_database=SERVER_DATABASE, sqlite_file="keys.db")
    key = Fernet.generate_key()
    os.environ["CARDLINK_ENCRYPTION_KEY"] = key.decode("ascii")  # the package's side
    fernet = Fernet(key)
    missed = []
    for url in urls:
        figures = run_backend(url, args.cards, args.lookups, fernet)
        if figures["ratio_p99"] > TARGET:
            missed.append(url.get_backend_name())
    print(
        f"{len(urls)} backend(s), {len(missed)} missed the target"
        + (f": {missed}" if missed else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
