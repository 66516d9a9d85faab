"""The private event loop thread that runs every proxy and replay server.

One daemon thread per process, started on first use and kept for the life of
the process, so that entering ``use_cassette`` costs no thread start (a forked
child starts its own).  Sync
and async clients alike talk to servers on this loop; it never waits on the
caller's threads, so the caller may block on it without deadlock.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from .._core.errors import CassetteError

T = TypeVar("T")

#: Longest the caller waits for the loop thread to carry out a request.
CALL_TIMEOUT = 30.0

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _forget_in_child() -> None:
    # A forked child has the parent's loop object but not its thread: nothing
    # would ever run it.  The child starts a fresh loop on first use (and a
    # fresh lock, in case another thread held it at the fork).
    global _loop, _lock
    _lock = threading.Lock()
    _loop = None


os.register_at_fork(after_in_child=_forget_in_child)


def get_loop() -> asyncio.AbstractEventLoop:
    """The running private loop, started on first call."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            loop.set_exception_handler(_quiet_about_closed_peers)

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=run, name="tcpcassette-loop", daemon=True).start()
            ready.wait()
            _loop = loop
        return _loop


# A peer that vanished mid-write or mid-shutdown is part of what tcpcassette
# records and replays, not a fault of its loop: asyncio's default handler
# would print a traceback for each.
_EXPECTED_ERRNOS = frozenset((errno.ENOTCONN, errno.EPIPE, errno.ECONNRESET, errno.EBADF))


def _quiet_about_closed_peers(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    if isinstance(exc, OSError) and exc.errno in _EXPECTED_ERRNOS:
        return
    loop.default_exception_handler(context)


def run_coroutine(coro: Coroutine[Any, Any, T], *, timeout: float = CALL_TIMEOUT) -> T:
    """Run ``coro`` on the private loop and wait for its result in the calling thread.

    Raises:
        CassetteError: the loop did not carry it out within ``timeout`` seconds.
    """
    future: Future[T] = asyncio.run_coroutine_threadsafe(coro, get_loop())
    try:
        return future.result(timeout)
    except FutureTimeout:
        future.cancel()
        raise CassetteError(
            f"tcpcassette's event loop thread did not answer within {timeout:g} s; something "
            "blocks it (a callback that never returns). Report this with the test that shows it."
        ) from None


def call(func: Callable[[], T], *, timeout: float = CALL_TIMEOUT) -> T:
    """Run ``func`` on the private loop thread and return its result."""

    async def wrapper() -> T:
        return func()

    return run_coroutine(wrapper(), timeout=timeout)
