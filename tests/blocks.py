"""Expecting the error that a use_cassette block raises as it ends."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TypeVar

import pytest

from tcpcassette import CassetteError

E = TypeVar("E", bound=BaseException)


@contextlib.contextmanager
def raises_at_exit(error: type[E], match: str | None = None) -> Iterator[pytest.ExceptionInfo[E]]:
    """``pytest.raises(error)`` around a ``use_cassette`` block whose body must run to its end.

    use_cassette raises what went wrong on its own threads when the block
    exits, even when the body itself raised: its error then takes the place of
    the body's, and under a plain ``pytest.raises`` an assertion that failed
    in the body (or a client that timed out) would go unseen.  Here it fails
    the test.
    """
    with pytest.raises(error, match=match) as info:
        yield info
    body = info.value.__context__
    if isinstance(body, CassetteError):
        body = None  # the error itself, raised through the client's connect: it is reported
    assert body is None, f"the block's body failed before {error.__name__} was raised: {body!r}"
