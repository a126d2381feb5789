"""``cardlink-db tests import``: load JUnit XML (pytest, Surefire, gotestsum) as a test run."""

from __future__ import annotations

import click

from ..unit_of_work import UnitOfWork
from .app import CliState, cli


@cli.group("tests")
def tests_group() -> None:
    """Test runs: load results from the tools that ran them.

    \b
    Example:
      cardlink-db tests import results.xml --run-id nightly-42
    """


@tests_group.command("import")
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--run-id", required=True, metavar="RUN", help="The run the results belong to.")
@click.pass_obj
def import_junit(state: CliState, file: str, run_id: str) -> None:
    """Load a JUnit XML file as run RUN, in one transaction: all results or none.

    Reads pytest's --junitxml, Maven Surefire's TEST-*.xml and gotestsum's --junitfile;
    retries (flakyFailure, rerunFailure, repeated testcases) become attempts 1, 2, ...

    \b
    Example:
      cardlink-db tests import results.xml --run-id nightly-42
      cardlink-db tests import target/surefire-reports/TEST-OtaIT.xml --run-id mvn-7
    """
    with state.manager(tables=True) as manager, UnitOfWork(manager) as uow:
        with open(file, "rb") as stream:
            uow.tests.import_junit(stream, run_id=run_id, name=file)
        uow.commit()
        count = len(uow.tests.find_by_run(run_id))
    click.echo(f"Imported {file} as run {run_id}: {count:,} results")
