"""Seed N services through the application, then let the read models catch up.

Nothing here writes a read table: creators are registered and given profiles by the command
handlers, services are `Service` aggregates built with the domain's own rules (tags normalised,
options priced, money quantised) and appended to the catalog's event store, `--batch` aggregates
per `save()` (one transaction, one table lock). The projections then catch up from the log in
their usual batches, exactly as `ugc rebuild` would. Public ids come from the same sequences the
commands use (drawn a block at a time on PostgreSQL).

The texts are deterministic (`--seed`): a title from a kind of work and a niche, a description of
two template sentences, so the frequency of any search word is the same in every run.

Usage:  .venv/bin/python bench/seed_services.py DATABASE_URL [--count 100000] [--creators 500]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from decimal import Decimal

from argon2 import PasswordHasher
from common import DATA_KEY

from commands.accounts import AccountCommands, Register
from commands.creators import CreatorCommands
from commands.reference import load_reference_data, reference_data
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from readmodels.waiting import Progress
from ugc.claims import Claim
from ugc.clock import SystemClock
from ugc.config import Settings, operator_login
from ugc.events import operator_actor, user_actor
from ugc.ids import claim_id
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.services import OptionDraft, Service, money, normalise_tags, priced_options
from ugc.wiring import migrate

KINDS = [
    "Монтаж видео",
    "Съёмка распаковки",
    "UGC-видео",
    "Видеообзор",
    "Фотосъёмка",
    "Предметная съёмка",
    "Сторис",
    "Reels",
    "Ролик для TikTok",
    "Обзор",
    "Отзыв на камеру",
    "Анимация логотипа",
    "Дизайн баннера",
    "Озвучка",
    "Сценарий ролика",
    "Инфографика",
    "Карточка товара",
    "Motion design",
    "Product video",
    "Unboxing video",
    "Photo shoot",
    "Voice-over",
    "Лайфстайл съёмка",
    "Тизер",
]
NICHES = [
    "косметики",
    "одежды",
    "гаджетов",
    "игрушек",
    "продуктов питания",
    "спортивных товаров",
    "мебели",
    "книг",
    "украшений",
    "товаров для дома",
    "зоотоваров",
    "автотоваров",
    "напитков",
    "обуви",
    "сумок",
    "for marketplaces",
    "for Instagram",
    "for YouTube",
    "for Wildberries",
    "for Ozon",
]
SENTENCES = [
    "Сниму {a} в {b} качестве за {d} дней.",
    "Опыт работы с {c} более {y} лет, сделаю {a} под ваш бренд.",
    "Подготовлю {a} для {c}: идея, съёмка, монтаж и цветокоррекция.",
    "Делаю {a} с живой подачей и {b} светом.",
    "Работаю по ТЗ, до {y} правок бесплатно, исходники по запросу.",
    "Native English speaker, {a} with {b} lighting and fast delivery.",
    "Вертикальный формат 9:16, субтитры и музыка включены.",
]
ADJECTIVES = ["хорошем", "студийном", "естественном", "мягком", "ярком", "4K", "профессиональном", "дневном"]
OPTIONS = [("Срочно", "Сдам быстрее"), ("Субтитры", ""), ("Исходники", "RAW и проект"), ("Музыка", "Лицензия")]
PASSWORD = "bench-password-1"
TAGS = ["видео", "фото", "ugc", "обзор", "tiktok", "reels", "монтаж", "дизайн", "озвучка", "анимация", "сторис"]


@dataclass(frozen=True)
class Creator:
    user_id: int
    profile_id: int
    username: str


def register_creators(stores: EventStores, db: Database, count: int, prefix: str) -> list[Creator]:
    """Register `count` users through the commands (cheap argon2: the benchmark reads, it does not log in)."""
    clock = SystemClock()
    accounts = AccountCommands(stores, db, clock, hasher=PasswordHasher(time_cost=1, memory_cost=8192))
    creators = CreatorCommands(stores, db, clock)
    made = []
    for i in range(count):
        username = f"{prefix}{i}"
        registered = accounts.register(Register(username, f"{username}@example.com", PASSWORD, "Bench", f"{i}"))
        profile_id, _ = creators.create_profile(
            registered.user_id, specialization="UGC", experience="", portfolio_link="", social_links={}
        )
        made.append(Creator(registered.user_id, profile_id, username))
    return made


def category_numbers(stores: EventStores) -> list[int]:
    """The categories' public ids, from their slug claims in the catalog's log (not from a read table)."""
    slugs = [c["slug"] for c in reference_data()["categories"]]
    claims: list[Claim] = [stores.catalog.repository.get(claim_id("category", slug)) for slug in slugs]
    return [int(claim.owner_number) for claim in claims]


def service_texts(rng: random.Random) -> tuple[str, str]:
    kind, niche = rng.choice(KINDS), rng.choice(NICHES)
    words = {
        "a": kind.lower(),
        "b": rng.choice(ADJECTIVES),
        "c": niche,
        "d": rng.randint(1, 14),
        "y": rng.randint(1, 10),
    }
    description = " ".join(s.format(**words) for s in rng.sample(SENTENCES, 2))
    return f"{kind} {niche}", description


def build_services(
    rng: random.Random, db: Database, creators: list[Creator], categories: list[int], count: int
) -> list[Service]:
    drafts = [
        [
            OptionDraft(name, text, Decimal(rng.randrange(100, 5000, 50)))
            for name, text in rng.sample(OPTIONS, rng.randint(0, 2))
        ]
        for _ in range(count)
    ]
    service_numbers = db.next_numbers("service", count)
    option_numbers = iter(db.next_numbers("service_option", sum(len(d) for d in drafts)))
    clock = SystemClock()
    made = []
    for number, options in zip(service_numbers, drafts, strict=True):
        creator = rng.choice(creators)
        title, description = service_texts(rng)
        made.append(
            Service(
                number=number,
                creator_profile_number=creator.profile_id,
                creator_user_number=creator.user_id,
                creator_username=creator.username,
                category_number=rng.choice(categories),
                title=title,
                description=description,
                base_price=money(Decimal(rng.randrange(500, 50_001, 100))),
                delivery_time=rng.randint(1, 30),
                options=priced_options(options, (), [next(option_numbers) for _ in options]),
                tags=normalise_tags(rng.sample(TAGS, rng.randint(1, 4))),
                allows_modifications=rng.random() < 0.8,
                modifications_price=money(Decimal(rng.choice((0, 0, 300, 500)))),
                at=clock.now(),
                actor=user_actor(creator.user_id),
            )
        )
    return made


def seed(database_url: str, *, count: int, creators: int, batch: int, seed_value: int = 1) -> float:
    """Seed and catch up; returns the seconds it took. Prints progress to stderr."""
    started = time.monotonic()
    settings = Settings.from_env(
        {"UGC_DATABASE_URL": database_url, "UGC_SECRET_KEY": "seed-" + "x" * 40, "UGC_DATA_KEY": DATA_KEY}
    )
    db = Database(database_url)
    migrate(db)
    stores = EventStores(database_url, data_key=DATA_KEY)
    try:
        load_reference_data(stores, db, SystemClock(), operator_actor(operator_login()))
        categories = category_numbers(stores)
        rng = random.Random(seed_value)
        people = register_creators(stores, db, creators, prefix=f"seed{rng.randrange(10**6)}_")
        print(f"  {len(people)} creators registered ({time.monotonic() - started:.0f} s)", file=sys.stderr)
        done = 0
        while done < count:
            size = min(batch, count - done)
            stores.catalog.save(*build_services(rng, db, people, categories, size))
            done += size
            if done % (batch * 10) == 0 or done == count:
                print(f"  {done} services appended ({time.monotonic() - started:.0f} s)", file=sys.stderr)
        runner = ProjectionRunner(db, stores, [p for p in all_projections(settings) if p.read_model], Progress())
        runner.register()
        runner.catch_up()
        print(f"  read models caught up ({time.monotonic() - started:.0f} s)", file=sys.stderr)
        if db.dialect == "postgresql":
            with db.transaction(write=True) as cur:
                cur.execute("ANALYZE services")
    finally:
        stores.close()
        db.close()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("database_url")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--creators", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1000, help="aggregates per save() (one transaction)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    seconds = seed(args.database_url, count=args.count, creators=args.creators, batch=args.batch, seed_value=args.seed)
    print(f"seeded {args.count} services in {seconds:.0f} s")


if __name__ == "__main__":
    main()
