"""Matchers for ``use_cassette(match=...)``: any ``(recorded, actual) -> bool`` will do."""

from ._core.matching import Matcher as Matcher
from ._core.matching import exact as exact
from ._core.matching import ignore_ranges as ignore_ranges
from ._core.matching import ignore_regex as ignore_regex

__all__ = ["Matcher", "exact", "ignore_ranges", "ignore_regex"]
