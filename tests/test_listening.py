"""The process's one LISTEN connection (ugc/platform/listening.py), on a real PostgreSQL: every channel
on one session, each NOTIFY to its channel's subscribers only, and a lost session LISTENed again with
every subscriber told it may have missed some."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.backends import POSTGRES_URL, fresh_database, postgres_available
from ugc.platform.database import Database
from ugc.platform.listening import Subscription

pytestmark = pytest.mark.skipif(not postgres_available(), reason="LISTEN/NOTIFY is PostgreSQL's")

WAIT = 10.0


class Heard:
    """What a subscriber was told, in order: ("listening",), ("lost",) or ("notified", payload)."""

    def __init__(self, channel: str) -> None:
        self.told: queue.Queue[tuple[str, ...]] = queue.Queue()
        self.subscription = Subscription(
            channel,
            lambda payload: self.told.put(("notified", payload)),
            lambda: self.told.put(("listening",)),
            lambda: self.told.put(("lost",)),
        )

    def next(self) -> tuple[str, ...]:
        return self.told.get(timeout=WAIT)

    def nothing_more(self) -> bool:
        time.sleep(0.2)
        return self.told.empty()


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgres", tmp_path) as fresh:
        yield fresh


def listening_sessions(url: str) -> list[int]:
    """The pids of the sessions on `url`'s database that listen on any channel (their last statement
    was a LISTEN or UNLISTEN)."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query LIKE %s",
            (urlsplit(url).path.lstrip("/"), "%LISTEN %"),
        ).fetchall()
    return [row[0] for row in rows]


def notify(url: str, channel: str, payload: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))


def test_every_channel_is_heard_on_one_connection_by_its_own_subscribers(url: str) -> None:
    db = Database(url)
    try:
        first, second, again = Heard("ugc_first"), Heard("ugc_second"), Heard("ugc_first")
        for heard in (first, second, again):
            db.listener.subscribe(heard.subscription)
            assert heard.next() == ("listening",)
        assert len(listening_sessions(url)) == 1

        notify(url, "ugc_first", "1")
        notify(url, "ugc_second", "2")
        assert first.next() == again.next() == ("notified", "1")
        assert second.next() == ("notified", "2")
        assert first.nothing_more() and second.nothing_more() and again.nothing_more()

        db.listener.cancel(first.subscription)
        notify(url, "ugc_first", "3")
        assert again.next() == ("notified", "3")
        assert first.nothing_more()
        # Nobody subscribes any more: the connection goes.
        db.listener.cancel(again.subscription)
        db.listener.cancel(second.subscription)
        deadline = time.monotonic() + WAIT
        while listening_sessions(url):
            assert time.monotonic() < deadline, "the LISTEN connection outlived its subscribers"
            time.sleep(0.05)
    finally:
        db.close()


def test_a_lost_connection_listens_again_on_every_channel_and_tells_every_subscriber(url: str) -> None:
    db = Database(url)
    try:
        first, second = Heard("ugc_first"), Heard("ugc_second")
        for heard in (first, second):
            db.listener.subscribe(heard.subscription)
            assert heard.next() == ("listening",)
        [session] = listening_sessions(url)

        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (session,))

        for heard in (first, second):
            assert heard.next() == ("lost",)
            assert heard.next() == ("listening",)  # anything sent meanwhile went unheard
        assert listening_sessions(url) != [session]
        notify(url, "ugc_first", "after")
        notify(url, "ugc_second", "after")
        assert first.next() == second.next() == ("notified", "after")
    finally:
        db.close()
