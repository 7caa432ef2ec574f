"""How text is folded for search, the same on both sides: the text a projection stores and the term
a reader asks for.

Casefolded in Python (SQLite's LOWER() knows only ASCII), and "ё" read as "е": Russian is written
with either for the same word ("самолёт", "самолет"), and a search for one found nothing of the other.
"""

from __future__ import annotations


def folded(text: str) -> str:
    return text.casefold().replace("ё", "е")
