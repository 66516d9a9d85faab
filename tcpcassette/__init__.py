"""tcpcassette: record and replay any TCP protocol in tests.

The first run of a test records the real client-server byte exchange through
a proxy on loopback into a msgpack cassette; later runs replay it from a mock
server, with the same bytes, chunks, closes and resets, and no network.

Every public name loads its module on first use, so that importing the
package, or pytest loading its plugin, costs next to nothing; the names that
need the I/O layer (``use_cassette``, ``Cassette``, ``load``) start no
machinery until they are used.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from ._version import __version__ as __version__

if _typing.TYPE_CHECKING:
    from . import faults as faults
    from . import filters as filters
    from . import framing as framing
    from . import matchers as matchers
    from . import protocols as protocols
    from ._cassette import Cassette as Cassette
    from ._cassette import load as load
    from ._core.codec import FORMAT_VERSION as FORMAT_VERSION
    from ._core.connection import Connection as Connection
    from ._core.errors import CassetteError as CassetteError
    from ._core.errors import CassetteFormatError as CassetteFormatError
    from ._core.errors import CassetteInUseError as CassetteInUseError
    from ._core.errors import CassetteNotFoundError as CassetteNotFoundError
    from ._core.errors import CassettePathError as CassettePathError
    from ._core.errors import ClientHungError as ClientHungError
    from ._core.errors import ClientMismatchError as ClientMismatchError
    from ._core.errors import ClientStalledError as ClientStalledError
    from ._core.errors import InvalidFaultError as InvalidFaultError
    from ._core.errors import InvalidOptionError as InvalidOptionError
    from ._core.errors import NetworkBlockedError as NetworkBlockedError
    from ._core.errors import ReplayError as ReplayError
    from ._core.errors import UnplayedError as UnplayedError
    from ._core.errors import UnrecordedConnectionError as UnrecordedConnectionError
    from ._core.events import ClientClose as ClientClose
    from ._core.events import ClientData as ClientData
    from ._core.events import ClientReset as ClientReset
    from ._core.events import ConnectRefused as ConnectRefused
    from ._core.events import ConnectTimedOut as ConnectTimedOut
    from ._core.events import Event as Event
    from ._core.events import ServerClose as ServerClose
    from ._core.events import ServerData as ServerData
    from ._core.events import ServerReset as ServerReset
    from ._core.events import TlsStart as TlsStart
    from ._core.faults import at as at
    from ._core.freshness import CassetteExpiredError as CassetteExpiredError
    from ._core.freshness import CassetteExpiredWarning as CassetteExpiredWarning
    from ._core.limits import DEFAULT_MAX_CASSETTE_BYTES as DEFAULT_MAX_CASSETTE_BYTES
    from ._core.options import Limits as Limits
    from ._core.options import MatchingMode as MatchingMode
    from ._core.transcript import format_transcript as format_transcript
    from ._settings import RecordMode as RecordMode
    from ._use_cassette import NothingRecordedWarning as NothingRecordedWarning
    from ._use_cassette import use_cassette as use_cassette

#: Each public name, and the module it comes from (loaded on first use).
_LAZY = {
    "at": "._core.faults",
    "Cassette": "._cassette",
    "CassetteError": "._core.errors",
    "CassetteExpiredError": "._core.freshness",
    "CassetteExpiredWarning": "._core.freshness",
    "CassetteFormatError": "._core.errors",
    "CassetteInUseError": "._core.errors",
    "CassetteNotFoundError": "._core.errors",
    "CassettePathError": "._core.errors",
    "ClientClose": "._core.events",
    "ClientData": "._core.events",
    "ClientHungError": "._core.errors",
    "ClientMismatchError": "._core.errors",
    "ClientReset": "._core.events",
    "ClientStalledError": "._core.errors",
    "Connection": "._core.connection",
    "ConnectRefused": "._core.events",
    "ConnectTimedOut": "._core.events",
    "TlsStart": "._core.events",
    "DEFAULT_MAX_CASSETTE_BYTES": "._core.limits",
    "Event": "._core.events",
    "faults": ".faults",
    "filters": ".filters",
    "format_transcript": "._core.transcript",
    "FORMAT_VERSION": "._core.codec",
    "framing": ".framing",
    "InvalidFaultError": "._core.errors",
    "InvalidOptionError": "._core.errors",
    "NetworkBlockedError": "._core.errors",
    "NothingRecordedWarning": "._use_cassette",
    "Limits": "._core.options",
    "load": "._cassette",
    "matchers": ".matchers",
    "protocols": ".protocols",
    "MatchingMode": "._core.options",
    "RecordMode": "._settings",
    "ReplayError": "._core.errors",
    "ServerClose": "._core.events",
    "ServerData": "._core.events",
    "ServerReset": "._core.events",
    "UnplayedError": "._core.errors",
    "UnrecordedConnectionError": "._core.errors",
    "use_cassette": "._use_cassette",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tcpcassette' has no attribute {name!r}")
    loaded = _importlib.import_module(module, __name__)
    # A public submodule is its own value; any other name is read from its module.
    value = loaded if module == f".{name}" else getattr(loaded, name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "DEFAULT_MAX_CASSETTE_BYTES",
    "FORMAT_VERSION",
    "Cassette",
    "CassetteError",
    "CassetteExpiredError",
    "CassetteExpiredWarning",
    "CassetteFormatError",
    "CassetteInUseError",
    "CassetteNotFoundError",
    "CassettePathError",
    "ClientClose",
    "ClientData",
    "ClientHungError",
    "ClientMismatchError",
    "ClientReset",
    "ClientStalledError",
    "ConnectRefused",
    "ConnectTimedOut",
    "Connection",
    "Event",
    "InvalidFaultError",
    "InvalidOptionError",
    "Limits",
    "MatchingMode",
    "NetworkBlockedError",
    "NothingRecordedWarning",
    "RecordMode",
    "ReplayError",
    "ServerClose",
    "ServerData",
    "ServerReset",
    "TlsStart",
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
    "protocols",
    "use_cassette",
]
