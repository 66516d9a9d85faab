"""tcpcassette: record and replay any TCP protocol in tests.

The first run of a test records the real client-server byte exchange through
a proxy on loopback into a msgpack cassette; later runs replay it from a mock
server, with the same bytes, chunks, closes and resets, and no network.
"""

from . import faults as faults
from . import filters as filters
from . import framing as framing
from . import matchers as matchers
from ._cassette import Cassette as Cassette
from ._cassette import load as load
from ._codec import FORMAT_VERSION as FORMAT_VERSION
from ._connection import Connection as Connection
from ._errors import CassetteError as CassetteError
from ._errors import CassetteFormatError as CassetteFormatError
from ._errors import CassetteInUseError as CassetteInUseError
from ._errors import CassetteNotFoundError as CassetteNotFoundError
from ._errors import CassettePathError as CassettePathError
from ._errors import ClientMismatchError as ClientMismatchError
from ._errors import ClientStalledError as ClientStalledError
from ._errors import InvalidFaultError as InvalidFaultError
from ._errors import ReplayError as ReplayError
from ._errors import UnplayedError as UnplayedError
from ._errors import UnrecordedConnectionError as UnrecordedConnectionError
from ._events import ClientClose as ClientClose
from ._events import ClientData as ClientData
from ._events import ClientReset as ClientReset
from ._events import ConnectRefused as ConnectRefused
from ._events import ConnectTimedOut as ConnectTimedOut
from ._events import Event as Event
from ._events import ServerClose as ServerClose
from ._events import ServerData as ServerData
from ._events import ServerReset as ServerReset
from ._options import Limits as Limits
from ._settings import RecordMode as RecordMode
from ._storage import DEFAULT_MAX_CASSETTE_BYTES as DEFAULT_MAX_CASSETTE_BYTES
from ._transcript import format_transcript as format_transcript
from ._use_cassette import at as at
from ._use_cassette import use_cassette as use_cassette
from ._version import __version__ as __version__

__all__ = [
    "DEFAULT_MAX_CASSETTE_BYTES",
    "FORMAT_VERSION",
    "Cassette",
    "CassetteError",
    "CassetteFormatError",
    "CassetteInUseError",
    "CassetteNotFoundError",
    "CassettePathError",
    "ClientClose",
    "ClientData",
    "ClientMismatchError",
    "ClientReset",
    "ClientStalledError",
    "ConnectRefused",
    "ConnectTimedOut",
    "Connection",
    "Event",
    "InvalidFaultError",
    "Limits",
    "RecordMode",
    "ReplayError",
    "ServerClose",
    "ServerData",
    "ServerReset",
    "UnplayedError",
    "UnrecordedConnectionError",
    "__version__",
    "at",
    "faults",
    "filters",
    "format_transcript",
    "framing",
    "load",
    "matchers",
    "use_cassette",
]
