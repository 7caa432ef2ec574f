"""`ugc seed --demo`: a small world to click through — creators, services, orders in every status.

Everything goes through the same command handlers as the API, so the demo is ordinary events.
It runs once per database: a claim saved last marks it done, and a second run adds nothing. Runs
go one at a time (a lock across processes), so two started at once do not both add it. A run that
stopped half-way (Ctrl-C, a crash) is finished by the next one, which adds only what is missing:
users and creator profiles are found by name, and every service, order and message is made under
an id noted before it is made (`_noted`), so the next run finds it, or makes it under that id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application

from commands.accounts import AccountCommands, Register
from commands.creators import CreatorCommands
from commands.messaging import MessagingCommands
from commands.orders import OrderCommands
from commands.services import OfferService, ServiceCommands
from ugc.claims import Claim
from ugc.clock import Clock
from ugc.creators import creator_profile_id
from ugc.ids import claim_id
from ugc.messaging import message_id
from ugc.orders import Order, order_id
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.services import OptionDraft, service_id

DEMO_PASSWORD = "demo-password-1"
_DONE = ("demo_seed", "v1")


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    last_name: str
    specialization: str = ""  # a creator when set

    @property
    def email(self) -> str:
        return f"{self.username}@demo.ugc.local"


CREATORS = (
    DemoUser("anna_video", "Анна", "Смирнова", "Короткие видео и распаковки"),
    DemoUser("ivan_photo", "Иван", "Петров", "Предметная фотосъёмка"),
    DemoUser("maria_design", "Мария", "Ковалёва", "Дизайн обложек и баннеров"),
)
CLIENTS = (DemoUser("olga_brand", "Ольга", "Соколова"), DemoUser("petr_shop", "Пётр", "Орлов"))
USERNAMES = tuple(user.username for user in (*CREATORS, *CLIENTS))


@dataclass(frozen=True)
class DemoCommands:
    stores: EventStores
    accounts: AccountCommands
    creators: CreatorCommands
    services: ServiceCommands
    orders: OrderCommands
    messaging: MessagingCommands
    db: Database
    clock: Clock
    operator: str  # the actor of what the operator does here rather than a demo user


def seed_demo(c: DemoCommands) -> bool:
    """Create the demo world unless it is there; True when this call created it."""
    with c.db.exclusive_lock("demo seed"):
        if _claimed(c.stores, *_DONE):
            return False
        _seed(c)
        return True


def _seed(c: DemoCommands) -> None:
    ids = {user.username: _user(c, user) for user in (*CREATORS, *CLIENTS)}
    for creator in CREATORS:
        if not _exists(c.stores.accounts, creator_profile_id(ids[creator.username])):
            c.creators.create_profile(
                ids[creator.username],
                specialization=creator.specialization,
                experience="5 лет",
                portfolio_link="",
                social_links={},
            )
    video, photo, design = (_category(c.stores, slug) for slug in ("video", "photo", "design"))
    anna, ivan, maria = (ids[u.username] for u in CREATORS)
    olga, petr = (ids[u.username] for u in CLIENTS)

    def offer(key: str, creator: int, service: OfferService) -> int:
        number = _noted(c, "service", key)
        if not _exists(c.stores.catalog, service_id(number)):
            c.services.offer(creator, service, number=number)
        return number

    unboxing = offer(
        "unboxing",
        anna,
        OfferService(
            title="Видеообзор товара для маркетплейса",
            description="Вертикальное видео 30–60 секунд: распаковка, детали, впечатления.",
            category_id=video,
            base_price=Decimal(5000),
            delivery_time=5,
            options=(
                OptionDraft("Субтитры", "Русские субтитры", Decimal(800)),
                OptionDraft("Второй вариант монтажа", "Другой ритм и музыка", Decimal(1500)),
            ),
            tags=("видео", "обзор"),
        ),
    )
    shoot = offer(
        "shoot",
        ivan,
        OfferService(
            title="Предметная съёмка: 10 кадров",
            description="Белый фон и лайфстайл, ретушь включена.",
            category_id=photo,
            base_price=Decimal(7000),
            delivery_time=7,
            options=(OptionDraft("Ещё 5 кадров", "Те же условия", Decimal(2500)),),
            tags=("фото",),
            allows_modifications=False,
        ),
    )
    cover = offer(
        "cover",
        maria,
        OfferService(
            title="Обложка для YouTube",
            description="Два варианта на выбор, исходник в PSD.",
            category_id=design,
            base_price=Decimal(2500),
            delivery_time=3,
            options=(OptionDraft("Срочно за сутки", "Готово через 24 часа", Decimal(1000)),),
            tags=("дизайн", "обложка"),
        ),
    )
    due = c.clock.now().date() + timedelta(days=10)
    o = c.orders

    def order(key: str, buyer: int, service: int, text: str, *steps: Callable[[int], object]) -> None:
        """Place the order noted as `key` unless it is there, then take the steps it has not taken
        yet: each step records one event of the order, so its version tells how many it took."""
        number = _noted(c, "order", key)
        if not _exists(c.stores.orders, order_id(number)):
            o.place(buyer, service, text, due, [], number=number)
        placed: Order = c.stores.orders.repository.get(order_id(number))
        for step in steps[placed.version - 1 :]:
            step(number)

    order("pending", olga, unboxing, "Обзор беспроводных наушников, акцент на шумоподавлении.")
    order("in_progress", petr, shoot, "Кружки из новой коллекции, 4 цвета.", lambda n: o.accept(n, ivan))
    order(
        "delivered",
        olga,
        cover,
        "Обложка для ролика про путешествие в Карелию.",
        lambda n: o.accept(n, maria),
        lambda n: o.deliver(n, maria, "Два варианта обложки — ссылка на исходники в сообщении.", []),
    )
    order(
        "revised",  # in_progress again
        petr,
        unboxing,
        "Распаковка настольной игры.",
        lambda n: o.accept(n, anna),
        lambda n: o.deliver(n, anna, "Готово, смотрите черновой монтаж.", []),
        lambda n: o.request_revision(n, petr, "Добавьте, пожалуйста, крупный план компонентов."),
    )
    for key, buyer, service, seller, rating, review in (
        ("completed_shoot", olga, shoot, ivan, 5, "Отличные кадры, всё в срок."),
        ("completed_cover", petr, cover, maria, 4, "Хорошо, но хотелось бы больше вариантов шрифта."),
        ("completed_unboxing", petr, unboxing, anna, 5, "Живое видео, зрителям понравилось."),
    ):
        order(
            key,
            buyer,
            service,
            "Повторный заказ по прошлому брифу.",
            *_completed(o, buyer, seller, rating, review),
        )
    order("cancelled", olga, cover, "Баннер для распродажи.", lambda n: o.cancel(n, olga, "Распродажу перенесли."))
    chat = c.messaging.start_conversation(olga, anna).conversation_id  # the pair's one conversation
    for index, (sender, text) in enumerate(
        (
            (olga, "Здравствуйте! Можно снять обзор к пятнице?"),
            (anna, "Добрый день! Да, успеваю. Пришлите, пожалуйста, товар до среды."),
            (olga, "Отлично, отправила курьером."),
        )
    ):
        number = _noted(c, "message", str(index))
        if not _exists(c.stores.messaging, message_id(number)):
            c.messaging.send_message(chat, sender, text, number=number)
    _claim(c, *_DONE, 0)


def _completed(o: OrderCommands, buyer: int, seller: int, rating: int, review: str) -> list[Callable[[int], object]]:
    """The steps from placed to completed and reviewed."""
    return [
        lambda n: o.accept(n, seller),
        lambda n: o.deliver(n, seller, "Готово.", []),
        lambda n: o.approve(n, buyer),
        lambda n: o.review(n, buyer, rating, review),
    ]


def _noted(c: DemoCommands, kind: str, key: str) -> int:
    """The public id of the demo's `kind` item `key`: drawn and noted (a claim) by the first run
    that reaches it, before the item is made, so a run after an interruption anywhere makes it
    under that id or finds it made."""
    try:
        noted: Claim = c.stores.accounts.repository.get(claim_id(f"demo_{kind}", key))
    except AggregateNotFoundError:
        number = c.db.next_number(kind)
        _claim(c, f"demo_{kind}", key, number)
        return number
    return noted.owner_number


def _exists(app: Application[UUID], aggregate: UUID) -> bool:
    try:
        app.repository.get(aggregate)
    except AggregateNotFoundError:
        return False
    return True


def _user(c: DemoCommands, user: DemoUser) -> int:
    found = c.accounts.user_id(user.username)
    if found is None:
        demo = Register(user.username, user.email, DEMO_PASSWORD, user.first_name, user.last_name, verified=True)
        return c.accounts.register(demo, c.operator).user_id
    c.accounts.mark_verified(user.username, c.operator)
    return found


def _category(stores: EventStores, slug: str) -> int:
    claim: Claim = stores.catalog.repository.get(claim_id("category", slug))
    return claim.owner_number


def _claimed(stores: EventStores, kind: str, value: str) -> bool:
    return _exists(stores.accounts, claim_id(kind, value))


def _claim(c: DemoCommands, kind: str, value: str, owner: int) -> None:
    c.stores.accounts.save(Claim(kind=kind, value=value, owner_number=owner, at=c.clock.now(), actor=c.operator))
