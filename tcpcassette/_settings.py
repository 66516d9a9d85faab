"""Record modes and where settings come from, resolved in one place.

Record mode, first found wins:

1. ``--record-mode`` given on the pytest command line;
2. the ``record_mode=`` argument of ``use_cassette``;
3. the ini option ``tcpcassette_record_mode``;
4. the environment variable ``TCPCASSETTE_RECORD_MODE``;
5. ``none``.

``max_age`` (how old a cassette may get), ``on_expiry`` (what happens to an
older one) and ``strict``, first found wins: the ``use_cassette`` argument
(so a marker's or ``tcpcassette_config``'s), then the ini option
(``tcpcassette_max_age``, ``tcpcassette_on_expiry``, ``tcpcassette_strict``),
then the default: no bound, ``warn``, not strict.

Cassette directory, first found wins: the ``cassette_dir=`` argument, the ini
option ``tcpcassette_dir``, then ``cassettes/`` in the pytest rootdir (outside
pytest: in the working directory).  Relative directories are taken from the
pytest rootdir under pytest, and from the working directory outside it.
"""

from __future__ import annotations

import enum
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ._core.errors import choice
from ._core.freshness import OnExpiry, parse_duration

ENV_RECORD_MODE = "TCPCASSETTE_RECORD_MODE"
DEFAULT_DIR_NAME = "cassettes"


class RecordMode(str, enum.Enum):
    """When to record, as VCR.py users know it."""

    #: Replay only; never touch the network.  A missing cassette is an error.
    NONE = "none"
    #: Record if the cassette file does not exist, otherwise behave as ``none``.
    ONCE = "once"
    #: Replay what the cassette holds; record and append what it does not.
    NEW_EPISODES = "new_episodes"
    #: Always record; the cassette is rewritten from scratch.
    ALL = "all"

    @classmethod
    def parse(cls, value: str | RecordMode, *, source: str) -> RecordMode:
        """``value`` as a mode; ``source`` names where it came from in the error."""
        return choice(
            cls,
            value,
            lambda valid: (
                f"{source}: {value!r} is not a record mode; use one of: " + ", ".join(valid)
            ),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one use of a cassette did, for the pytest summary."""

    path: Path
    replayed: int
    recorded: int
    learned: int = 0  # volatile spans found by --tcpcassette-learn
    tolerated: tuple[str, ...] = ()  # differences between runs the noise rules accepted


@dataclass(slots=True)
class PytestSettings:
    """What the pytest plugin found in the command line and ini files.

    The plugin keeps one in its config's stash for the life of a pytest
    session and makes it current with :func:`push`; cassette uses report
    their outcomes to it.
    """

    cli_record_mode: str | None = None
    ini_record_mode: str | None = None
    ini_cassette_dir: str | None = None
    ini_noise: str | None = None
    ini_max_age: str | None = None
    ini_on_expiry: str | None = None
    ini_strict: bool | None = None
    rootdir: Path | None = None
    #: ``--tcpcassette-learn``: record existing cassettes again, keeping only what differs.
    learn: bool = False
    #: ``--tcpcassette-verify``: record existing cassettes again into memory and compare.
    verify: bool = False
    #: ``--disable-tcpcassette``: tests talk to the real servers; no cassette is read or written.
    disabled: bool = False
    #: The node id of the test running now (pytest's own, with parameter ids).
    current_test: str | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    #: The cassettes each test used (by node id), for the summary of failing tests.
    used: dict[str, list[Path]] = field(default_factory=dict)
    #: The cassette directories cassettes were used from (for --tcpcassette-orphans).
    directories: set[Path] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def report(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def touch(self, path: Path, directory: Path | None = None) -> None:
        """The running test uses the cassette at ``path`` (from ``directory``)."""
        if self.current_test is None:
            return
        with self._lock:
            if directory is not None:
                self.directories.add(directory)
            paths = self.used.setdefault(self.current_test, [])
            if path not in paths:
                paths.append(path)


# pytest sessions nest (pytester runs pytest inside pytest); the innermost is current.
_stack: list[PytestSettings] = []


def push(settings: PytestSettings) -> None:
    """Make ``settings`` the current pytest session's (the plugin calls this)."""
    _stack.append(settings)


def pop(settings: PytestSettings) -> None:
    """The pytest session of ``settings`` is over."""
    if settings in _stack:
        _stack.remove(settings)


def current() -> PytestSettings | None:
    """The settings of the pytest session running now, if any."""
    return _stack[-1] if _stack else None


def resolve_record_mode(argument: str | RecordMode | None) -> RecordMode:
    """The record mode in force, in the documented order."""
    ps = current()
    if ps is not None and ps.cli_record_mode:
        return RecordMode.parse(ps.cli_record_mode, source="--record-mode")
    if argument is not None:
        return RecordMode.parse(argument, source="use_cassette(record_mode=...)")
    if ps is not None and ps.ini_record_mode:
        return RecordMode.parse(ps.ini_record_mode, source="ini option tcpcassette_record_mode")
    env = os.environ.get(ENV_RECORD_MODE)
    if env:
        return RecordMode.parse(env, source=f"environment variable {ENV_RECORD_MODE}")
    return RecordMode.NONE


def resolve_cassette_dir(argument: str | os.PathLike[str] | None) -> Path:
    """The cassette directory in force, in the documented order."""
    ps = current()
    base = ps.rootdir if ps is not None and ps.rootdir is not None else Path.cwd()
    if argument is not None:
        return base / Path(argument)
    if ps is not None and ps.ini_cassette_dir:
        return base / ps.ini_cassette_dir
    return base / DEFAULT_DIR_NAME


def resolve_noise(argument: str | None) -> str:
    """The noise mode in force: the ``noise=`` argument, the ini option ``tcpcassette_noise``,
    then ``"auto"``."""
    if argument is not None:
        return argument
    ps = current()
    if ps is not None and ps.ini_noise:
        return ps.ini_noise
    return "auto"


def resolve_max_age(argument: str | float | None) -> float | None:
    """How old a cassette may get, in seconds (None: any age), in the documented order."""
    if argument is not None:
        return parse_duration(argument, source="use_cassette(max_age=...)")
    ps = current()
    if ps is not None and ps.ini_max_age:
        return parse_duration(ps.ini_max_age, source="ini option tcpcassette_max_age")
    return None


def resolve_on_expiry(argument: str | OnExpiry | None) -> OnExpiry:
    """What happens to a cassette older than its max_age, in the documented order."""
    if argument is not None:
        return OnExpiry.parse(argument, source="use_cassette(on_expiry=...)")
    ps = current()
    if ps is not None and ps.ini_on_expiry:
        return OnExpiry.parse(ps.ini_on_expiry, source="ini option tcpcassette_on_expiry")
    return OnExpiry.WARN


def resolve_strict(argument: bool | None) -> bool:
    """Whether recorded connections and requests left unused fail the test."""
    if argument is not None:
        return bool(argument)
    ps = current()
    return bool(ps is not None and ps.ini_strict)
