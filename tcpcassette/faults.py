"""Faults to inject into a cassette: resets, closes, silences, delays, corruption and more.

Place them in a saved cassette with :meth:`tcpcassette.Cassette.inject`, or
for one use with ``use_cassette(..., faults=[at(Reset(), connection=0, after=2)])``.
In a test the fault sweep runs (``pytest --tcpcassette-sweep``), the cassette's
``sweep_fault`` is a :class:`SweepFault` naming the fault and where it is.
"""

from ._core.faults import RANDOM_SLICE_MAX as RANDOM_SLICE_MAX
from ._core.faults import Bandwidth as Bandwidth
from ._core.faults import Close as Close
from ._core.faults import ConnectTimeout as ConnectTimeout
from ._core.faults import Corrupt as Corrupt
from ._core.faults import Delay as Delay
from ._core.faults import Fault as Fault
from ._core.faults import Placement as Placement
from ._core.faults import Refuse as Refuse
from ._core.faults import Reset as Reset
from ._core.faults import Slice as Slice
from ._core.faults import Timeout as Timeout
from ._core.faults import Truncate as Truncate
from ._core.faults import at as at
from ._core.sweep import SweepFault as SweepFault

__all__ = [
    "RANDOM_SLICE_MAX",
    "Bandwidth",
    "Close",
    "ConnectTimeout",
    "Corrupt",
    "Delay",
    "Fault",
    "Placement",
    "Refuse",
    "Reset",
    "Slice",
    "SweepFault",
    "Timeout",
    "Truncate",
    "at",
]
