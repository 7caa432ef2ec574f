"""This deployment's name: a random id its database is given once, so that its tokens are its own.

A token names its user by number, and numbers repeat from one database to the next (1, 2, 3 ...).
Two deployments given the same UGC_SECRET_KEY — a staging copy of production's environment, two
development servers sharing one `.env` — each took the other's tokens for their own user of that
number: another person's account, an auditor's maybe. Every token now carries this id as its
audience (`aud`, api/tokens.py), and a deployment refuses tokens addressed to another.

The id lives in the database, not the environment: every process of one deployment shares it
whatever its settings, and a new database (a new deployment) gets a new one. A copy of a database
(a restored backup) keeps it, with the users it names.
"""

from __future__ import annotations

import uuid

from ugc.platform.database import Database
from ugc.platform.dialect import Cursor

DDL = ("CREATE TABLE IF NOT EXISTS deployment (id TEXT PRIMARY KEY)",)


def name_once(cur: Cursor) -> None:
    """Give the database its id unless it has one; run by `ugc migrate`, under its lock."""
    if cur.execute("SELECT id FROM deployment").fetchone() is None:
        cur.execute("INSERT INTO deployment (id) VALUES (%s)", (uuid.uuid4().hex,))


def deployment_id(db: Database) -> str:
    """The id `ugc migrate` gave this database."""
    with db.read() as cur:
        row = cur.execute("SELECT id FROM deployment").fetchone()
    if row is None:
        raise RuntimeError("the database has no deployment id: run `ugc migrate`")
    return str(row["id"])
