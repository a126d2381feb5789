"""``cardlink-db report``: the run report or the OTA sessions report, as one HTML file."""

from __future__ import annotations

import click

from .. import reports  # its render names load Jinja2 and pygal on first use only
from ..unit_of_work import UnitOfWork
from .app import CliState, cli, fail

#: The TARGET that asks for the sessions report instead of a run's.
SESSIONS = "sessions"


@cli.command()
@click.argument("target", metavar="RUN_ID|sessions")
@click.option("--output", "-o", required=True, metavar="FILE", help="The HTML file to write.")
@click.option(
    "--baseline", metavar="RUN_ID", help="Run to compare with (default: the run before it)."
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Sessions report: how many days back.",
)
@click.pass_obj
def report(state: CliState, target: str, output: str, baseline: str | None, days: int) -> None:
    """Write a self-contained HTML report: a test run's, or the OTA sessions'.

    The run report shows the counts and a chart per suite, the trend of the last 30
    runs, regressions and fixes against the baseline, flaky tests, the ten slowest
    tests and each failure with its session's failing exchange. The sessions report
    shows the daily OTA success rate, failures by cause and the commands with most errors.

    \b
    Example:
      cardlink-db report nightly-42 --output report.html
      cardlink-db report nightly-42 --baseline nightly-40 --output report.html
      cardlink-db report sessions --days 30 --output sessions.html
    """
    with state.manager(tables=True) as manager, UnitOfWork(manager) as uow:
        if target == SESSIONS:
            if baseline is not None:
                fail("--baseline is for a run report, not the sessions report")
            page = reports.render_sessions_report(reports.build_sessions_report(uow, days))
        else:
            page = reports.render_run_report(reports.build_run_report(uow, target, baseline))
    reports.write_report(page, output)
    click.echo(f"Wrote {output}")
