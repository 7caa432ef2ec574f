"""DDL of every table beside the event store, created once by `ugc migrate`."""

from __future__ import annotations

from ugc.database import Database

# Kinds of public ids drawn from a database sequence.
ID_KINDS = ("user", "creator_profile", "category", "skill")

TABLES = (
    """CREATE TABLE IF NOT EXISTS projection_tracking (
        projection TEXT NOT NULL,
        application TEXT NOT NULL,
        position BIGINT NOT NULL DEFAULT 0,
        read_model {bool} NOT NULL,
        PRIMARY KEY (projection, application))""",
    """CREATE TABLE IF NOT EXISTS id_sequences (
        kind TEXT PRIMARY KEY,
        value BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS auth_failures (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        at {timestamp} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS auth_failures_key ON auth_failures (scope, key, at)",
    """CREATE TABLE IF NOT EXISTS users (
        id BIGINT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        username TEXT NOT NULL,
        email TEXT NOT NULL,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        phone TEXT NOT NULL DEFAULT '',
        bio TEXT NOT NULL DEFAULT '',
        avatar TEXT,
        is_verified {bool} NOT NULL,
        roles {json} NOT NULL,
        date_joined {timestamp} NOT NULL,
        creator_profile_id BIGINT)""",
    """CREATE TABLE IF NOT EXISTS creator_profiles (
        id BIGINT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        user_id BIGINT NOT NULL UNIQUE,
        specialization TEXT NOT NULL,
        experience TEXT NOT NULL,
        portfolio_link TEXT NOT NULL,
        social_links {json} NOT NULL,
        created_at {timestamp} NOT NULL,
        updated_at {timestamp} NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS categories (
        id BIGINT PRIMARY KEY,
        name TEXT NOT NULL,
        slug TEXT NOT NULL UNIQUE)""",
    """CREATE TABLE IF NOT EXISTS skills (
        id BIGINT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        search_text TEXT NOT NULL)""",
)


def create_tables(db: Database) -> None:
    with db.transaction(write=True) as cur:
        for statement in TABLES:
            cur.execute(statement.format(**db.types))
        for kind in ID_KINDS:
            db.create_sequence(cur, kind)
