"""``rotate-key``: re-encrypt every stored PSK key under the newest encryption key."""

from __future__ import annotations

import click

from ..exceptions import EncryptionError
from ..unit_of_work import UnitOfWork
from .app import CliState, cli, fail
from .console import confirm_destructive, working


@cli.command("rotate-key")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def rotate_key(state: CliState, yes: bool) -> None:
    """Re-encrypt every stored PSK key under the newest key, in one transaction.

    CARDLINK_ENCRYPTION_KEY holds comma-separated Fernet keys, newest first:
    every key listed decrypts, only the first encrypts. To retire a key, put a
    new one in front of it, run this command, then remove the old key. If some
    stored PSK key opens under none of the listed keys, nothing is rewritten.

    \b
    Example:
      export CARDLINK_ENCRYPTION_KEY="$NEW_KEY,$OLD_KEY"
      cardlink-db rotate-key --yes
      export CARDLINK_ENCRYPTION_KEY="$NEW_KEY"
    """
    with state.manager(tables=True) as manager:
        keys = manager.cipher.key_count  # EncryptionError (one line, with a hint) if unset
        with UnitOfWork(manager) as uow:
            stored = uow.cards.count_with_stored_key()
        if not stored:
            click.echo(f"No PSK keys stored in {manager.config.database_url}; nothing to rotate")
            return
        click.echo(
            f"{stored:,} stored PSK key(s) in {manager.config.database_url}; "
            f"{keys} key(s) configured, the first one encrypts"
        )
        confirm_destructive("Re-encrypt them under the newest key?", yes=yes)
        try:
            with working("Re-encrypting..."), UnitOfWork(manager) as uow:
                rotated = uow.cards.rotate_keys()
                uow.commit()
        except EncryptionError as error:
            fail(str(error))
    click.echo(
        f"Re-encrypted {rotated:,} PSK key(s) under the newest key "
        f"({stored - rotated:,} already current)"
    )
