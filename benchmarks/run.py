"""CardLink database benchmark: this package side by side with the raw drivers.

Usage::

    python benchmarks/run.py --all-backends            # the issue's sizes, all three backends
    python benchmarks/run.py --db-url sqlite:///bench.db --quick
    python benchmarks/run.py --all-backends --quick    # under a minute; CI runs this

Each figure is the median of at least three repeats, measured in the same run with
the two sides interleaved. The ratio is package / raw (for W1 rows/s: higher is
better; for latencies and times: lower is better). Results go to
``benchmarks/results/<timestamp>.json``. Each workload checks both sides' results
(row counts, rows read back, export bytes); a wrong result fails its backend.

Exit code: 1 when a requested backend could not run (unreachable server, missing
driver) or a result was wrong; also when a judged target was missed, except with
``--quick``, whose sizes are too small to judge (CI runs it): there misses are
printed only. Otherwise 0. Rows marked "(info)" are shown, never judged.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backends
import package
import workloads
from data import logs_for
from raw import RawDatabase
from sqlalchemy.engine import URL
from workloads import Figure, Sizes

from cardlink.database import DatabaseConfig

RESULTS = Path(__file__).resolve().parent / "results"
#: The database --all-backends uses on each server (``_quick`` appended with --quick).
DEFAULT_DB_NAME = "cardlink_bench"
SEED = 20241126


def sibling(url: URL, suffix: str) -> URL:
    """A second database next to ``url`` (``cardlink_bench`` -> ``cardlink_bench_raw``)."""
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "bench.db")
        return url.set(database=str(path.with_name(f"{path.stem}{suffix}{path.suffix or '.db'}")))
    return url.set(database=f"{url.database}{suffix}")


def report(figure: Figure) -> None:
    """Print one figure as one line."""
    if figure.unit == "rows/s":
        values = f"package {figure.package:>10,.0f} {figure.unit}  raw {figure.raw:>10,.0f}"
    elif figure.raw is None:
        values = f"package {figure.package:>10.2f} {figure.unit:6}"
    else:
        values = f"package {figure.package:>10.2f} {figure.unit:6}  raw {figure.raw:>10.2f}"
    verdict = ("ok" if figure.ok else "MISSED") if figure.judged else "info"
    print(
        f"{figure.backend:<10} {figure.workload:<3} {figure.name:<39} {values}  "
        f"ratio {figure.ratio:6.2f}  target {figure.target:<8} {verdict}",
        flush=True,
    )


def run_backend(url: URL, sizes: Sizes, args: argparse.Namespace) -> list[Figure]:
    """Every workload on one backend; returns its figures (already printed)."""
    backend = DatabaseConfig(database_url=url).backend
    raw_url = sibling(url, "_raw")
    figures: list[Figure] = []

    def add(*new: Figure) -> None:
        for figure in new:
            report(figure)
            figures.append(figure)

    started = time.perf_counter()
    for target in (url, raw_url):
        backends.ensure_database(target)
        package.reset_schema(target)
    package_db, raw_db = RawDatabase(url), RawDatabase(raw_url)
    manager = package.open_manager(url)
    try:
        log_sessions = workloads.load_base_data([package_db, raw_db], sizes, seed=SEED)
        rows = list(logs_for(log_sessions, sizes.logs_per_session, seed=SEED))
        print(
            f"{backend:<10} data: {sizes.sessions:,} sessions, {len(rows):,} logs "
            f"({time.perf_counter() - started:.1f}s)",
            flush=True,
        )
        # The data set is scaffolding: keep the garbage collector from re-scanning it
        # during the timed parts (both sides alike).
        gc.collect()
        gc.freeze()
        add(*workloads.w1_batch_insert(backend, manager, package_db, raw_db, rows, sizes))
        del rows
        gc.unfreeze()
        gc.collect()
        package_db.analyze()
        session_ids = [session.id for session in log_sessions]
        w2 = workloads.w2_latency(manager, package_db, session_ids, sizes, seed=SEED)
        add(workloads.latency_figure(backend, "W2", "one session's logs", *w2, 3.0))
        w3 = workloads.w3_latency(manager, package_db, sizes)
        add(workloads.latency_figure(backend, "W3", "30-day statistics", w3[0], w3[1], 1.3))
        if not args.skip_transfer:
            import transfer_bench

            import_url = sibling(url, "_import")
            backends.ensure_database(import_url)
            add(*transfer_bench.run(backend, url, import_url, sizes))
        if not args.skip_growth:
            grow_started = time.perf_counter()
            grown = workloads.grow(package_db, log_sessions, sizes, seed=SEED)
            print(
                f"{backend:<10} data x{sizes.growth}: {sizes.sessions * sizes.growth:,} sessions, "
                f"{sizes.logs * sizes.growth:,} logs ({time.perf_counter() - grow_started:.1f}s)",
                flush=True,
            )
            session_ids = session_ids + [session.id for session in grown]
            w2_big = workloads.w2_latency(manager, package_db, session_ids, sizes, seed=SEED + 1)
            add(
                workloads.latency_figure(
                    backend, "W6", f"one session's logs at x{sizes.growth}", *w2_big, 3.0
                )
            )
            growth = w2_big[0] / w2[0]
            add(
                Figure(
                    backend,
                    "W6",
                    f"W2 growth x{sizes.growth} (package)",
                    "ms",
                    w2_big[0] * 1000,
                    w2[0] * 1000,
                    growth,
                    "<= 1.3",
                    growth <= 1.3,
                )
            )
            w3_big = workloads.w3_latency(manager, package_db, sizes, calls=5)
            add(
                workloads.latency_figure(
                    backend,
                    "W6",
                    f"30-day statistics at x{sizes.growth}",
                    w3_big[0],
                    w3_big[1],
                    1.3,
                )
            )
            window_growth = w3_big[2] / max(1, w3[2])
            growth = w3_big[0] / w3[0]
            limit = round(window_growth * 1.1, 2)
            add(
                Figure(
                    backend,
                    "W6",
                    f"W3 growth x{window_growth:.1f} in window",
                    "ms",
                    w3_big[0] * 1000,
                    w3[0] * 1000,
                    growth,
                    f"<= {limit}",
                    growth <= limit,
                    {"window_sessions": [w3[2], w3_big[2]]},
                )
            )
    finally:
        manager.close()
        package_db.close()
        raw_db.close()
    print(f"{backend:<10} done in {time.perf_counter() - started:.1f}s", flush=True)
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    backends.add_options(
        parser,
        db_name=DEFAULT_DB_NAME,
        db_name_help=(
            "server database for --all-backends (default %(default)s; _quick with --quick)"
        ),
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, misses not judged")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the data sizes")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per figure (>= 3)")
    parser.add_argument("--skip-growth", action="store_true", help="leave out W6 (10x data)")
    parser.add_argument("--skip-transfer", action="store_true", help="leave out W4/W5")
    parser.add_argument("--output", type=Path, help="JSON result file")
    return parser.parse_args(argv)


def sizes_for(args: argparse.Namespace) -> Sizes:
    repeats = max(3, args.repeats)
    sizes = Sizes(repeats=repeats, transfer_repeats=repeats, w1_repeats=max(5, repeats))
    if args.quick:
        sizes.log_sessions, sizes.sessions, sizes.chunk = 10, 1_000, 1_000
        sizes.w2_calls, sizes.w3_calls, sizes.growth = 25, 10, 10
        sizes.transfer_repeats, sizes.best_of, sizes.flatness = 1, 2, False
        sizes.w1_repeats = repeats
    if args.scale != 1.0:
        sizes.log_sessions = max(1, round(sizes.log_sessions * args.scale))
        sizes.sessions = max(sizes.log_sessions, round(sizes.sessions * args.scale))
    return sizes


def summary(figures: list[Figure]) -> tuple[str, list[str]]:
    """The closing line ("N judged targets, M met; K info rows") and the missed targets."""
    judged = [figure for figure in figures if figure.judged]
    missed = [f"{f.backend} {f.workload} {f.name}" for f in judged if not f.ok]
    line = (
        f"{len(judged)} judged targets, {len(judged) - len(missed)} met; "
        f"{len(figures) - len(judged)} info rows"
    )
    return line, missed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sizes_for(args)
    # --quick (CI) gets its own databases: it must not wipe a full run's data.
    server_database = f"{args.db_name}_quick" if args.quick else args.db_name
    urls = backends.database_urls(args, server_database=server_database, sqlite_file="bench.db")
    figures: list[Figure] = []
    failures: list[str] = []
    for url in urls:
        try:
            figures += run_backend(url, sizes, args)
        except Exception as error:  # go on: CI must see every backend's figures, then fail
            name = url.get_backend_name()
            message = (str(error).strip().splitlines() or [""])[0]  # SQLAlchemy adds a link
            failures.append(f"{name}: {type(error).__name__}: {message}")
            print(f"{name:<10} FAILED: {type(error).__name__}: {message}", flush=True)
    line, missed = summary(figures)
    print(line)
    for entry in missed:
        print(f"  missed{' (not judged in --quick)' if args.quick else ''}: {entry}")
    for failure in failures:
        print(f"  failed: {failure}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = args.output or RESULTS / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    document: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(),
        "command": " ".join(sys.argv),
        "sizes": asdict(sizes),
        "cpus": os.cpu_count(),
        "figures": [asdict(figure) for figure in figures],
        "failures": failures,
    }
    output.write_text(json.dumps(document, indent=2, default=str))
    print(f"results: {output}")
    if failures:
        print(f"FAILED: {len(failures)} backend(s) could not run or gave a wrong result")
        return 1
    if missed and not args.quick:
        print(f"FAILED: {len(missed)} judged target(s) missed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
