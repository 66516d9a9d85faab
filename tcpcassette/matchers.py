"""Matchers for ``use_cassette(match=...)``: any ``(recorded, actual) -> bool`` will do."""

from ._matching import Matcher as Matcher
from ._matching import exact as exact
from ._matching import ignore_ranges as ignore_ranges
from ._matching import ignore_regex as ignore_regex

__all__ = ["Matcher", "exact", "ignore_ranges", "ignore_regex"]
