"""Seed one user with N notifications: N chat messages sent to them, stored through the application.

Two users are registered through the commands (`<prefix>a` sends, `<prefix>b` receives; password
PASSWORD, as bench/seed_services.py's), their conversation is started through the commands, and the messages, each a
`Message` aggregate made by the conversation's own `send`, are saved `--batch` at a time (one
transaction each) with numbers from the commands' sequence. Nothing here writes a read table: the
running server's projections turn each message into a notification of `<prefix>b` (and only of
`<prefix>b`), so the receiver has exactly N notifications.

Usage:  .venv/bin/python bench/seed_notifications.py DATABASE_URL [--count 100000] [--prefix hn]
            [--batch 1000]
"""

from __future__ import annotations

import argparse
import time

from argon2 import PasswordHasher
from common import DATA_KEY

from commands.accounts import AccountCommands, Register
from commands.messaging import MessagingCommands
from commands.saving import save
from commands.standing import Standings
from ugc.clock import SystemClock
from ugc.messaging import Conversation, conversation_id
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.wiring import migrate

PASSWORD = "bench-password-1"


def seed(database_url: str, *, count: int, prefix: str, batch: int) -> None:
    db = Database(database_url)
    migrate(db)
    stores = EventStores(database_url, data_key=DATA_KEY)
    clock = SystemClock()
    try:
        accounts = AccountCommands(stores, db, clock, hasher=PasswordHasher(time_cost=1, memory_cost=8192))
        sender, receiver = (
            accounts.register(Register(f"{prefix}{who}", f"{prefix}{who}@example.com", PASSWORD, "Bench", who)).user_id
            for who in ("a", "b")
        )
        messaging = MessagingCommands(stores, db, clock, Standings(stores, clock))
        number = messaging.start_conversation(sender, receiver).conversation_id
        chat: Conversation = stores.messaging.repository.get(conversation_id(number))
        began = time.perf_counter()
        for start in range(0, count, batch):
            numbers = db.next_numbers("message", min(batch, count - start))
            messages = [chat.send(number=n, sender=sender, text=f"№{n}", at=clock.now()) for n in numbers]
            save(stores.messaging, *messages)
        print(f"{count} messages to {prefix}b (user {receiver}) stored in {time.perf_counter() - began:.1f} s")
    finally:
        stores.close()
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("database_url")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--prefix", default="hn")
    parser.add_argument("--batch", type=int, default=1000, help="messages per save() (one transaction)")
    args = parser.parse_args()
    seed(args.database_url, count=args.count, prefix=args.prefix, batch=args.batch)


if __name__ == "__main__":
    main()
