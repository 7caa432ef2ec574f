"""Seed N orders through the application, spread over statuses, buyers and services.

Nothing here writes a read table. Each order is an `Order` aggregate placed with the domain's own
`Order.place` on the terms `commands/orders.py` fixes at placing (the service's title, creator and
base price, read from the `Service` and `User` aggregates of the event store, never from read
tables), then walked along the lifecycle by the aggregate's own methods (accept, deliver, approve,
review, cancel) so that every status appears. `--batch` orders go into one `save()` (one
transaction, one table lock) of the orders event store; public ids (orders, deliveries, reviews)
come from the commands' own sequences, a block at a time. The projections then apply the log: the
running server's runner does it live, or `catch_up()` here when no server runs (`--catch-up`).

Who gets the orders: one "heavy" buyer a fixed share, one "light" buyer a fixed small number, the
rest spread evenly over the other buyers; services uniformly. Deterministic with `--seed`.

Usage:  .venv/bin/python bench/seed_orders.py DATABASE_URL --buyers 5,6,7 --services 3,4 [--count 100000]
            [--heavy 5 --heavy-share 0.2] [--light 7 --light-count 10] [--catch-up]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from common import DATA_KEY

from ugc.accounts import User
from ugc.clock import SystemClock
from ugc.ids import aggregate_id
from ugc.orders import Order
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.services import Service

# The last step each seeded order reaches, and how often (a marketplace with a backlog of open work).
MIX: tuple[tuple[str, float], ...] = (
    ("pending", 0.30),
    ("in_progress", 0.20),
    ("delivered", 0.10),
    ("completed", 0.25),
    ("reviewed", 0.10),  # completed, then reviewed
    ("cancelled", 0.05),
)
REQUIREMENTS = (
    "Нужен ролик 30 секунд, вертикальный формат, живая подача.",
    "Распаковка и первые впечатления, без музыки, субтитры на русском.",
    "Обзор для карточки товара: 5 фото и короткое видео.",
)


@dataclass(frozen=True)
class Plan:
    """Who orders how much: `heavy` gets `heavy_share` of all, `light` exactly `light_count`, others the rest."""

    buyers: Sequence[int]
    services: Sequence[int]
    heavy: int | None = None
    heavy_share: float = 0.0
    light: int | None = None
    light_count: int = 0


@dataclass
class Seeded:
    orders: int = 0
    events: int = 0
    seconds: float = 0.0
    by_status: Counter[str] = field(default_factory=Counter)
    by_buyer: Counter[int] = field(default_factory=Counter)


def buyer_sequence(plan: Plan, count: int, rng: random.Random) -> list[int]:
    """The buyer of each of `count` orders, in placing order."""
    heavy = round(count * plan.heavy_share) if plan.heavy is not None else 0
    light = plan.light_count if plan.light is not None else 0
    others = [b for b in plan.buyers if b not in (plan.heavy, plan.light)]
    if count < heavy + light or (count > heavy + light and not others):
        raise ValueError("the plan does not fit the count")
    spread = [others[i % len(others)] for i in range(count - heavy - light)]
    chosen = [plan.heavy] * heavy + [plan.light] * light + spread
    rng.shuffle(chosen)
    return [int(b) for b in chosen if b is not None]


def place(number: int, buyer: User, service: Service, rng: random.Random, now: Callable[[], datetime]) -> Order:
    """An order on the service's current terms, as OrderCommands.place fixes them (no options chosen)."""
    at = now()
    price = Decimal(service.base_price)
    return Order.place(
        number=number,
        buyer=buyer.number,
        buyer_username=buyer.username,
        creator=service.creator_user_number,
        creator_profile=service.creator_profile_number,
        creator_username=service.creator_username,
        service=service.number,
        service_title=service.title,
        price=price,
        options=[],
        total_price=price,
        requirements=rng.choice(REQUIREMENTS),
        delivery_date=(at.date() + timedelta(days=rng.randint(3, 30))).isoformat(),
        allows_modifications=bool(service.allows_modifications),
        at=at,
    )


def walk(order: Order, status: str, deliveries: Iterator[int], reviews: Iterator[int],
         rng: random.Random, now: Callable[[], datetime]) -> None:
    """Move a placed order to `status` with the aggregate's own commands (each checks its rule)."""
    if status == "cancelled":
        order.cancel(rng.choice((order.buyer, order.creator)), "Планы изменились.", now())
        return
    if status == "pending":
        return
    order.accept(order.creator, now())
    if status == "in_progress":
        return
    order.deliver(order.creator, next(deliveries), "Готово, ссылка на файлы в сообщении.", [], now())
    if status == "delivered":
        return
    order.approve(order.buyer, now())
    if status == "reviewed":
        order.review(order.buyer, next(reviews), rng.randint(3, 5), "Спасибо, всё отлично!", now())


def seed(stores: EventStores, db: Database, plan: Plan, *, count: int, batch: int = 1000, seed_value: int = 1,
         progress: Callable[[Seeded], None] | None = None) -> Seeded:
    """Append `count` orders to the orders event store, `batch` per transaction."""
    started = time.monotonic()
    rng = random.Random(seed_value)
    clock = SystemClock()
    users: dict[int, User] = {}
    for number in set(plan.buyers) | {b for b in (plan.heavy, plan.light) if b is not None}:
        user: User = stores.accounts.repository.get(aggregate_id("user", number))
        if not user.is_verified:
            raise ValueError(f"user {number} is not verified: the commands would refuse their orders")
        users[number] = user
    services: list[Service] = [stores.catalog.repository.get(aggregate_id("service", n)) for n in plan.services]
    if any(not s.is_active for s in services):
        raise ValueError("inactive services cannot be ordered")
    buyers = buyer_sequence(plan, count, rng)
    statuses = rng.choices([s for s, _ in MIX], weights=[w for _, w in MIX], k=count)
    done = Seeded()
    while done.orders < count:
        size = min(batch, count - done.orders)
        part_statuses = statuses[done.orders:done.orders + size]
        order_numbers = db.next_numbers("order", size)
        delivered = sum(s in ("delivered", "completed", "reviewed") for s in part_statuses)
        deliveries = iter(db.next_numbers("delivery", delivered))
        reviews = iter(db.next_numbers("review", part_statuses.count("reviewed")))
        orders = []
        for i, (number, status) in enumerate(zip(order_numbers, part_statuses, strict=True)):
            buyer = users[buyers[done.orders + i]]
            service = services[rng.randrange(len(services))]
            order = place(number, buyer, service, rng, clock.now)
            walk(order, status, deliveries, reviews, rng, clock.now)
            orders.append(order)
            done.by_status["completed" if status == "reviewed" else status] += 1
            done.by_buyer[buyer.number] += 1
        recordings = stores.orders.save(*orders)
        done.orders += size
        done.events += len(recordings)
        done.seconds = time.monotonic() - started
        if progress is not None:
            progress(done)
    return done


def parse_ids(text: str) -> list[int]:
    """`1,2,5-9` -> [1, 2, 5, 6, 7, 8, 9]."""
    found: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        found += range(int(low), int(high or low) + 1)
    return found


def main() -> None:
    from projections.registry import all_projections
    from projections.runner import ProjectionRunner
    from readmodels.waiting import Progress
    from ugc.config import Settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("database_url")
    parser.add_argument("--buyers", required=True, help="verified users' ids, e.g. 5,6,9-40")
    parser.add_argument("--services", required=True, help="active services' ids")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="orders per save() (one transaction)")
    parser.add_argument("--heavy", type=int)
    parser.add_argument("--heavy-share", type=float, default=0.2)
    parser.add_argument("--light", type=int)
    parser.add_argument("--light-count", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--catch-up", action="store_true", help="apply the log to the read models here (no server)")
    args = parser.parse_args()
    plan = Plan(parse_ids(args.buyers), parse_ids(args.services), args.heavy, args.heavy_share, args.light,
                args.light_count)
    db = Database(args.database_url)
    stores = EventStores(args.database_url, data_key=DATA_KEY)
    try:
        seeded = seed(stores, db, plan, count=args.count, batch=args.batch, seed_value=args.seed,
                      progress=lambda s: print(f"  {s.orders} orders, {s.events} events ({s.seconds:.0f} s)",
                                               file=sys.stderr))
        if args.catch_up:
            settings = Settings.from_env(
                {"UGC_DATABASE_URL": args.database_url, "UGC_SECRET_KEY": "x" * 40, "UGC_DATA_KEY": DATA_KEY}
            )
            runner = ProjectionRunner(db, stores, [p for p in all_projections(settings) if p.read_model], Progress())
            runner.register()
            runner.catch_up()
    finally:
        stores.close()
        db.close()
    print(f"seeded {seeded.orders} orders ({seeded.events} events) in {seeded.seconds:.0f} s: "
          f"{dict(seeded.by_status)}")


if __name__ == "__main__":
    main()
