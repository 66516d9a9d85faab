"""Bounds on untrusted input, named so that callers can raise them on purpose."""

from __future__ import annotations

#: Largest cassette file read by default, checked before reading it.
DEFAULT_MAX_CASSETTE_BYTES = 4 * 1024**3
