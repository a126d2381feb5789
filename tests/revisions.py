"""The package's migration revisions, read from Alembic's script directory.

Tests take the head and the list of revisions from here and never name a revision,
so adding a revision breaks no test that is not about it.
"""

from __future__ import annotations

from cardlink.database.schema_version import script_directory


def _revisions_oldest_first() -> list[str]:
    script = script_directory()
    heads = script.get_heads()
    assert len(heads) == 1, f"the migrations must have one head, found {heads}"
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


#: Every revision, oldest first.
REVISIONS = _revisions_oldest_first()
#: The newest revision: what ``create_tables()`` and ``migrate`` record.
HEAD = REVISIONS[-1]
#: The first revision (the guide's ``migrate --revision`` example names its prefix).
INITIAL = REVISIONS[0]


def revision_described_by(*words: str) -> tuple[str, str]:
    """(the one revision whose docstring holds every one of ``words``, the revision before it).

    A test finds the revision it is about by what the revision says it does, not by its id.
    """
    found = [
        script
        for script in script_directory().walk_revisions()
        if all(word in (script.module.__doc__ or "") for word in words)
    ]
    assert len(found) == 1, f"{len(found)} revisions are described by {words}"
    (script,) = found
    assert isinstance(script.down_revision, str)
    return script.revision, script.down_revision
