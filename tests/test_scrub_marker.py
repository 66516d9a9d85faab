"""Scrubbing through the pytest marker: on by default, ``scrub=False`` keeps the credential."""

from __future__ import annotations

import pytest

from tcpcassette._core.scrub import PLACEHOLDER

from .test_plugin_marker import client_bytes, echo_server, record_then_replay

__all__ = ["echo_server"]


def test_the_marker_scrubs_by_default_and_scrub_false_keeps_it(
    pytester: pytest.Pytester, echo_server: object
) -> None:
    pytester.makepyfile(
        test_logins="""
import pytest
from echohelp import echo

@pytest.mark.tcpcassette("scrubbed")
def test_default():
    assert echo(b"PASS hunter2\\r\\n") == b"PASS HUNTER2\\r\\n"

@pytest.mark.tcpcassette("kept", scrub=False)
def test_kept():
    assert echo(b"PASS hunter2\\r\\n") == b"PASS HUNTER2\\r\\n"
"""
    )
    record_then_replay(pytester, echo_server, 2)  # type: ignore[arg-type]
    c = pytester.path / "cassettes"
    assert client_bytes(c / "scrubbed.msgpack") == [b"PASS " + PLACEHOLDER + b"\r\n"]
    assert client_bytes(c / "kept.msgpack") == [b"PASS hunter2\r\n"]
