"""Lists sorted by a name come in one order on SQLite and on PostgreSQL, whatever the locale of the
PostgreSQL database: code points, as SQLite compares text. docker-compose's postgres image makes its
databases en_US.utf8, which put "iMovie" among the I's and "ёлочные" beside "Ёмкие"; SQLite put them
after "Z" and after "я" (the lists hunt, on an ICU en-US database)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from readmodels.catalog import list_categories, list_skills
from readmodels.pages import PageRequest, read_page
from tests.backends import POSTGRES_URL, _migrate, postgres_available, postgres_url
from ugc.platform.database import Database

NAMES = [
    "Звуковой дизайн",
    "After Effects",
    "after effects expressions",
    "iMovie",
    "Ёмкие тексты",
    "ёлочные игрушки",
    "3D-моделирование",
    "Premiere Pro",
    "Съёмка дронов",
    "Illustrator",
]


@pytest.fixture(params=["sqlite", "postgres-en-us"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ugc.sqlite3'}"
        _migrate(url)
        db = Database(url)
        yield db
        db.close()
        return
    if not postgres_available():
        pytest.skip("UGC_TEST_DATABASE_URL is not set to a PostgreSQL URL")
    name = f"ugc_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(
            f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
            "LOCALE 'C.UTF-8'"
        )
    try:
        _migrate(postgres_url(name))
        db = Database(postgres_url(name))
        yield db
        db.close()
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_skills_and_categories_are_listed_in_code_point_order(database: Database) -> None:
    with database.transaction(write=True) as cur:
        for number, name in enumerate(NAMES, start=1):
            cur.execute(
                "INSERT INTO skills (id, name, description, search_text) VALUES (%s, %s, '', %s)",
                (number, name, name.casefold()),
            )
            cur.execute("INSERT INTO categories (id, name, slug) VALUES (%s, %s, %s)", (number, name, f"c{number}"))
    everything = PageRequest(1, 100)
    for query in (list_skills(everything), list_categories(everything)):
        assert [row["name"] for row in read_page(database, query).rows] == sorted(NAMES)
