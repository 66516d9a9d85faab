"""``use_cassette``: the decorator and context manager users write."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import inspect
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, TypeVar, cast

from . import _verify
from ._cassette import Cassette, load
from ._core.cassette import continue_after
from ._core.errors import (
    CassetteError,
    CassetteNotFoundError,
    InvalidOptionError,
    ReplayError,
    gather,
)
from ._core.faults import Placement
from ._core.framing import FramingSpec, resolve_framing
from ._core.freshness import (
    CassetteExpiredWarning,
    OnExpiry,
    age,
    expired_error,
    expired_message,
    parse_duration,
)
from ._core.learn import learn
from ._core.matching import Filter, Matcher
from ._core.noise import NoiseMode
from ._core.options import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_SILENCE,
    DEFAULT_SETTLE_TIMEOUT,
    DEFAULT_STALL_TIMEOUT,
    Limits,
    MatchingMode,
    ReplayOptions,
)
from ._core.protocols.base import WireProtocol
from ._core.sweep import Case, place_case
from ._core.targets import named_targets
from ._io import intercept as _intercept
from ._io.session import new_session
from ._io.storage import DEFAULT_LOCK_TIMEOUT, recording_lock
from ._paths import cassette_path, default_names
from ._settings import (
    ENV_RECORD_MODE,
    Outcome,
    RecordMode,
    resolve_cassette_dir,
    resolve_max_age,
    resolve_noise,
    resolve_on_expiry,
    resolve_record_mode,
    resolve_strict,
)
from ._settings import current as current_settings

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class NothingRecordedWarning(UserWarning):
    """A block that could record ended without a single connection recorded or replayed."""


async def _off_loop(func: Callable[..., T], *args: Any) -> T:
    """Run ``func(*args)`` on a worker thread and await it under whichever event
    loop is running (asyncio, uvloop, anyio on either backend, trio), so that
    the caller's loop keeps serving meanwhile (a server under test may run on it).
    Under a loop it does not know, it runs in place."""
    call = functools.partial(func, *args)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        return await loop.run_in_executor(None, call)
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            result: T = await trio.to_thread.run_sync(call)
            return result
    return call()


#: The attribute a decorated function carries: the ``use_cassette`` objects on it.
DECLARED = "__tcpcassette_cassettes__"


class _Activation:
    """One entry into a cassette: from loading it to saving it."""

    def __init__(self, options: use_cassette, name: str, legacy: str | None = None) -> None:
        self.mode = resolve_record_mode(options.record_mode)
        directory = resolve_cassette_dir(options.cassette_dir)
        self.path = cassette_path(name, directory)
        if legacy is not None and not self.path.exists():
            # A default name as an earlier release spelt it: keep using that file.
            old = cassette_path(legacy, directory)
            if old.exists():
                self.path = old
        self.options = options
        settings = current_settings()
        if settings is not None:
            settings.touch(self.path, directory)
        # --tcpcassette-learn: a cassette that exists is recorded once more, and
        # only what differs from it is kept (as volatile spans).
        self.learning = bool(settings is not None and settings.learn and self.path.exists())
        if self.learning:
            self.mode = RecordMode.ALL
        # --tcpcassette-verify: recorded once more, into memory, and compared with it.
        self.verifying = bool(
            settings is not None and settings.verify and self.path.exists() and not self.learning
        )
        if self.verifying:
            self.mode = RecordMode.ALL
        if options._sweep is not None:
            # A sweep case replays what the test recorded, whatever mode the run is in.
            self.mode, self.learning, self.verifying = RecordMode.NONE, False, False
        # --disable-tcpcassette: the code under test talks to the real servers.
        self.disabled = bool(settings is not None and settings.disabled)
        self._lock = contextlib.ExitStack()
        self._nothing_happened = False
        #: The cassette as the age check loaded it, for replay to use (record mode none).
        self._loaded: Cassette | None = None

    def enter(self) -> Cassette:
        if self.disabled:
            return Cassette(path=self.path)
        self._check_age()
        if self.mode is not RecordMode.NONE:
            # Workers recording the same cassette take turns; whoever comes
            # second loads what the first saved.
            self._lock.enter_context(recording_lock(self.path, timeout=self.options.lock_timeout))
        try:
            self._prepare()
            if not self.record:
                self._lock.close()  # replaying only: nothing to serialize
            self.session.open()
            self.cassette._live = self.session
            _intercept.activate(self.session)
        except BaseException:
            if hasattr(self, "session"):
                self.session.close()
            self._lock.close()
            raise
        return self.cassette

    def _check_age(self) -> None:
        """Apply ``max_age``: warn about, fail on or record again a cassette older than it."""
        options = self.options
        max_age = resolve_max_age(options.max_age)
        if max_age is None or self.learning or options._sweep is not None:
            return
        if self.mode is RecordMode.ALL or not self.path.exists():
            return  # recorded afresh in any case
        loaded = load(self.path)
        if self.mode is RecordMode.NONE:
            self._loaded = loaded
        dated = loaded.recorded_at is not None
        try:
            when = (
                loaded.recorded_at if loaded.recorded_at is not None else self.path.stat().st_mtime
            )
        except OSError:
            return  # gone since it was read: the load under the lock reports it
        how_old = age(when, time.time())
        if how_old <= max_age:
            return
        action = resolve_on_expiry(options.on_expiry)
        if action is OnExpiry.RERECORD and self.mode is not RecordMode.NONE:
            self.mode, self._loaded = RecordMode.ALL, None
            return
        if action is OnExpiry.FAIL:
            raise expired_error(str(self.path), how_old, max_age, dated=dated)
        message = expired_message(str(self.path), how_old, max_age, dated=dated)
        if action is OnExpiry.RERECORD:
            message += (
                "; on_expiry='rerecord', but record mode 'none' never records: run with "
                "--record-mode=once where the servers are available to record it again"
            )
        else:
            message += "; record it again with --record-mode=all"
        warnings.warn(message, CassetteExpiredWarning, stacklevel=4)

    def _prepare(self) -> None:
        options = self.options
        exists = self.path.exists()
        if self.mode is RecordMode.NONE and not exists:
            raise CassetteNotFoundError(
                f"{self.path}: no such cassette, and record mode 'none' never records. Record "
                "it once against the real server: pytest --record-mode=once (or "
                f"{ENV_RECORD_MODE}=once outside pytest, or record_mode='once')."
            )
        keep = exists and self.mode is not RecordMode.ALL
        if self._loaded is not None:
            self.original = self._loaded
        elif keep or self.learning or self.verifying:
            self.original = load(self.path)
        else:
            self.original = Cassette(path=self.path)
        self.replay = keep
        self.record = self.mode in (RecordMode.ALL, RecordMode.NEW_EPISODES) or (
            self.mode is RecordMode.ONCE and not exists
        )
        self.cassette = Cassette(
            path=self.path,
            connections=self.original.connections,
            hosts=self.original.hosts,
            recorded_at=self.original.recorded_at,
        )
        for placement in options.faults:
            self.cassette.inject(
                placement.fault,
                connection=placement.connection,
                after=placement.after,
                framing=options.framer,
            )
        if options._sweep is not None:
            self.cassette.connections = place_case(
                options._sweep, self.cassette.connections, str(self.path)
            )
        self.session = new_session(
            self.cassette,
            mode=self.mode.value,
            replay=self.replay,
            record=self.record,
            options=replace(
                options.replay_options,
                noise=NoiseMode.parse(resolve_noise(options.noise)),
                strict=resolve_strict(options.strict),
            ),
            limits=options.limits,
            targets=options.targets,
            ignore=options.ignore,
            upstream_ca=options.upstream_ca,
        )

    def exit(self, failure: BaseException | None = None) -> None:
        """Stop intercepting, save what was recorded, raise what went wrong.

        ``failure`` is what the block itself raised, if anything (see
        :func:`_raise_for`).
        """
        __tracebackhide__ = True
        if self.disabled:
            return
        with self._lock:
            errors = self._finish()
        if errors:
            _raise_for(errors, failure)
        if failure is None and self._nothing_happened:
            warnings.warn(
                f"{self.path}: the block recorded no connection and replayed none. A client "
                "that does not connect through Python's socket module (a C library such as "
                "libpq or grpcio, a subprocess) is not redirected: point it at "
                "cassette.address('host:port'). Or the code under test made no TCP "
                "connection at all, or only to targets this cassette does not intercept.",
                NothingRecordedWarning,
                stacklevel=3,
            )

    def check(self, failure: BaseException | None = None) -> None:
        """Raise the errors found so far, in place of ``failure`` (see :func:`_raise_for`)."""
        __tracebackhide__ = True
        if self.disabled or not hasattr(self, "session"):
            return
        errors = self.session.take_errors()
        if errors:
            _raise_for(errors, failure)

    def _finish(self) -> list[CassetteError]:
        _intercept.deactivate(self.session)
        result = self.session.close()
        self.cassette._live = None
        self._nothing_happened = (
            self.record
            and not self.learning
            and not self.verifying
            and not result.recorded
            and not any(result.play_counts)
        )
        self.cassette.play_counts = result.play_counts
        learned = 0
        # A save that fails keeps the recording in another file (the error says
        # where) and is reported first, with what replay found in the same block.
        unsaved: list[CassetteError] = []
        if self.verifying:
            noise = NoiseMode.parse(resolve_noise(self.options.noise))
            unsaved += _verify.check(
                self.path, self.original, result.recorded, result.hosts, noise=noise
            )
        elif self.learning:
            learning = learn(self.original.connections, result.recorded)
            self.original.connections = list(learning.connections)
            try:
                self.original.save()
                learned = len(learning.found)
            except CassetteError as error:
                unsaved.append(error)
        elif self.record and (result.recorded or not self.path.exists()):
            kept = self.original.connections if self.replay else []
            recorded = continue_after(kept, result.recorded)
            saved = Cassette(
                path=self.path,
                connections=[*kept, *recorded],
                hosts={**(self.original.hosts if self.replay else {}), **result.hosts},
                recorded_at=self._recorded_at(),
            )
            try:
                saved.save()
            except CassetteError as error:
                unsaved.append(error)
            else:
                # The cassette object the test holds shows what is now on disk
                # (with use-time faults kept in the connections it already had).
                self.cassette.connections += recorded
                self.cassette.hosts.update(result.hosts)
                self.cassette.play_counts += [0] * len(result.recorded)
                self.cassette.recorded_at = saved.recorded_at
        settings = current_settings()
        if settings is not None:
            settings.report(
                Outcome(
                    path=self.path,
                    replayed=self.cassette.play_count,
                    recorded=0 if self.learning or self.verifying else len(result.recorded),
                    learned=learned,
                    tolerated=tuple(result.tolerated),
                )
            )
        return [*unsaved, *result.errors]

    def _recorded_at(self) -> float:
        """When the cassette about to be saved was recorded: now, or (new_episodes, which
        keeps the connections recorded before) when its first recording was made."""
        if self.replay and self.cassette.connections:
            if self.original.recorded_at is not None:
                return self.original.recorded_at
            try:
                return self.path.stat().st_mtime  # recorded before the format kept the time
            except OSError:
                pass
        return round(time.time(), 3)


def _raise_for(errors: list[CassetteError], failure: BaseException | None) -> None:
    """Raise the cassette's ``errors`` (gathered) in place of the block's ``failure``.

    The cassette's error is the one the test fails with when replay reset a
    connection (the client's own exception, such as redis-py's
    ``ConnectionError``, is then what that reset did) or when the block
    failed with one of these very errors (raised through the client's
    connect).  The block's exception stays this error's ``__context__``, but
    is not printed above it, so the explanation comes first; its one-line
    summary ends the message (unless it is one of ``errors``, reported
    already).  Otherwise (the block failed first, and the cassette's errors,
    such as requests left unplayed, may follow from it), both are printed,
    the block's first, as Python chains them.

    A ``failure`` that is no ``Exception`` (Ctrl-C, ``pytest.skip``,
    ``pytest.fail``) goes on as it is.
    """
    __tracebackhide__ = True
    error = gather(errors)
    if failure is None:
        raise error
    if not isinstance(failure, Exception):
        return
    ours = any(failure is e for e in errors)
    reset = any(isinstance(e, ReplayError) and e.reset for e in errors)
    if not (ours or reset):
        raise error
    if error is failure:
        error = copy.copy(error)  # the original keeps its traceback through the client
    if not ours:
        kind = type(failure)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else f"{kind.__module__}.{kind.__qualname__}"
        )
        summary = str(failure).splitlines()[0] if str(failure) else ""
        error = copy.copy(error)
        error.args = (
            f"{error}\nThe code under test then raised {name}"
            + (f": {summary}" if summary else "")
            + " (kept as this error's __context__).",
        )
    error.__context__ = failure
    error.__cause__ = None
    error.__suppress_context__ = True
    raise error


class use_cassette:
    """Record or replay the TCP connections made inside a block or test.

    Use it as a decorator (sync or ``async def`` functions, methods), or as a
    ``with``/``async with`` block, which yields the :class:`Cassette`::

        @use_cassette("redis_roundtrip")
        def test_counter(): ...

        with use_cassette("x", targets=["localhost:6379"]) as cassette:
            host, port = cassette.address("localhost:6379")

        with use_cassette("y", targets={"redis": f"localhost:{port}"}):
            ...  # recorded and replayed as "redis", whatever the port

    Args:
        name: the cassette's name: ``<cassette_dir>/<name>.msgpack``.  A
            decorated test without a name gets ``<test module>/<test name>``.
        record_mode: ``"none"``, ``"once"``, ``"new_episodes"`` or ``"all"``;
            see :mod:`tcpcassette._settings` for how it combines with the
            command line, ini file and environment.
        cassette_dir: the directory holding cassettes.
        targets: intercept only connections to these ``"host:port"`` targets;
            or a map of target names to this run's ``"host:port"``
            (``{"redis": f"localhost:{port}"}``): connections are recorded
            under the name and replay serves the name at whatever address
            it maps to in the replaying run, so a server's port may change.
            A name is letters, digits, ``_``, ``.`` and ``-``.
        ignore: never intercept these targets (``"host:port"``) or hosts.
        faults: faults placed for this use only (see :func:`tcpcassette.at`);
            the file is not changed.
        match: a matcher ``(recorded, actual) -> bool`` comparing each client
            message (see :mod:`tcpcassette.matchers`); default: equal bytes.
        framing: how client messages are delimited for matching and
            display: ``"raw"`` (default), ``"lines"``, ``"length-prefixed"``
            or a :class:`tcpcassette.framing.Framer`.
        filters: rewrite bytes before they are saved and live client bytes
            before they are matched (see :mod:`tcpcassette.filters`).
        matching: ``"script"`` (default: each connection replays its own
            recording) or ``"exchange"`` (each request is answered from any
            recorded connection to the target: for connection pools).
        allow_playback_repeats: serve recordings (or exchanges) more than once.
        strict: fail when recorded connections or requests were never used
            (default: the ini option ``tcpcassette_strict``, else False).
        realtime: replay the recorded gaps between server chunks; a number
            is a speed factor (2.0 = twice as fast).
        noise: which differences between runs replay tolerates: ``"auto"``
            (echoed values, random-looking values and learned spans; the
            default, or the ini option ``tcpcassette_noise``),
            ``"learned"`` (learned spans only) or ``"off"`` (exact bytes).
        protocol: ``"auto"`` (default: the protocols tcpcassette knows, detected
            from the recorded bytes, frame and compare messages), ``"raw"``
            (bytes only) or your own protocol object (see
            :mod:`tcpcassette.protocols`).
        scrub: replace credentials sent in clear (passwords, ``Authorization``,
            cookies; see the README's "Secrets are scrubbed") by a placeholder
            before the cassette is saved (default); ``False`` keeps them.
            The ``filters`` apply either way.
        stall_timeout, max_silence, connect_timeout, settle_timeout: bounds
            on waits, in seconds (see :class:`Limits`).
        lock_timeout: while recording, the longest wait for another process
            recording the same cassette.
        max_age: how old the cassette may get: seconds, or text such as
            ``"90d"``, ``"12h"``, ``"2w"`` (default: the ini option
            ``tcpcassette_max_age``, else any age).  Its age counts from
            :attr:`Cassette.recorded_at`, or the file's modification time in
            a cassette recorded before the format kept the time.
        on_expiry: what happens to a cassette older than ``max_age``:
            ``"warn"`` (a :class:`CassetteExpiredWarning`; the default, or
            the ini option ``tcpcassette_on_expiry``), ``"fail"`` (raise
            :class:`CassetteExpiredError`) or ``"rerecord"`` (record it
            again, as record mode ``all`` would, when the record mode in
            force may record: ``once``, ``new_episodes``; under ``none``, a
            warning).
        upstream_ca: while recording TLS, a CA file to verify real servers
            against for clients whose ``SSLContext`` tcpcassette cannot see
            (libpq, grpcio, a subprocess); a Python client's own context is
            used where there is one.  Default: the system's trust store.

    Raises:
        CassetteNotFoundError: replay-only mode and no cassette file.
        CassetteFormatError: the cassette file is invalid.
        ReplayError: on leaving the block, if the code under test did
            something the cassette does not hold.

    Written bare, ``@use_cassette`` is ``@use_cassette()``: the decorated
    function itself comes back, so pytest still collects the test.
    """

    def __new__(cls, name: Any = None, **options: Any) -> Any:
        if callable(name) and not isinstance(name, str):
            return cls()(name)  # @use_cassette without parentheses
        return super().__new__(cls)

    def __init__(
        self,
        name: str | Callable[..., Any] | None = None,
        *,
        record_mode: str | RecordMode | None = None,
        cassette_dir: str | os.PathLike[str] | None = None,
        targets: Iterable[str] | Mapping[str, str] | None = None,
        ignore: Iterable[str] = (),
        faults: Sequence[Placement] = (),
        match: Matcher | None = None,
        framing: FramingSpec = None,
        filters: Sequence[Filter] = (),
        matching: str | MatchingMode = MatchingMode.SCRIPT,
        allow_playback_repeats: bool = False,
        strict: bool | None = None,
        realtime: bool | float = False,
        noise: str | None = None,
        protocol: WireProtocol | str = "auto",
        scrub: bool = True,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        max_silence: float = DEFAULT_MAX_SILENCE,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        settle_timeout: float = DEFAULT_SETTLE_TIMEOUT,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        upstream_ca: str | os.PathLike[str] | None = None,
        max_age: str | float | None = None,
        on_expiry: str | OnExpiry | None = None,
    ) -> None:
        # A callable name never gets here: __new__ decorated it.
        self.name: str | None = None if callable(name) else name
        self.record_mode = record_mode
        self.cassette_dir = cassette_dir
        self.targets: list[str] | dict[str, str] | None
        if isinstance(targets, Mapping):
            named_targets(targets)  # InvalidOptionError now, not at the first use
            self.targets = dict(targets)
        elif isinstance(targets, str):
            raise InvalidOptionError(
                f"targets={targets!r}: give a list of 'host:port' targets, or a map of names "
                "to them, not one string"
            )
        else:
            self.targets = list(targets) if targets is not None else None
        self.ignore = list(ignore)
        self.faults = list(faults)
        self.framer = resolve_framing(framing)
        self.replay_options = ReplayOptions.build(
            matching=matching,
            match=match,
            framing=self.framer,
            filters=filters,
            realtime=realtime,
            allow_playback_repeats=allow_playback_repeats,
            strict=bool(strict),
            faults=len(self.faults),
            noise=noise or "auto",
            protocol=protocol,
            scrub=scrub,
        )
        self.noise = noise
        self.limits = Limits(
            stall_timeout=stall_timeout,
            max_silence=max_silence,
            connect_timeout=connect_timeout,
            settle_timeout=settle_timeout,
        )
        self.lock_timeout = lock_timeout
        self.upstream_ca = upstream_ca
        self.strict = strict
        if max_age is not None:
            parse_duration(max_age, source="use_cassette(max_age=...)")  # refused now
        if on_expiry is not None:
            OnExpiry.parse(on_expiry, source="use_cassette(on_expiry=...)")
        self.max_age = max_age
        self.on_expiry = on_expiry
        #: The sweep case this use replays (the pytest plugin sets it): replay only,
        #: with the case's fault placed.
        self._sweep: Case | None = None
        self._stack: list[_Activation] = []

    def _activation(self, name: str | None) -> _Activation:
        if name is None:
            raise CassetteError(
                "use_cassette needs a name when used as a with-block, e.g. use_cassette('x')"
            )
        return _Activation(self, name)

    # -- with / async with ----------------------------------------------------

    def __enter__(self) -> Cassette:
        activation = self._activation(self.name)
        cassette = activation.enter()
        self._stack.append(activation)
        return cassette

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        self._stack.pop().exit(exc)

    def _check(self, failure: BaseException | None = None) -> None:
        """Raise now what the cassette in use found so far (the pytest plugin calls
        this when a test's body ends, so the test fails with it, not its teardown)."""
        __tracebackhide__ = True
        if self._stack:
            self._stack[-1].check(failure)

    async def __aenter__(self) -> Cassette:
        activation = self._activation(self.name)
        # Starting and stopping block for a moment on tcpcassette's own loop;
        # done in a thread so the caller's loop keeps serving (a server under
        # test may run on it).
        cassette = await _off_loop(activation.enter)
        self._stack.append(activation)
        return cassette

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        activation = self._stack.pop()
        await _off_loop(activation.exit, exc)

    # -- decorator ---------------------------------------------------------------

    def __call__(self, func: F) -> F:
        if inspect.isclass(func):
            return cast(F, self._decorate_class(func))
        name = self.name

        def activation() -> _Activation:
            if name is not None:
                return _Activation(self, name)
            return _Activation(self, *default_names(func))

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                __tracebackhide__ = True
                active = activation()
                await _off_loop(active.enter)
                try:
                    result = await func(*args, **kwargs)
                except BaseException as failure:
                    await _off_loop(active.exit, failure)
                    raise
                await _off_loop(active.exit)
                return result

            return cast(F, self._declared(async_wrapper))

        if not callable(func):
            raise CassetteError(
                f"use_cassette decorates functions, methods and test classes, not {func!r}"
            )

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            active = activation()
            active.enter()
            try:
                result = func(*args, **kwargs)
            except BaseException as failure:
                active.exit(failure)
                raise
            active.exit()
            return result

        return cast(F, self._declared(wrapper))

    def _declared(self, wrapper: Callable[..., Any]) -> Callable[..., Any]:
        """``wrapper`` marked with this cassette (beside those it wraps), so that
        ``--tcpcassette-orphans`` knows a skipped test's cassette from collection."""
        setattr(wrapper, DECLARED, (*getattr(wrapper, DECLARED, ()), self))
        return wrapper

    def _decorate_class(self, cls: type) -> type:
        """Each test method of ``cls`` (``test*``) gets the cassette, as pytest collects them."""
        tests = [
            name
            for name, value in vars(cls).items()
            if name.startswith("test") and inspect.isfunction(value)
        ]
        if not tests:
            raise CassetteError(
                f"use_cassette on class {cls.__name__}: it has no test methods (test*) to "
                "give the cassette to; decorate the methods, or the functions, instead"
            )
        for name in tests:
            setattr(cls, name, self(vars(cls)[name]))
        return cls
