"""Waits that double after each failure in a row, up to a ceiling."""

from __future__ import annotations

# Past 2**1023 a float overflows: a wait computed as `first * 2**failures` raised OverflowError after
# ~1,000 failures in a row (a mail server down for ~17 hours, UGC_PROJECTION_MAX_ATTEMPTS set above
# that, two versions serving side by side for hours), in the very loop that was to back off. Any
# ceiling is reached long before this many doublings.
_MOST_DOUBLINGS = 64


def doubling(first: float, longest: float, failures: int) -> float:
    """`first` doubled `failures` times, but never more than `longest`."""
    return min(longest, first * 2.0 ** min(failures, _MOST_DOUBLINGS))
