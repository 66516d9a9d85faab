"""``pytest --tcpcassette-verify``: do the real servers still answer as recorded?

A test whose cassette exists records once more against the real servers (as
``--tcpcassette-learn`` does), into memory: the committed cassette is never
written.  The new recording is compared with the committed one by
:func:`tcpcassette._core.diff.diff_cassettes`, client messages tolerated
within their volatile spans as replay tolerates them; a test whose servers
now answer otherwise fails with the decoded differences, and the new
recording is kept in a temporary file, named in the failure, to look at or
adopt.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._core.errors import CassetteError

if TYPE_CHECKING:  # the library runs without pytest; only the plugin calls these
    import pytest

    from ._core.cassette import CassetteModel
    from ._core.connection import Connection
    from ._core.noise import NoiseMode

OPTION = "--tcpcassette-verify"
#: Lines of the decoded differences a failure shows.
SHOWN_LINES = 60


class CassetteOutdatedError(CassetteError):
    """The real servers no longer answer as the committed cassette recorded."""


def add_options(group: pytest.OptionGroup) -> None:
    group.addoption(
        OPTION,
        action="store_true",
        default=False,
        help="run tests with existing cassettes against the real servers (as recording "
        "does) into a temporary cassette, and fail those whose servers now answer "
        "differently from the committed recording, with the decoded differences; no "
        "cassette is changed",
    )


def enabled(config: pytest.Config) -> bool:
    return bool(config.getoption(OPTION, default=False))


def check(
    path: Path,
    committed: CassetteModel,
    recorded: Sequence[Connection],
    hosts: Mapping[str, Sequence[str]],
    *,
    noise: NoiseMode,
) -> list[CassetteError]:
    """The error for a new recording that differs from the committed one (none: it does not)."""
    # The comparison and storage load on first use, not at every pytest start.
    from ._cassette import Cassette
    from ._core.diff import diff_cassettes, diff_lines

    new = Cassette(path=None, connections=recorded, hosts=hosts)
    result = diff_cassettes(committed, new, mode=noise)
    if result.equal:
        return []
    kept = Path(tempfile.mkdtemp(prefix="tcpcassette-verify-")) / path.name
    where = f"the new recording is in {kept}"
    try:
        Cassette(path=kept, connections=recorded, hosts=hosts).save()
    except CassetteError as error:  # the comparison is the news; a failed copy is a note
        where = f"the new recording could not be kept ({error})"
    lines = diff_lines(result)
    shown = lines[:SHOWN_LINES]
    if len(lines) > SHOWN_LINES:
        shown.append(f"… {len(lines) - SHOWN_LINES} more lines: tcpcassette diff {path} {kept}")
    return [
        CassetteOutdatedError(
            f"{path}: the real servers now answer differently from this recording "
            f"({OPTION}); the cassette is unchanged and {where}. If the change is "
            f"expected, record again (pytest --record-mode=all) and review it with "
            f"tcpcassette diff; if not, the server changed under the client.\n" + "\n".join(shown)
        )
    ]
