"""A pytest plugin: no cassette the suite records holds a password its servers check.

At the end of each session (of each xdist worker), every cassette under the
session's base temporary directory and in the committed ``cassettes/`` is
searched for each secret registered in :data:`tests.realservers.SECRETS`.
A hit fails the run, naming the file and the secret: a credential some
protocol's scrubbing missed.

A test that turns scrubbing off on purpose (``scrub=False``) declares it
with ``@pytest.mark.keeps_secrets``; the cassettes under its ``tmp_path`` and
its ``pytester`` directory are not searched.  Nothing else is exempt.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from .realservers import REPO_CASSETTES, SECRETS

MARKER = "keeps_secrets"
#: The cassettes' file suffix (and their temporary files while being written).
PATTERNS = ("*.msgpack", ".*.msgpack.*.tmp")

#: Per session (pytester runs sessions inside this one): the exempt directories.
EXEMPT = pytest.StashKey[list[Path]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: the test records credentials on purpose (scrub=False); the cassettes "
        "under its tmp_path and pytester directory are left out of the secrets check",
    )


def leaks(files: Iterable[Path], secrets: Iterable[str]) -> list[str]:
    """``"<file>: <secret>"`` for each registered secret found in a file."""
    wanted = sorted({s.encode() for s in secrets if s})
    found = []
    for path in sorted(set(files)):
        try:
            data = path.read_bytes()
        except OSError:
            continue  # removed meanwhile
        found += [f"{path}: {s.decode()!r}" for s in wanted if s in data]
    return found


def cassettes(*roots: Path, exempt: Iterable[Path] = ()) -> list[Path]:
    """The cassette files under ``roots``, those under ``exempt`` left out."""
    exempt = list(exempt)
    out = []
    for root in roots:
        if not root.is_dir():
            continue
        for pattern in PATTERNS:
            for path in root.rglob(pattern):
                if path.is_file() and not any(path.is_relative_to(e) for e in exempt):
                    out.append(path)
    return out


@pytest.fixture(autouse=True)
def _exempt_when_marked(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker(MARKER) is None:
        return
    exempt = request.config.stash.setdefault(EXEMPT, [])
    exempt.append(Path(request.getfixturevalue("tmp_path")))
    if "pytester" in request.fixturenames:
        exempt.append(Path(request.getfixturevalue("pytester").path))


@pytest.fixture(scope="session", autouse=True)
def _no_secret_in_any_cassette(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    yield
    exempt = request.config.stash.get(EXEMPT, [])
    roots = (tmp_path_factory.getbasetemp(), REPO_CASSETTES)
    found = leaks(cassettes(*roots, exempt=exempt), SECRETS)
    assert not found, (
        "cassettes recorded by this run hold credentials the test servers check (scrub each "
        "protocol's credentials, or mark a test that keeps them on purpose "
        f"@pytest.mark.{MARKER}):\n" + "\n".join(found)
    )
