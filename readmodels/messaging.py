"""Conversations and their messages (kept by `projections/messaging.py`).

A conversation row carries both participants as `a` and `b`, each with a read marker (a
position in the messaging log) and an unread count kept up to date by the projection, so the
list of a user's conversations is one indexed query whatever the conversations hold. `activity`
is the log position of its latest event: "most recently active" in store order, free of clocks.

The lists' totals are kept by the projection, in the transaction that writes the rows they count:
each user's conversations (`conversation_counts`) and each conversation's messages
(`message_counts`). A page reads one row, where a COUNT read every message of a long conversation
(30,000: 831 buffers, a sequential scan) and every conversation of a busy user (5,000: 991).
"""

from __future__ import annotations

from readmodels.pages import REPLAY_CHUNK, PageQuery, PageRequest
from ugc.platform.database import Database
from ugc.platform.dialect import Row

DDL = (
    """CREATE TABLE IF NOT EXISTS conversations (
        id BIGINT PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        user_a BIGINT NOT NULL,
        username_a TEXT NOT NULL,
        user_b BIGINT NOT NULL,
        username_b TEXT NOT NULL,
        last_message_id BIGINT,
        last_message_sender_id BIGINT,
        last_message_text TEXT,
        last_message_at {timestamp},
        read_a BIGINT NOT NULL DEFAULT 0,
        read_b BIGINT NOT NULL DEFAULT 0,
        unread_a BIGINT NOT NULL DEFAULT 0,
        unread_b BIGINT NOT NULL DEFAULT 0,
        activity BIGINT NOT NULL,
        created_at {timestamp} NOT NULL,
        updated_at {timestamp} NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS conversations_user_a ON conversations (user_a, activity DESC)",
    "CREATE INDEX IF NOT EXISTS conversations_user_b ON conversations (user_b, activity DESC)",
    """CREATE TABLE IF NOT EXISTS messages (
        id BIGINT PRIMARY KEY,
        conversation_id BIGINT NOT NULL,
        position BIGINT NOT NULL,
        sender_id BIGINT NOT NULL,
        sender_username TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at {timestamp} NOT NULL)""",
    # A conversation's messages in store order: its pages, a socket's replay, unread counts.
    "CREATE INDEX IF NOT EXISTS messages_unread ON messages (conversation_id, position)",
    """CREATE TABLE IF NOT EXISTS conversation_counts (
        user_id BIGINT PRIMARY KEY,
        n BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS message_counts (
        conversation_id BIGINT PRIMARY KEY,
        n BIGINT NOT NULL)""",
    # Filled once, where a database from before these tables has rows but no counts: every row stored
    # since is counted with it, so a table of counts is never empty while what it counts is not.
    """INSERT INTO conversation_counts (user_id, n)
        SELECT user_id, COUNT(*) FROM (SELECT user_a AS user_id FROM conversations UNION ALL
            SELECT user_b FROM conversations) AS parties
        WHERE NOT EXISTS (SELECT 1 FROM conversation_counts) GROUP BY user_id""",
    """INSERT INTO message_counts (conversation_id, n)
        SELECT conversation_id, COUNT(*) FROM messages
        WHERE NOT EXISTS (SELECT 1 FROM message_counts) GROUP BY conversation_id""",
)

_CONVERSATION = (
    "SELECT c.id, c.user_a, c.username_a, ua.avatar AS avatar_a, c.user_b, c.username_b, ub.avatar AS avatar_b, "
    "c.last_message_id, c.last_message_sender_id, c.last_message_text, c.last_message_at, "
    "c.unread_a, c.unread_b, c.activity, c.created_at, c.updated_at "
    "FROM conversations c LEFT JOIN users ua ON ua.id = c.user_a LEFT JOIN users ub ON ub.id = c.user_b"
)
_MESSAGE = (
    "SELECT m.id, m.conversation_id, m.position AS seq, m.sender_id, m.sender_username, u.avatar AS sender_avatar, "
    "m.text, m.created_at FROM messages m LEFT JOIN users u ON u.id = m.sender_id"
)


def get_conversation(db: Database, conversation_id: int) -> Row | None:
    with db.read() as cur:
        return cur.execute(f"{_CONVERSATION} WHERE c.id = %s", (conversation_id,)).fetchone()


def list_conversations(user_id: int, page: PageRequest) -> PageQuery:
    """The user's conversations, the most recently active first."""
    # One indexed branch per side, each cut to the rows the page can need (the inner LIMIT stops its
    # index walk, where the union was sorted whole); nobody converses with themselves, so the
    # branches never overlap. Each branch is a subquery: SQLite refuses ORDER BY and LIMIT on a bare
    # member of a UNION.
    branches = " UNION ALL ".join(
        f"SELECT * FROM ({_CONVERSATION} WHERE c.{side} = %s ORDER BY c.activity DESC LIMIT %s) AS {side}"
        for side in ("user_a", "user_b")
    )
    wanted = page.offset + page.size
    return PageQuery(
        page,
        ("SELECT n FROM conversation_counts WHERE user_id = %s", (user_id,)),
        (f"SELECT * FROM ({branches}) AS mine ORDER BY activity DESC", (user_id, wanted, user_id, wanted)),
    )


def get_message(db: Database, message_id: int) -> Row | None:
    with db.read() as cur:
        return cur.execute(f"{_MESSAGE} WHERE m.id = %s", (message_id,)).fetchone()


def position_of(db: Database, conversation_id: int, message_id: int) -> int | None:
    """Where message `message_id` of the conversation sits in store order (None: not of it, or unknown)."""
    with db.read() as cur:
        row = cur.execute(
            "SELECT position FROM messages WHERE id = %s AND conversation_id = %s", (message_id, conversation_id)
        ).fetchone()
    return int(row["position"]) if row else None


def list_messages(conversation_id: int, page: PageRequest) -> PageQuery:
    """A conversation's messages, newest first (page 1 holds the latest).

    Newest in store order (log position), the order its socket pushed them in: of two sent at once,
    the number drawn first may be stored second.
    """
    return PageQuery(
        page,
        ("SELECT n FROM message_counts WHERE conversation_id = %s", (conversation_id,)),
        (f"{_MESSAGE} WHERE m.conversation_id = %s ORDER BY m.position DESC", (conversation_id,)),
    )


def stored_after(db: Database, conversation_id: int, position: int, limit: int = REPLAY_CHUNK) -> list[Row]:
    """The conversation's messages stored after log position `position` (their `seq`), oldest first,
    at most `limit` of them: what its socket sends again when pushes may have been lost."""
    with db.read() as cur:
        return cur.execute(
            f"{_MESSAGE} WHERE m.conversation_id = %s AND m.position > %s ORDER BY m.position LIMIT %s",
            (conversation_id, position, limit),
        ).fetchall()
