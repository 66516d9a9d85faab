"""One error boundary: several errors keep the first's fields; errors from elsewhere are wrapped."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

import tcpcassette
from tcpcassette import CassetteError, ClientMismatchError, use_cassette
from tcpcassette._core.errors import gather
from tcpcassette.filters import replace

from . import servers
from .servers import ThreadedServer

Serve = Callable[[servers.Handler], ThreadedServer]


def test_gather_keeps_the_first_errors_type_and_fields_and_lists_the_others() -> None:
    first = ClientMismatchError(
        "c: connection 0, event 3: differs",
        cassette="c",
        connection=0,
        position=3,
        transcript="the transcript",
    )
    second = CassetteError("c: second problem")
    third = ClientMismatchError("c: connection 1: differs too", cassette="c", connection=1)
    combined = gather([first, second, third])
    assert type(combined) is ClientMismatchError
    assert (combined.cassette, combined.connection, combined.position) == ("c", 0, 3)
    assert combined.transcript == "the transcript"
    assert combined.others == (second, third)
    text = str(combined)
    assert text.startswith("c: connection 0, event 3: differs")
    assert "2 more:" in text and "- c: second problem" in text and "connection 1" in text
    assert str(first) == "c: connection 0, event 3: differs"  # the original is untouched
    assert gather([second]) is second


def test_two_mismatches_in_one_block_raise_the_first_with_its_transcript(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("two", record_mode="all", cassette_dir=cassette_dir):
        for word in (b"alpha", b"beta"):
            with socket.create_connection(server.address) as s:
                s.sendall(word)
                assert s.recv(100) == word.upper()
    server.stop()
    with pytest.raises(ClientMismatchError) as info:
        with use_cassette("two", cassette_dir=cassette_dir, matching="exchange"):
            for word in (b"alphX", b"betX"):
                with socket.create_connection(server.address, timeout=5) as s:
                    s.sendall(word)
                    with pytest.raises(ConnectionResetError):
                        s.recv(100)
    error = info.value
    assert error.cassette is not None and error.cassette.endswith("two.msgpack")
    assert error.transcript, "the first error's transcript must survive the gathering"
    assert len(error.others) == 1 and isinstance(error.others[0], ClientMismatchError)
    assert "1 more:" in str(error)


def test_a_save_that_fails_is_a_cassette_error_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    cassette = tcpcassette.Cassette(path=blocker / "x.msgpack")
    with pytest.raises(CassetteError, match=r"not-a-dir/x\.msgpack: could not save") as info:
        cassette.save()
    kept = getattr(info.value, "kept", None)  # what could not be saved, kept elsewhere
    if kept is not None:
        kept.unlink()


def test_a_lock_that_cannot_be_made_is_a_cassette_error(tmp_path: Path) -> None:
    blocker = tmp_path / "cassettes"
    blocker.write_text("a file where the cassette directory should be")
    with pytest.raises(CassetteError, match=r"cassette_dir .* is a file"):
        with use_cassette("x", record_mode="all", cassette_dir=blocker):
            pass


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: replace(b"(", b"x"), "not a regular expression"),
        (lambda: replace(b"a", b"x", side="neither"), "side must be"),
        (lambda: use_cassette("x", matching="pool"), "matching must be one of"),
        (lambda: use_cassette("x", realtime=-1), "realtime must be"),
        (lambda: use_cassette("x", framing="xml"), "unknown framing"),
        (lambda: use_cassette("x", stall_timeout=0), "stall_timeout must be"),
        (lambda: use_cassette("x", record_mode="sometimes"), None),
    ],
)
def test_bad_options_are_invalid_option_errors(
    call: Callable[[], object], message: str | None, cassette_dir: Path
) -> None:
    if message is None:
        # A record mode is checked when the cassette is entered.
        with pytest.raises(tcpcassette.InvalidOptionError, match="not a record mode"):
            with use_cassette("x", record_mode="sometimes", cassette_dir=cassette_dir):
                pass
        return
    with pytest.raises(tcpcassette.InvalidOptionError, match=message):
        call()
