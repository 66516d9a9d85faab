"""SMTP, where the server speaks first: aiosmtpd as the server, smtplib as the client."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tcpcassette import at, load
from tcpcassette.faults import Reset

from ..realservers import (
    REPO_CASSETTES,
    SmtpServer,
    committed_target,
    record_and_compare,
    replaying_committed,
)


def send_mail(port: int) -> list[object]:
    """A full exchange: greeting, EHLO, MAIL, RCPT, DATA, QUIT."""
    message = EmailMessage()
    message["From"] = "alice@example.test"
    message["To"] = "bob@example.test"
    message["Subject"] = "recorded"
    message["Message-ID"] = "<fixed@example.test>"  # the default would differ per run
    message.set_content("Hello Bob, this exchange was recorded.\n")
    # local_hostname is fixed: the default is this machine's name, sent in EHLO.
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=5) as smtp:
        code, banner = smtp.ehlo()
        refused = smtp.send_message(message)
        return [code, banner.split(b"\n")[0], refused]


SEND_MAIL: list[object] = [250, b"mail.test", {}]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


@pytest.mark.record
def test_record_from_aiosmtpd(smtp_server: SmtpServer, tmp_path: Path) -> None:
    received = smtp_server.messages
    record_and_compare("smtp/send_mail", smtp_server, send_mail, SEND_MAIL, tmp_path)
    assert b"Hello Bob, this exchange was recorded." in received[0]


def test_replay_with_no_server_greets_first() -> None:
    _, port = committed_target("smtp/send_mail")
    with replaying_committed("smtp/send_mail") as cassette:
        assert send_mail(port) == SEND_MAIL
    assert cassette.all_played
    first = load(REPO_CASSETTES / "smtp/send_mail.msgpack").connections[0]
    assert first.server_speaks_first
    assert first.events[0].data.startswith(b"220 mail.test")


def test_reset_after_the_greeting_raises_smtp_server_disconnected() -> None:
    _, port = committed_target("smtp/send_mail")
    with replaying_committed("smtp/send_mail", faults=[at(Reset(), connection=0, after=1)]):
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionResetError)):
            send_mail(port)
