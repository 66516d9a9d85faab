"""The SMTP protocol: smtplib in its default configuration against aiosmtpd, replayed fresh.

smtplib announces the machine it runs on in ``EHLO`` (``socket.getfqdn()``,
or the socket's address in brackets when that name has no dot), and a
message built with ``email.utils`` carries a new ``Date`` and ``Message-ID``
every run, which also changes the ``SIZE=`` smtplib puts on ``MAIL FROM``.
The protocol tolerates exactly those; the addresses and the body stay strict.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..commands import run_cli
from ..realservers import SmtpServer, in_fresh_process

SCRIPT = textwrap.dedent(
    """
    import json, smtplib, socket, sys, time
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid
    from tcpcassette import at, use_cassette
    from tcpcassette.faults import Reset

    directory, port, record_mode, hostname, body, days, reset_after = sys.argv[1:8]
    faults = [at(Reset(), connection=0, after=int(reset_after))] if reset_after else []
    if hostname:  # as on another machine: smtplib's default name is socket.getfqdn()
        socket.getfqdn = lambda name="": hostname
    out = {}
    try:
        with use_cassette(
            "default", cassette_dir=directory, record_mode=record_mode, faults=faults
        ):
            message = EmailMessage()
            message["From"] = "alice@example.test"
            message["To"] = "bob@example.test"
            message["Subject"] = "recorded"
            message["Date"] = formatdate(time.time() + int(days) * 86400, localtime=True)
            message["Message-ID"] = make_msgid()
            message.set_content(body)
            out["headers"] = {"Date": message["Date"], "Message-ID": message["Message-ID"]}
            try:
                with smtplib.SMTP("127.0.0.1", int(port)) as smtp:  # the default configuration
                    out["result"] = [smtp.ehlo()[0], smtp.send_message(message)]
            except Exception as exc:
                out["client_error"] = f"{type(exc).__module__}.{type(exc).__name__}"
    except Exception as exc:
        out["cassette_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)

BODY = "Hello Bob, this message was recorded.\n"
EXPECTED = [250, {}]


def run(
    directory: Path,
    port: int,
    *,
    record_mode: str = "none",
    hostname: str = "",
    body: str = BODY,
    days: int = 0,
    reset_after: int | None = None,
) -> dict[str, Any]:
    return in_fresh_process(
        SCRIPT,
        str(directory),
        str(port),
        record_mode,
        hostname,
        body,
        str(days),
        "" if reset_after is None else str(reset_after),
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, Any]]:
    """One mail recorded from aiosmtpd, which is then stopped."""
    directory = tmp_path_factory.mktemp("smtp")
    server = SmtpServer()
    try:
        outcome = run(directory, server.port, record_mode="all")
        assert outcome["result"] == EXPECTED, outcome
        assert len(server.messages) == 1 and BODY.strip().encode() in server.messages[0]
    finally:
        server.stop()
    yield directory, server.port, outcome["headers"]


def test_the_default_smtplib_replays_in_a_fresh_process(recorded: tuple[Path, int, Any]) -> None:
    directory, port, headers = recorded
    # Another day, so the Date differs for sure; the Message-ID is new anyway.
    outcome = run(directory, port, days=400)
    assert outcome["result"] == EXPECTED, outcome
    assert outcome["headers"]["Date"] != headers["Date"]
    assert outcome["headers"]["Message-ID"] != headers["Message-ID"]


def test_another_machines_name_replays(recorded: tuple[Path, int, Any]) -> None:
    directory, port, _ = recorded
    outcome = run(directory, port, hostname="a-much-longer-name.build.example.org", days=1)
    assert outcome["result"] == EXPECTED, outcome


def test_another_body_is_still_a_mismatch(recorded: tuple[Path, int, Any]) -> None:
    directory, port, _ = recorded
    outcome = run(directory, port, body=BODY.replace("Bob", "Eve"))
    assert outcome.get("client_error") == "smtplib.SMTPServerDisconnected", outcome
    error = outcome["cassette_error"]
    assert error.startswith("ClientMismatchError"), error
    assert "not accepted: " in error and "recorded 'Bob', live 'Eve'" in error


def test_show_prints_the_decoded_conversation(recorded: tuple[Path, int, Any]) -> None:
    directory, _, _ = recorded
    shown = run_cli("show", "--full", str(directory / "default.msgpack")).stdout
    assert "protocol smtp" in shown
    for line in (
        "⇒ 220 mail.test",
        "⇒ ehlo ",
        "⇒ mail FROM:<alice@example.test> size=",
        "⇒ rcpt TO:<bob@example.test>",
        "⇒ data\n",
        "⇒ 354 End data with",
        "⇒ message 'recorded', ",
        "⇒ 250 Message accepted for delivery",
        "⇒ QUIT",
        "⇒ 221 Bye",
    ):
        assert line in shown, line


def test_a_reset_after_ehlo_is_smtplibs_own_exception(recorded: tuple[Path, int, Any]) -> None:
    directory, port, _ = recorded
    lines = run_cli("show", "--full", str(directory / "default.msgpack")).stdout.splitlines()
    mail = next(i for i, line in enumerate(lines) if "⇒ mail FROM:" in line)
    # The last server chunk before MAIL FROM ends the reply to EHLO.
    event = next(line for line in reversed(lines[:mail]) if "server → client" in line)
    outcome = run(directory, port, reset_after=int(event.split()[0]))
    assert outcome.get("client_error") == "smtplib.SMTPServerDisconnected", outcome
    assert "cassette_error" not in outcome, outcome
