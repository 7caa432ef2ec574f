"""`ugc seed [--demo]`: the reference categories and skills, and a demo world to try the API on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ugc.cli.common import acting_operator, check_data_key, migrate_database
from ugc.config import Settings

if TYPE_CHECKING:
    from commands.demo import DemoCommands
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores


def add_parsers(commands: Any) -> None:
    seed = commands.add_parser("seed", help="load the reference categories and skills (idempotent)")
    seed.add_argument(
        "--demo",
        action="store_true",
        help="also add demo users, creators, services, orders in every status, reviews and chat (idempotent)",
    )
    seed.set_defaults(run=lambda settings, args: _seed(settings, demo=args.demo))


def _seed(settings: Settings, *, demo: bool) -> int:
    from commands.reference import load_reference_data
    from ugc.clock import SystemClock
    from ugc.platform.database import Database
    from ugc.platform.store import EventStores

    migrate_database(settings)
    check_data_key(settings)
    db = Database(settings.database_url)
    stores = EventStores(settings.database_url, data_key=settings.data_key)
    try:
        positions = load_reference_data(stores, db, SystemClock(), acting_operator())
        print("reference data loaded" if positions else "reference data already present")
        if demo:
            from commands.demo import DEMO_PASSWORD, USERNAMES, seed_demo

            if seed_demo(_demo_commands(settings, stores, db)):
                print(f"demo data added: users {', '.join(USERNAMES)} (password {DEMO_PASSWORD!r})")
            else:
                print("demo data already present")
    finally:
        stores.close()
        db.close()
    return 0


def _demo_commands(settings: Settings, stores: EventStores, db: Database) -> DemoCommands:
    from commands.accounts import AccountCommands
    from commands.creators import CreatorCommands
    from commands.demo import DemoCommands
    from commands.messaging import MessagingCommands
    from commands.services import ServiceCommands
    from commands.standing import Standings
    from ugc.clock import SystemClock
    from ugc.wiring import order_commands, password_hasher

    clock = SystemClock()
    return DemoCommands(
        stores=stores,
        accounts=AccountCommands(stores, db, clock, hasher=password_hasher(settings)),
        creators=CreatorCommands(stores, db, clock),
        services=ServiceCommands(stores, db, clock),
        orders=order_commands(settings, stores, db, clock),
        messaging=MessagingCommands(stores, db, clock, Standings(stores, clock)),
        db=db,
        clock=clock,
        operator=acting_operator(),
    )
