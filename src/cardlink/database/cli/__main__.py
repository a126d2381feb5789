"""``python -m cardlink.database.cli``: the same as the ``cardlink-db`` script."""

from . import main

main()
