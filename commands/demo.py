"""`ugc seed --demo`: a small world to click through — creators, services, orders in every status.

Everything goes through the same command handlers as the API, so the demo is ordinary events.
It runs once per database: a claim saved last marks it done, and a second run adds nothing. Runs
go one at a time (a lock across processes), so two started at once do not both add it. Users are
found or created one by one, so a run that stopped half-way can be finished by another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from eventsourcing.application import AggregateNotFoundError

from commands.accounts import AccountCommands, Register
from commands.creators import CreatorCommands
from commands.messaging import MessagingCommands
from commands.orders import OrderCommands
from commands.services import OfferService, ServiceCommands
from ugc.claims import Claim
from ugc.clock import Clock
from ugc.ids import claim_id
from ugc.platform.database import Database
from ugc.platform.store import EventStores
from ugc.services import OptionDraft

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
        if not _claimed(c.stores, "demo_creator", creator.username):
            c.creators.create_profile(
                ids[creator.username],
                specialization=creator.specialization,
                experience="5 лет",
                portfolio_link="",
                social_links={},
            )
            _claim(c, "demo_creator", creator.username, ids[creator.username])
    video, photo, design = (_category(c.stores, slug) for slug in ("video", "photo", "design"))
    anna, ivan, maria = (ids[u.username] for u in CREATORS)
    olga, petr = (ids[u.username] for u in CLIENTS)
    unboxing, _ = c.services.offer(
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
    shoot, _ = c.services.offer(
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
    cover, _ = c.services.offer(
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

    def place(buyer: int, service: int, text: str) -> int:
        return o.place(buyer, service, text, due, []).order.number

    place(olga, unboxing, "Обзор беспроводных наушников, акцент на шумоподавлении.")  # pending
    working = place(petr, shoot, "Кружки из новой коллекции, 4 цвета.")
    o.accept(working, ivan)  # in_progress
    delivered = place(olga, cover, "Обложка для ролика про путешествие в Карелию.")
    o.accept(delivered, maria)
    o.deliver(delivered, maria, "Два варианта обложки — ссылка на исходники в сообщении.", [])  # delivered
    revised = place(petr, unboxing, "Распаковка настольной игры.")
    o.accept(revised, anna)
    o.deliver(revised, anna, "Готово, смотрите черновой монтаж.", [])
    o.request_revision(revised, petr, "Добавьте, пожалуйста, крупный план компонентов.")  # in_progress again
    for buyer, service, seller, rating, review in (
        (olga, shoot, ivan, 5, "Отличные кадры, всё в срок."),
        (petr, cover, maria, 4, "Хорошо, но хотелось бы больше вариантов шрифта."),
        (petr, unboxing, anna, 5, "Живое видео, зрителям понравилось."),
    ):
        done = place(buyer, service, "Повторный заказ по прошлому брифу.")
        o.accept(done, seller)
        o.deliver(done, seller, "Готово.", [])
        o.approve(done, buyer)
        o.review(done, buyer, rating, review)  # completed, reviewed
    cancelled = place(olga, cover, "Баннер для распродажи.")
    o.cancel(cancelled, olga, "Распродажу перенесли.")  # cancelled
    chat = c.messaging.start_conversation(olga, anna).conversation_id
    for sender, text in (
        (olga, "Здравствуйте! Можно снять обзор к пятнице?"),
        (anna, "Добрый день! Да, успеваю. Пришлите, пожалуйста, товар до среды."),
        (olga, "Отлично, отправила курьером."),
    ):
        c.messaging.send_message(chat, sender, text)
    _claim(c, *_DONE, 0)


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
    try:
        stores.accounts.repository.get(claim_id(kind, value))
    except AggregateNotFoundError:
        return False
    return True


def _claim(c: DemoCommands, kind: str, value: str, owner: int) -> None:
    c.stores.accounts.save(Claim(kind=kind, value=value, owner_number=owner, at=c.clock.now(), actor=c.operator))
