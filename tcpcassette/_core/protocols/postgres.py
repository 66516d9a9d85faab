"""PostgreSQL, frontend/backend protocol 3: typed messages, and SCRAM without the password.

Framing: the client's first messages (``SSLRequest``, ``GSSENCRequest``,
``StartupMessage``, ``CancelRequest``) have no type byte, an Int32 length
(which counts itself) first; every later message is a type byte and an Int32
length.  Type bytes are letters, so a message starting with a zero byte is an
untyped one.  The server answers ``SSLRequest`` with the single byte ``N``
(or ``S``), told apart from a ``NoticeResponse`` by the zero byte a notice's
length starts with.

What differs between runs:

* The names client libraries give prepared statements and cursors from a
  per-process counter (asyncpg's ``__asyncpg_stmt_1a__``): :meth:`normalise`
  writes a fixed ``#`` in place of the counter (and recomputes the length),
  so another counter, even one of another length, matches.
* The SCRAM nonce the client chooses (``r=`` in ``SASLInitialResponse``
  and ``SASLResponse``) and the proof it computes (``p=``) are volatile.

SCRAM and replay: the password never crosses the wire, and SCRAM binds both
sides to it.  The server-first message carries the client's random nonce
(the echo rule writes the live one in), but the server-final ``v=`` is an
HMAC of the whole exchange under a key derived from the password, which the
client checks (asyncpg, libpq): a recorded signature cannot fit the live
nonce, and replay does not know the password to compute another.  So replay
answers as a ``trust`` server would: :meth:`script` takes the server-first
(``AuthenticationSASLContinue``), the client-final (``SASLResponse``) and the
server-final (``AuthenticationSASLFinal``) out of the script it plays, so the
client's ``SASLInitialResponse`` is answered by the recorded
``AuthenticationOk``.  Clients accept ``AuthenticationOk`` at any point of
the exchange (unless told to require SCRAM, like libpq's
``require_auth=scram-sha-256`` or ``channel_binding=require``).  MD5 and
cleartext passwords replay as recorded: the server's salt is recorded, so the
live client computes the same answer.  Another password must be a mismatch,
yet an MD5 answer (32 hex digits) or a long password looks random to the
generic ``random`` rule of :mod:`tcpcassette._core.noise`; so the compared
form of a ``PasswordMessage`` spells its body out as ``0`` and ``1``
characters, which no generic rule takes for random (as the MySQL protocol
does with its auth response).  That form is only compared, never sent.

SCRAM and TLS: over TLS a server may offer ``SCRAM-SHA-256-PLUS``, which
binds the login to the server certificate the client sees
(``tls-server-end-point``); libpq's default ``channel_binding=prefer``
picks it.  Behind the recording proxy the client sees tcpcassette's
certificate, so the server refuses the login, as channel binding is meant
to.  :meth:`refusal` recognises that in a recording (the ``-PLUS``
mechanism chosen inside TLS, answered by an ``ErrorResponse``) by the
messages alone, not by the server's words, which may be translated.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence

from ..events import ClientData, Event, ServerData, TlsStart
from ..scrub import PLACEHOLDER, Scrub
from .base import ProtocolBase, printable

#: The protocol version 3.0 of a ``StartupMessage``.
PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
#: Bytes of a value shown when a message is rendered.
SHOWN_BYTES = 60
#: Columns shown of a ``DataRow`` or ``RowDescription``; more are counted.
SHOWN_COLUMNS = 6

_UNTYPED = {
    SSL_REQUEST: "SSLRequest",
    GSSENC_REQUEST: "GSSENCRequest",
    CANCEL_REQUEST: "CancelRequest",
}
_COUNTER_NAME = re.compile(rb"__asyncpg_([a-z]+)_[0-9a-f]+__")
#: The server-made SCRAM values: the nonce of server-first, the signature of server-final.
_SCRAM_SERVER = re.compile(rb"(?:^|,)(?:r|s|v)=([^,\x00]*)")
#: How :meth:`Postgres.normalise` writes the ``md5`` that begins an MD5 answer.
_MD5_BITS = "".join(f"{c:08b}" for c in b"md5").encode()
_SCRAM_VALUE = re.compile(rb"(?:^|,)(?:r|p)=([^,\x00]*)")
#: Events after the ``tls`` event that :meth:`Postgres.refusal` looks at: a login is
#: over long before.
_LOGIN_EVENTS = 64

_AUTH = {
    0: "AuthenticationOk",
    2: "AuthenticationKerberosV5",
    3: "AuthenticationCleartextPassword",
    5: "AuthenticationMD5Password",
    7: "AuthenticationGSS",
    8: "AuthenticationGSSContinue",
    9: "AuthenticationSSPI",
    10: "AuthenticationSASL",
    11: "AuthenticationSASLContinue",
    12: "AuthenticationSASLFinal",
}
_CLIENT_NAMES = {
    "Q": "Query",
    "P": "Parse",
    "B": "Bind",
    "E": "Execute",
    "D": "Describe",
    "C": "Close",
    "S": "Sync",
    "H": "Flush",
    "X": "Terminate",
    "d": "CopyData",
    "c": "CopyDone",
    "f": "CopyFail",
    "F": "FunctionCall",
    "p": "PasswordMessage",
}
_SERVER_NAMES = {
    "R": "Authentication",
    "S": "ParameterStatus",
    "K": "BackendKeyData",
    "Z": "ReadyForQuery",
    "T": "RowDescription",
    "D": "DataRow",
    "C": "CommandComplete",
    "E": "ErrorResponse",
    "N": "NoticeResponse",
    "1": "ParseComplete",
    "2": "BindComplete",
    "3": "CloseComplete",
    "n": "NoData",
    "t": "ParameterDescription",
    "s": "PortalSuspended",
    "I": "EmptyQueryResponse",
    "A": "NotificationResponse",
    "G": "CopyInResponse",
    "H": "CopyOutResponse",
    "W": "CopyBothResponse",
    "d": "CopyData",
    "c": "CopyDone",
    "V": "FunctionCallResponse",
    "v": "NegotiateProtocolVersion",
}


def _int32(data: bytes, at: int) -> int:
    return int(struct.unpack_from("!i", data, at)[0])


def message_end(data: bytes, at: int, side: str) -> int | None:
    """The end of the message starting at ``at`` (None: it is still arriving).

    A length too small to be one ends the message at its header, so that
    malformed input is matched as a whole rather than waited for.
    """
    if at >= len(data):
        return None
    first = data[at]
    # The one-byte answer to SSLRequest or GSSENCRequest: no length follows
    # (a notice's length starts with a zero byte).
    if side == "server" and at == 0 and first in b"NSG" and (len(data) == 1 or data[1] != 0):
        return 1
    typed = first != 0 or side == "server"
    header = 5 if typed else 4
    if len(data) < at + header:
        return None
    length = _int32(data, at + header - 4)
    if length < 4:
        return at + header
    end = at + header - 4 + length
    return end if end <= len(data) else None


def _split(data: bytes, side: str) -> list[int]:
    ends: list[int] = []
    at = 0
    while at < len(data):
        end = message_end(data, at, side)
        if end is None or end <= at:
            break
        ends.append(end)
        at = end
    return ends


def _cstrings(body: bytes) -> list[bytes]:
    return body.split(b"\x00")


def _show(value: bytes) -> str:
    return printable(value, SHOWN_BYTES)


def _auth_code(message: bytes) -> int | None:
    if len(message) >= 9 and message[:1] == b"R":
        return _int32(message, 5)
    return None


def _is_password(message: bytes) -> bool:
    """True for a ``PasswordMessage`` with a password or an MD5 answer, not SASL's."""
    body = message[5:]
    return (
        message[:1] == b"p"
        and len(message) >= 5
        and not body.startswith(b"SCRAM-")
        and not body.startswith(b"c=")
    )


#: AuthenticationCleartextPassword: the server asks for the password in clear.
_CLEARTEXT_REQUEST = b"R" + struct.pack("!ii", 8, 3)
#: A PasswordMessage whose password was scrubbed.
_SCRUBBED_PASSWORD = b"p" + struct.pack("!i", 4 + len(PLACEHOLDER) + 1) + PLACEHOLDER + b"\x00"


class Postgres(ProtocolBase):
    """The PostgreSQL frontend/backend protocol, version 3."""

    name = "postgres"

    def detect(self, client: bytes, server: bytes) -> bool:
        if len(client) < 8 or client[0] != 0:
            return False
        length, code = _int32(client, 0), _int32(client, 4)
        if code in (SSL_REQUEST, GSSENC_REQUEST):
            return length == 8
        return code == PROTOCOL_3 and 8 < length <= 10000

    def split(self, data: bytes, side: str) -> list[int]:
        return _split(data, side)

    def might_hold_secret(self, data: bytes, side: str, before: bytes) -> bool:
        return side == "client" and before.endswith(_CLEARTEXT_REQUEST)

    def scrub(self, message: bytes, side: str, before: bytes) -> Scrub | None:
        """The password of a ``PasswordMessage`` that answers
        ``AuthenticationCleartextPassword``, with its length in the span.  MD5 and
        SCRAM answers are left: they are derived from a server nonce, not clear text."""
        if side != "client" or not before.endswith(_CLEARTEXT_REQUEST):
            return None
        if message[:1] != b"p" or len(message) < 6:
            return None
        return _SCRUBBED_PASSWORD, [(1, len(_SCRUBBED_PASSWORD))]

    def normalise(self, message: bytes) -> bytes:
        if _is_password(message) and message != _SCRUBBED_PASSWORD:
            # A password or its MD5 answer as bits: another password must not pass
            # for a random value (see the module's docstring).
            bits = "".join(f"{byte:08b}" for byte in message[5:]).encode()
            return b"p" + struct.pack("!i", len(bits) + 4) + bits
        if not message or message[0] not in b"PBDCQE":
            return message
        body, count = _COUNTER_NAME.subn(rb"__asyncpg_\1_#__", message[5:])
        if not count:
            return message
        return message[:1] + struct.pack("!i", len(body) + 4) + body

    def varying(self, message: bytes, side: str) -> list[tuple[int, int]]:
        """What the server makes anew for every connection: ``BackendKeyData``
        (its process id and cancel key), the salt of an MD5 request, the SCRAM
        server nonce (``r=``), salt (``s=``, made when the password was set) and
        signature (``v=``); and the client's MD5 answer,
        derived from the salt (in the bits :meth:`normalise` makes of it)."""
        if side == "client":
            if message[:1] == b"p" and message[5 : 5 + len(_MD5_BITS)] == _MD5_BITS:
                return [(5 + len(_MD5_BITS), len(message))]
            return []
        if message[:1] == b"K" and len(message) == 13:
            return [(5, 13)]
        code = _auth_code(message)
        if code == 5 and len(message) >= 13:
            return [(9, 13)]
        if code in (11, 12):
            found = _SCRAM_SERVER.finditer(message[9:])
            return [(9 + m.start(1), 9 + m.end(1)) for m in found]
        return []

    def volatile(self, message: bytes) -> list[tuple[int, int]]:
        if message[:1] != b"p" or len(message) < 5:
            return []
        body_at = 5
        body = message[5:]
        if body.startswith(b"SCRAM-"):
            # SASLInitialResponse: mechanism, Int32 length, client-first message.
            name_end = body.find(b"\x00")
            if name_end < 0:
                return []
            body_at += name_end + 5
            body = message[body_at:]
        elif not body.startswith(b"c="):
            return []  # a password message: what the client sends is fixed by the salt
        return [(body_at + m.start(1), body_at + m.end(1)) for m in _SCRAM_VALUE.finditer(body)]

    def play(self, events: Sequence[Event]) -> list[Event | None]:
        """The recorded events as replay plays them (None: left out): a SCRAM
        exchange answered as by a ``trust`` server (see the module's docstring).
        Unchanged when the exchange is not cut at message boundaries as expected."""
        out: list[Event | None] = []
        state = "before"  # "before" -> "continued" -> "answered" -> "done"
        for event in events:
            if state == "done" or not isinstance(event, ClientData | ServerData):
                out.append(event)
                continue
            side = "client" if type(event) is ClientData else "server"
            data = event.data
            ends = _split(data, side)
            if not ends or ends[-1] != len(data):
                return list(events)  # a message cut across chunks: leave it alone
            kept: list[bytes] = []
            for start, end in zip([0, *ends], ends, strict=False):
                message = data[start:end]
                code = _auth_code(message) if side == "server" else None
                if code == 11 and state == "before":
                    state = "continued"
                elif side == "client" and message[:1] == b"p" and state == "continued":
                    state = "answered"
                elif code == 12 and state == "answered":
                    state = "done"
                else:
                    kept.append(message)
            if len(kept) == len(ends):
                out.append(event)
            else:
                out.append(type(event)(data=b"".join(kept), time=event.time) if kept else None)
        return out if state == "done" else list(events)

    def refusal(self, events: Sequence[Event]) -> str | None:
        """Why the server refused a login that tcpcassette's TLS broke, and what to do
        (None: it did not).  Only one case: SCRAM with channel binding (see the module's
        docstring)."""
        tls_at = next((n for n, e in enumerate(events) if isinstance(e, TlsStart)), None)
        if tls_at is None:
            return None
        pending = {"client": b"", "server": b""}
        mechanism = b""
        for event in events[tls_at + 1 : tls_at + 1 + _LOGIN_EVENTS]:
            if not isinstance(event, ClientData | ServerData):
                continue
            side = "client" if type(event) is ClientData else "server"
            data = pending[side] + event.data
            ends = _split(data, side)
            pending[side] = data[ends[-1] :] if ends else data
            for start, end in zip([0, *ends], ends, strict=False):
                message = data[start:end]
                if side == "client" and message[:1] == b"p" and message[5:11] == b"SCRAM-":
                    mechanism = message[5:].partition(b"\x00")[0]
                elif side == "server" and _auth_code(message) == 0:
                    return None  # logged in
                elif side == "server" and message[:1] == b"E":
                    if not mechanism.endswith(b"-PLUS"):
                        return None
                    return _channel_binding_refused(mechanism, _fields(message[5:]))
        return None

    def render(self, message: bytes, side: str) -> str:
        try:
            return self._render(message, side)
        except (struct.error, IndexError, ValueError):
            return _show(message)

    def _render(self, message: bytes, side: str) -> str:
        if not message:
            return ""
        if side == "server" and len(message) == 1:
            return {"N": "SSL refused", "S": "SSL accepted", "G": "GSSENC accepted"}.get(
                chr(message[0]), _show(message)
            )
        if message[0] == 0 and side == "client":
            return _render_untyped(message)
        kind = chr(message[0])
        body = message[5:]
        if side == "client":
            return _render_client(kind, body)
        return _render_server(kind, body, message)


def _channel_binding_refused(mechanism: bytes, fields: dict[str, bytes]) -> str:
    said = " ".join(_show(fields[k]) for k in "SCM" if fields.get(k))
    name = _show(mechanism)
    return (
        f"the server refused the login ({said or 'ErrorResponse'}). The client chose "
        f"{name}, which binds the login to the server certificate it sees over TLS "
        "(channel binding); behind tcpcassette it sees tcpcassette's certificate, so the "
        "server finds the binding wrong, as it is meant to. Record this client with "
        "channel_binding=disable in its connection settings (libpq's default, prefer, "
        "picks channel binding whenever the server offers it), or against a server that "
        "uses md5 or password authentication; replay answers either."
    )


def _render_untyped(message: bytes) -> str:
    code = _int32(message, 4)
    if code in _UNTYPED:
        return _UNTYPED[code]
    if code != PROTOCOL_3:
        return f"StartupMessage version {code >> 16}.{code & 0xFFFF}"
    words = _cstrings(message[8:])
    pairs = [f"{_show(k)}={_show(v)}" for k, v in zip(words[::2], words[1::2], strict=False) if k]
    return "StartupMessage " + " ".join(pairs)


def _render_client(kind: str, body: bytes) -> str:
    name = _CLIENT_NAMES.get(kind, f"message {kind!r}")
    words = _cstrings(body)
    if kind == "Q":
        return f"Query: {_show(words[0])}"
    if kind == "P":
        return f"Parse {_show(words[0]) or '(unnamed)'}: {_show(words[1])}"
    if kind == "B":
        portal, statement = words[0], words[1]
        return f"Bind {_show(portal) or '(unnamed)'} {_show(statement) or '(unnamed)'}"
    if kind == "E":
        return f"Execute {_show(words[0]) or '(unnamed)'}"
    if kind in "DC" and body:
        what = "statement" if body[:1] == b"S" else "portal"
        target = _show(body[1:].split(b"\x00")[0]) or "(unnamed)"
        return f"{name} {what} {target}"
    if kind == "p":
        if body.startswith(b"SCRAM-"):
            mechanism, _, rest = body.partition(b"\x00")
            return f"SASLInitialResponse {_show(mechanism)} {_show(rest[4:])}"
        if body.startswith(b"c="):
            return f"SASLResponse {_show(body)}"
        return "PasswordMessage"
    return name


def _fields(body: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for field in _cstrings(body):
        if field:
            out[chr(field[0])] = field[1:]
    return out


def _render_server(kind: str, body: bytes, message: bytes) -> str:
    name = _SERVER_NAMES.get(kind, f"message {kind!r}")
    if kind == "R":
        code = _int32(message, 5)
        label = _AUTH.get(code, f"Authentication {code}")
        rest = body[4:]
        if code == 10:
            return label + " " + " ".join(_show(m) for m in _cstrings(rest) if m)
        if code in (11, 12):
            return f"{label} {_show(rest)}"
        return label
    if kind == "S":
        words = _cstrings(body)
        return f"ParameterStatus {_show(words[0])}={_show(words[1])}"
    if kind == "Z":
        return f"ReadyForQuery {_show(body[:1])}"
    if kind == "C":
        tag = body.rstrip(b"\x00")
        return f"CommandComplete {_show(tag)}"
    if kind in "EN":
        fields = _fields(body)
        parts = [fields.get(k, b"") for k in "SCM"]
        return f"{name} " + " ".join(_show(p) for p in parts if p)
    if kind == "D":
        return "DataRow " + _render_row(body)
    if kind == "T":
        count = struct.unpack_from("!h", body, 0)[0]
        names: list[str] = []
        at = 2
        for _ in range(min(count, SHOWN_COLUMNS)):
            end = body.index(b"\x00", at)
            names.append(_show(body[at:end]))
            at = end + 19
        more = f" … (+{count - SHOWN_COLUMNS} columns)" if count > SHOWN_COLUMNS else ""
        return "RowDescription " + " ".join(names) + more
    return name


def _render_row(body: bytes) -> str:
    count = struct.unpack_from("!h", body, 0)[0]
    values: list[str] = []
    at = 2
    for _ in range(min(count, SHOWN_COLUMNS)):
        size = _int32(body, at)
        at += 4
        if size < 0:
            values.append("NULL")
            continue
        values.append(_show(body[at : at + size]))
        at += size
    more = f" … (+{count - SHOWN_COLUMNS} columns)" if count > SHOWN_COLUMNS else ""
    return " | ".join(values) + more
