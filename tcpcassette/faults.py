"""Faults to inject into a cassette: resets, closes, silences, delays and more.

Place them in a saved cassette with :meth:`tcpcassette.Cassette.inject`, or
for one use with ``use_cassette(..., faults=[at(Reset(), connection=0, after=2)])``.
"""

from ._faults import Close as Close
from ._faults import ConnectTimeout as ConnectTimeout
from ._faults import Delay as Delay
from ._faults import Fault as Fault
from ._faults import Refuse as Refuse
from ._faults import Reset as Reset
from ._faults import Slice as Slice
from ._faults import Timeout as Timeout
from ._faults import Truncate as Truncate
from ._use_cassette import Placement as Placement
from ._use_cassette import at as at

__all__ = [
    "Close",
    "ConnectTimeout",
    "Delay",
    "Fault",
    "Placement",
    "Refuse",
    "Reset",
    "Slice",
    "Timeout",
    "Truncate",
    "at",
]
