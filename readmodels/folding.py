"""How text is folded for search, the same on both sides: the text a projection stores and the term
a reader asks for.

Casefolded in Python (SQLite's LOWER() knows only ASCII), "ё" read as "е": Russian is written with
either for the same word ("самолёт", "самолет"), and a search for one found nothing of the other.
Every run of whitespace (spaces, tabs, line breaks, no-break spaces) reads as one space: a term typed
with two spaces, or a phrase across a line break of a description, found nothing.
"""

from __future__ import annotations


def folded(text: str) -> str:
    return " ".join(text.casefold().replace("ё", "е").split())
