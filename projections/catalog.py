"""Keeps `categories` and `skills` from the catalog log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from projections.base import Handler, Projection
from readmodels.catalog import search_text
from ugc.catalog import Category, Skill
from ugc.platform.dialect import Cursor
from ugc.platform.store import Catalog


class CatalogProjection(Projection):
    name = "catalog"
    # The skills' search text folded (readmodels/folding.py): 2, "ё" read as "е"; 3, runs of whitespace as one space.
    version = 3
    applications: ClassVar[tuple[str, ...]] = (Catalog.name,)
    tables: ClassVar[tuple[str, ...]] = ("categories", "skills")

    def handlers(self) -> Mapping[type, Handler]:
        return {
            Category.Created: self.category_created,
            Skill.Created: self.skill_created,
            Skill.Updated: self.skill_updated,
        }

    def category_created(self, cur: Cursor, e: Category.Created) -> None:
        cur.execute("INSERT INTO categories (id, name, slug) VALUES (%s, %s, %s)", (e.number, e.name, e.slug))

    def skill_created(self, cur: Cursor, e: Skill.Created) -> None:
        cur.execute(
            "INSERT INTO skills (id, name, description, search_text) VALUES (%s, %s, %s, %s)",
            (e.number, e.name, e.description, search_text(e.name, e.description)),
        )

    def skill_updated(self, cur: Cursor, e: Skill.Updated) -> None:
        cur.execute(
            "UPDATE skills SET name = %s, description = %s, search_text = %s WHERE id = %s",
            (e.name, e.description, search_text(e.name, e.description), e.number),
        )
