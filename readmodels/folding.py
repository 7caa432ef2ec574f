"""How text is folded for search, the same on both sides: the text a projection stores and the term
a reader asks for.

Casefolded in Python (SQLite's LOWER() knows only ASCII), "ё" read as "е": Russian is written with
either for the same word ("самолёт", "самолет"), and a search for one found nothing of the other.
Every run of whitespace (spaces, tabs, line breaks, no-break spaces) reads as one space: a term typed
with two spaces, or a phrase across a line break of a description, found nothing.

A search term is a list of words, as Django REST framework's SearchFilter (whose wording the API
spec keeps) reads it: split at whitespace and commas, and a text matches when it holds every word,
each anywhere (`сервис обычный` finds "Обычный сервис"). No word holds a space, so a word found in
a stored text (its fields joined by a space) is found in one of its fields.
"""

from __future__ import annotations

# The most words a search term may have: each is one more condition of the query (and, on
# PostgreSQL, one more trigram index lookup); a longer term is refused rather than cut short, which
# would find texts without the words left out.
MAX_SEARCH_WORDS = 10


def folded(text: str) -> str:
    return " ".join(text.casefold().replace("ё", "е").split())


def search_words(term: str) -> tuple[str, ...]:
    """The distinct words of a search term, folded and sorted (their order matters to no match, and
    the same words typed in another order are then the same search); none for a blank term."""
    return tuple(sorted(set(folded(term.replace(",", " ")).split())))
