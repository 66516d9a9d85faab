"""The SMTP protocol, with no network: framing, volatile fields, rewriting, rendering."""

from __future__ import annotations

import random

import pytest

from tcpcassette import ClientData, Connection, ServerData
from tcpcassette._core.actions import Action, Problem, Send
from tcpcassette._core.protocols import detect
from tcpcassette._core.protocols.smtp import Smtp, command_end, reply_end
from tcpcassette._core.replay import ReplayMachine

S = Smtp()


def mail(date: bytes, message_id: bytes, body: bytes = b"Hello Bob.\r\n") -> bytes:
    return (
        b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n"
        b"Date: " + date + b"\r\nMessage-ID: " + message_id + b"\r\n"
        b"MIME-Version: 1.0\r\n\r\n" + body + b".\r\n"
    )


MAIL = mail(b"Tue, 01 Dec 2026 21:22:16 +0000", b"<179616013667.24989.1444@localhost>")
COMMANDS = [
    b"ehlo [127.0.0.1]\r\n",
    b"MAIL FROM:<alice@example.test> SIZE=280\r\n",
    b"RCPT TO:<bob@example.test>\r\n",
    b"DATA\r\n",
    b"QUIT\r\n",
    b"AUTH PLAIN\r\n",
    b"AGFsaWNlAHNlY3JldA==\r\n",  # an AUTH continuation
    b"BDAT 7 LAST\r\nab\r\n.\r\n",  # a chunk is counted, not dot-terminated
    MAIL,
    b".\r\n",  # an empty message
]
REPLIES = [
    b"220 mail.test ESMTP\r\n",
    b"250-mail.test\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250 HELP\r\n",
    b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"221\r\n",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_or_a_message_is_one_message_and_waits_when_cut(command: bytes) -> None:
    assert S.split(command, "client") == [len(command)]
    for cut in range(len(command)):
        assert command_end(command[:cut]) is None, cut


@pytest.mark.parametrize("reply", REPLIES)
def test_a_multi_line_reply_is_one_message_and_waits_when_cut(reply: bytes) -> None:
    assert S.split(reply, "server") == [len(reply)]
    for cut in range(len(reply)):
        assert reply_end(reply[:cut]) is None, cut


def test_a_dot_inside_a_line_of_the_message_does_not_end_it() -> None:
    message = mail(b"x", b"<y>", body=b"Dots. In a line.\r\n..stuffed\r\n")
    assert S.split(message + b"QUIT\r\n", "client") == [len(message), len(message) + 6]


@pytest.mark.parametrize("seed", range(10))
def test_a_conversation_splits_the_same_however_it_arrives(seed: int) -> None:
    stream = b"".join(COMMANDS[:5]) + MAIL + b"QUIT\r\n"
    ends = S.split(stream, "client")
    assert len(ends) == 7 and ends[-1] == len(stream)
    cut = random.Random(seed).randrange(1, len(stream))
    assert S.split(stream[:cut], "client") == [e for e in ends if e <= cut]


def test_smtp_is_detected_from_the_greeting_and_ehlo() -> None:
    assert S.detect(b"ehlo [127.0.0.1]\r\n", b"220 mail.test ESMTP\r\n")
    assert S.detect(b"HELO client\r\n", b"220-first\r\n220 second\r\n")
    assert not S.detect(b"", b"220 mail.test\r\n")  # only the greeting: nothing to frame yet
    assert not S.detect(b"a001 CAPABILITY\r\n", b"* OK IMAP4rev1\r\n")
    assert not S.detect(b"EHLO x\r\n", b"+OK POP3\r\n")
    conn = Connection(
        target="127.0.0.1:25",
        events=(ServerData(data=REPLIES[0]), ClientData(data=b"EHLO client.test\r\n")),
    )
    found = detect(conn)
    assert found is not None and found.name == "smtp"


def spans(message: bytes) -> list[bytes]:
    return [message[a:b] for a, b in S.volatile(message)]


def test_what_is_volatile() -> None:
    assert spans(b"ehlo [127.0.0.1]\r\n") == [b"[127.0.0.1]"]
    assert spans(b"EHLO builder-7.example.org\r\n") == [b"builder-7.example.org"]
    assert spans(b"MAIL FROM:<alice@example.test> size=280\r\n") == [b"280"]
    assert spans(MAIL) == [
        b" Tue, 01 Dec 2026 21:22:16 +0000",
        b" <179616013667.24989.1444@localhost>",
    ]
    # A folded header is one field; a Date in the body is the body's.
    folded = mail(b"x", b"\r\n <1.2@long.example>", body=b"Date: in the body\r\n")
    assert spans(folded) == [b" x", b" \r\n <1.2@long.example>"]
    for strict in (b"RCPT TO:<bob@example.test>\r\n", b"DATA\r\n", b"EHLO\r\n"):
        assert S.volatile(strict) == []


def play(recorded: tuple[bytes, ...], live: tuple[bytes, ...]) -> list[Action]:
    events: list[ClientData | ServerData] = []
    for i, message in enumerate(recorded):
        events += [ClientData(data=message), ServerData(data=b"250 OK %d\r\n" % i)]
    m = ReplayMachine(
        (ServerData(data=REPLIES[0]), *events), hang_bound=30.0, stall_bound=5.0, protocol=S
    )
    actions = list(m.start(0.0))
    for message in live:
        actions += m.feed(message, 0.0)
    return actions


def test_another_machine_date_and_message_id_replay() -> None:
    live_mail = mail(b"Wed, 02 Dec 2026 09:00:01 +0100", b"<17961.9.77@a-longer.example.org>")
    recorded = (b"ehlo [127.0.0.1]\r\n", b"MAIL FROM:<a@x.test> size=280\r\n", MAIL)
    live = (b"ehlo builder.example.org\r\n", b"MAIL FROM:<a@x.test> size=1234\r\n", live_mail)
    actions = play(recorded, live)
    assert not [a for a in actions if isinstance(a, Problem)]
    assert len([a for a in actions if isinstance(a, Send)]) == 4


@pytest.mark.parametrize(
    "live",
    [
        mail(b"Tue, 01 Dec 2026 21:22:16 +0000", b"<1@x>", body=b"Hello Eve.\r\n"),
        MAIL.replace(b"To: bob@", b"To: eve@"),
        MAIL.replace(b"Subject: hi", b"Subject: ho"),
    ],
)
def test_another_body_or_header_is_still_a_mismatch(live: bytes) -> None:
    actions = play((MAIL,), (live,))
    problem = next(a for a in actions if isinstance(a, Problem))
    assert problem.reason == "mismatch"


def test_another_recipient_is_still_a_mismatch() -> None:
    actions = play((b"RCPT TO:<bob@example.test>\r\n",), (b"RCPT TO:<eve@example.test>\r\n",))
    assert any(isinstance(a, Problem) and a.reason == "mismatch" for a in actions)


def test_a_reply_naming_the_client_names_the_live_one() -> None:
    reply = b"250-mail.test Hello [127.0.0.1]\r\n250 SIZE 1000\r\n"
    rewritten = S.rewrite(reply, b"ehlo [127.0.0.1]\r\n", b"ehlo builder.example.org\r\n")
    assert rewritten == b"250-mail.test Hello builder.example.org\r\n250 SIZE 1000\r\n"
    named = b"250 mail.test Hello client, client.test\r\n"
    rewritten = S.rewrite(named, b"EHLO client\r\n", b"EHLO other\r\n")
    assert rewritten == b"250 mail.test Hello other, client.test\r\n"  # whole names only
    assert S.rewrite(reply, b"MAIL FROM:<a>\r\n", b"MAIL FROM:<b>\r\n") == reply


def test_messages_render_in_one_line() -> None:
    assert S.render(b"ehlo [127.0.0.1]\r\n", "client") == "ehlo [127.0.0.1]"
    assert S.render(MAIL, "client") == f"message 'hi', {len(MAIL)} bytes"
    assert S.render(REPLIES[1], "server") == "250-mail.test … (+3 lines)"
    assert S.render(b"220 mail.test\r\n", "server") == "220 mail.test"
    assert S.render(b"EHLO a\x1bb\r\n", "client") == "EHLO a\\x1bb"
