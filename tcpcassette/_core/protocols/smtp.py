"""SMTP (and LMTP): the server greets first, commands are lines, a message ends at ``.``.

A client message is a command line, an ``AUTH`` continuation (one base64
token), a ``BDAT`` command with its chunk, or the content sent after
``DATA`` up to the line holding a single dot.  Framing is decided from the
bytes alone: a line that starts with a command verb is a command, any other
text is message content (it starts with its headers).  A server message is
a reply: its ``250-`` continuation lines up to the last ``250`` line.

What differs between runs:

* the ``EHLO``/``HELO``/``LHLO`` argument: by default a client announces the
  name of the machine it runs on (smtplib sends ``socket.getfqdn()``); a
  reply that repeats it gets the live name (:meth:`Smtp.rewrite`);
* the ``SIZE=`` parameter of ``MAIL FROM``, which counts the message, whose
  generated headers below may change length;
* the values of the ``Date`` and ``Message-ID`` headers of the message
  (``email.utils.formatdate`` and ``make_msgid`` give new ones every run;
  a Message-ID also holds the machine's name).

Everything else must match: addresses, every other header, and the body.
"""

from __future__ import annotations

import re

from ..scrub import Scrub, replace_spans
from .base import ProtocolBase, ends_of, printable

_VERBS = frozenset(
    (
        *(b"EHLO", b"HELO", b"LHLO", b"MAIL", b"RCPT", b"DATA", b"BDAT", b"RSET", b"NOOP"),
        *(b"QUIT", b"VRFY", b"EXPN", b"HELP", b"AUTH", b"STARTTLS", b"ETRN", b"TURN"),
    )
)
_GREETINGS = (b"EHLO", b"HELO", b"LHLO")
#: An AUTH continuation: one base64 token (or ``*`` to cancel) on its line.
_TOKEN_LINE = re.compile(rb"(?:[A-Za-z0-9+/]+=*|=|\*|)\r\n")
_AUTH_INLINE = re.compile(rb"(?i)AUTH[ \t]+(?:PLAIN|LOGIN)[ \t]+([A-Za-z0-9+/]+=*)[ \t]*\r\n")
_CONTINUATION = re.compile(rb"([A-Za-z0-9+/]+=*)\r\n")
#: In every command :data:`_AUTH_INLINE` matches.
_AUTH_WORD = re.compile(rb"(?i)AUTH")
_REPLY_LINE = re.compile(rb"\d{3}([ -]|\r\n)")
_SIZE = re.compile(rb"(?i)[ \t]SIZE=(\d*)")
#: Header fields whose values are generated anew every run.
VOLATILE_HEADERS = (b"date", b"message-id")
#: Longest line framed (a longer one is matched as raw bytes).
MAX_LINE = 64 * 1024
#: Bytes of a line shown when a message is rendered.
SHOWN_BYTES = 80


def _after_challenge(before: bytes) -> bool:
    """True when the server's last line is a ``334`` challenge, which the next
    client line answers with a credential."""
    return before.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].startswith(b"334")


def _line_end(data: bytes, at: int) -> int | None:
    end = data.find(b"\r\n", at, at + MAX_LINE)
    if end == -1:
        return at + MAX_LINE if len(data) - at > MAX_LINE else None
    return end + 2


def _verb(line: bytes) -> bytes:
    return line.split(b" ", 1)[0].split(b"\r", 1)[0].upper()


def is_command(data: bytes) -> bool:
    """True when ``data`` starts with a command line (not message content)."""
    first = data[:16]
    verb = _verb(first)
    if verb in _VERBS:
        return len(first) > len(verb) and first[len(verb)] in b" \r"
    return _TOKEN_LINE.match(data, 0, MAX_LINE) is not None


def content_end(data: bytes, at: int = 0) -> int | None:
    """The end of message content sent after ``DATA``, its final dot line included."""
    if data.startswith(b".\r\n", at):
        return at + 3
    end = data.find(b"\r\n.\r\n", at)
    return None if end == -1 else end + 5


def command_end(data: bytes, at: int = 0) -> int | None:
    """The end of the client message at ``at`` (None: still arriving)."""
    if not is_command(data[at : at + MAX_LINE]):
        return content_end(data, at)
    end = _line_end(data, at)
    if end is None:
        return None
    words = data[at:end].split()
    if _verb(data[at:end]) == b"BDAT" and len(words) >= 2 and words[1].isdigit():
        total = end + int(words[1])
        return total if total <= len(data) else None
    return end


def reply_end(data: bytes, at: int = 0) -> int | None:
    """The end of the server reply at ``at``: its last line (None: still arriving)."""
    while True:
        end = _line_end(data, at)
        if end is None:
            return None
        found = _REPLY_LINE.match(data, at, end)
        if found is None or found.group(1) != b"-":
            return end  # the last line, or not a reply line: the reply ends here
        at = end


def _header_values(message: bytes) -> list[tuple[int, int]]:
    """Spans of the values of :data:`VOLATILE_HEADERS` in message content."""
    head_end = message.find(b"\r\n\r\n")
    head_end = len(message) if head_end == -1 else head_end + 2
    spans: list[tuple[int, int]] = []
    at = 0
    while at < head_end:
        end = message.find(b"\r\n", at, head_end)
        if end == -1:
            break
        # A field folded onto lines that start with white space is one field.
        while message[end + 2 : end + 3] in (b" ", b"\t") and end + 2 < head_end:
            following = message.find(b"\r\n", end + 2, head_end)
            if following == -1:
                break
            end = following
        name, colon, _ = message[at:end].partition(b":")
        if colon and name.strip().lower() in VOLATILE_HEADERS:
            # From the colon on: a longer value may be folded onto the next line.
            spans.append((at + len(name) + 1, end))
        at = end + 2
    return spans


def _show(value: bytes) -> str:
    return printable(value, SHOWN_BYTES)


class Smtp(ProtocolBase):
    """SMTP, ESMTP and LMTP: a greeting, command lines, and message content."""

    name = "smtp"

    def detect(self, client: bytes, server: bytes) -> bool:
        greeted = re.match(rb"220[ -]", server) is not None
        return greeted and _verb(client[:16]) in _GREETINGS

    def split(self, data: bytes, side: str) -> list[int]:
        find = command_end if side == "client" else reply_end
        return ends_of(data, find)

    def volatile(self, message: bytes) -> list[tuple[int, int]]:
        if not is_command(message):
            return _header_values(message)
        end = _line_end(message, 0) or len(message)
        verb = _verb(message)
        if verb in _GREETINGS and end - 2 > len(verb) + 1:
            return [(len(verb) + 1, end - 2)]
        if verb == b"MAIL":
            return [found.span(1) for found in _SIZE.finditer(message, 0, end)]
        return []

    def rewrite(self, reply: bytes, recorded: bytes, live: bytes) -> bytes:
        """A reply to ``EHLO`` that repeats the client's name repeats the live one."""
        verb = _verb(recorded)
        if verb not in _GREETINGS or _verb(live) != verb:
            return reply
        old = recorded[len(verb) + 1 :].strip()
        new = live[len(verb) + 1 :].strip()
        if not old or old == new:
            return reply
        return re.sub(rb"(?<![\w.-])" + re.escape(old) + rb"(?![\w.-])", new, reply)

    def might_hold_secret(self, data: bytes, side: str, before: bytes) -> bool:
        if side != "client":
            return False
        return _AUTH_WORD.search(data) is not None or _after_challenge(before)

    def scrub(self, message: bytes, side: str, before: bytes) -> Scrub | None:
        """The base64 credentials of ``AUTH PLAIN`` and ``AUTH LOGIN``: inline after
        the mechanism, and every line that answers a ``334`` challenge (LOGIN's
        user name and password, PLAIN's credentials on the next line)."""
        if side != "client":
            return None
        found = _AUTH_INLINE.fullmatch(message)
        if found is None and _after_challenge(before):
            found = _CONTINUATION.fullmatch(message)
        return replace_spans(message, [found.span(1)]) if found is not None else None

    def render(self, message: bytes, side: str) -> str:
        if side == "client" and not is_command(message):
            subject = re.search(rb"(?im)^subject:[ \t]*([^\r\n]*)", message)
            about = f" {_show(subject.group(1))!r}" if subject else ""
            return f"message{about}, {len(message)} bytes"
        first = message.split(b"\r\n", 1)[0]
        lines = message.count(b"\r\n")
        more = f" … (+{lines - 1} lines)" if side == "server" and lines > 1 else ""
        return _show(first) + more
