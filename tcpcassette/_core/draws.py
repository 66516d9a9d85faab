"""Seeded draws that come out the same on every run, Python version and platform.

Faults that need chance (which bytes ``Corrupt`` changes, the piece sizes of
``Slice(size="random")``) draw from :class:`Draws`, so a failure seen once is
seen again with the same seed, byte for byte.  ``random`` is not used: its
algorithms and seeding of non-integers may change between Python versions,
and ``hash()`` changes between processes.

The generator is splitmix64 (Steele, Lea and Flood, "Fast splittable
pseudorandom number generators", 2014): a 64-bit counter advanced by a fixed
odd constant, each value mixed by two multiply-xorshift rounds.  It is small,
has no bad seeds, and is defined entirely by 64-bit integer arithmetic.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


class Draws:
    """A stream of whole numbers drawn from ``seed``.

    The same seed gives the same numbers, in the same order, wherever it
    runs.  Two ``Draws`` of one seed are independent copies of one stream.

    Args:
        seed: a whole number >= 0 (only its low 64 bits count).

    Raises:
        ValueError: ``seed`` is not a whole number >= 0.
    """

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"a seed is a whole number >= 0, not {seed!r}")
        self._state = seed & _MASK

    def _next(self) -> int:
        """The next 64-bit value of splitmix64."""
        self._state = (self._state + _GOLDEN) & _MASK
        z = self._state
        z = ((z ^ (z >> 30)) * _MIX1) & _MASK
        z = ((z ^ (z >> 27)) * _MIX2) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """A whole number from 0 to ``n - 1``, each equally likely.

        Values of the 64-bit stream that would favour the small numbers (the
        last ``2**64 % n`` of them) are drawn again, so no number is likelier
        than another.

        Raises:
            ValueError: ``n`` is not a whole number from 1 to 2**64.
        """
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1 << 64:
            raise ValueError(f"below() takes a whole number from 1 to 2**64, not {n!r}")
        limit = (1 << 64) - (1 << 64) % n
        while True:
            value = self._next()
            if value < limit:
                return value % n
