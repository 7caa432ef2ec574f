"""Failed sign-ins and verifications are throttled; successes never count."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

from starlette.testclient import TestClient

from api.throttle import DEAD_AFTER, LIMITS, subjects
from tests.conftest import Api, mailed_token, new_client, next_address
from ugc.clock import MovableClock
from ugc.config import Settings
from ugc.platform import auth_failures, leases
from ugc.platform.auth_failures import WINDOW, Subject
from ugc.platform.database import Database

BURST = 40


def _from(client: TestClient, address: str) -> TestClient:
    """Another client of the same (running) app, from `address`."""
    return TestClient(client.app, client=(address, 40000))


def _fail_login(api: Api, username: str) -> int:
    return api.client.post("/api/auth/token/", json={"username": username, "password": "wrong-password"}).status_code


def test_ten_failures_lock_the_username_at_that_address_with_retry_after(settings: Settings) -> None:
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        victim = api.register()
        assert [_fail_login(api, victim["username"]) for _ in range(10)] == [401] * 10
        locked = client.post("/api/auth/token/", json={"username": victim["username"], "password": victim["password"]})
        assert locked.status_code == 429
        assert locked.json() == {"detail": "Слишком много неудачных попыток. Повторите позже."}
        assert 1 <= int(locked.headers["retry-after"]) <= 900
        # The same address can still sign in as someone else, and the owner from another address.
        other = api.register()
        assert api.login(other["username"])["access"]
        assert Api(_from(client, next_address()), settings).login(victim["username"])["access"]
        clock.advance(timedelta(minutes=15, seconds=1))
        assert api.login(victim["username"], victim["password"])["access"]


def test_successes_never_count(settings: Settings) -> None:
    """More successes than either limit leave the full allowance of failures: the tenth still locks."""
    with new_client(settings, MovableClock()) as client:
        api = Api(client, settings)
        user = api.register()
        for _ in range(31):  # past the address limit (30), and so past the username limit (10)
            api.login(user["username"])
        assert [_fail_login(api, user["username"]) for _ in range(9)] == [401] * 9
        # Had any success counted, nine failures would have locked the username by now.
        assert api.login(user["username"])["access"]
        # Nor does a success wipe the failures before it: the tenth locks the username.
        assert _fail_login(api, user["username"]) == 401
        locked = client.post("/api/auth/token/", json={"username": user["username"], "password": user["password"]})
        assert locked.status_code == 429 and "retry-after" in locked.headers


def test_a_strangers_failures_from_many_addresses_leave_the_owner_in_below_the_username_limit(
    settings: Settings,
) -> None:
    clock = MovableClock()
    with new_client(settings, clock) as own:
        owner = Api(own, settings).register()
        # 99 wrong passwords from 11 addresses, each below its own (username, address) limit.
        for _ in range(11):
            stranger = Api(_from(own, next_address()), settings)
            assert [_fail_login(stranger, owner["username"]) for _ in range(9)] == [401] * 9
        assert Api(own, settings).login(owner["username"], owner["password"])["access"]
        # The 100th, from anywhere, locks the name everywhere: a guessing campaign stops there.
        assert _fail_login(Api(_from(own, next_address()), settings), owner["username"]) == 401
        locked = own.post("/api/auth/token/", json={"username": owner["username"], "password": owner["password"]})
        assert locked.status_code == 429 and 1 <= int(locked.headers["retry-after"]) <= 900
        clock.advance(timedelta(minutes=15, seconds=1))
        assert Api(own, settings).login(owner["username"], owner["password"])["access"]


def test_thirty_failures_lock_the_address(settings: Settings) -> None:
    clock = MovableClock()
    with new_client(settings, clock) as client, new_client(settings, clock) as elsewhere:
        api = Api(client, settings)
        names = [f"ghost_{i}" for i in range(30)]
        assert {_fail_login(api, name) for name in names} == {401}
        user = Api(elsewhere, settings).register()
        blocked = client.post("/api/auth/token/", json={"username": user["username"], "password": user["password"]})
        assert blocked.status_code == 429 and "retry-after" in blocked.headers
        assert Api(elsewhere, settings).login(user["username"])["access"]


def test_failed_verifications_are_throttled_by_address(settings: Settings) -> None:
    with new_client(settings, MovableClock()) as client:
        statuses = [client.post("/api/auth/verify-email/", json={"token": f"bad.{i}"}).status_code for i in range(31)]
        assert statuses[:30] == [422] * 30
        assert statuses[30] == 429


def test_failures_sent_at_once_are_held_to_the_same_limits(settings: Settings) -> None:
    """A burst of wrong passwords for one name from one address: each attempt is checked against
    those before it, in flight or failed, so no more than ten are tried; the rest get 429."""
    with new_client(settings, MovableClock()) as client:
        api = Api(client, settings)
        victim = api.register()
        with ThreadPoolExecutor(BURST) as pool:
            statuses = list(pool.map(lambda _: _fail_login(api, victim["username"]), range(BURST)))
        assert sorted(statuses) == [401] * 10 + [429] * (BURST - 10)
        locked = client.post("/api/auth/token/", json={"username": victim["username"], "password": victim["password"]})
        assert locked.status_code == 429


def test_a_sign_in_that_succeeds_is_taken_back_from_the_count(settings: Settings) -> None:
    """Counted from its start, a success is forgotten at its end: as many as the limit, at once, leave it whole."""
    with new_client(settings, MovableClock()) as client:
        api = Api(client, settings)
        user = api.register()
        with ThreadPoolExecutor(10) as pool:
            assert all(pool.map(lambda _: api.login(user["username"])["access"], range(10)))
        assert [_fail_login(api, user["username"]) for _ in range(10)] == [401] * 10
        assert _fail_login(api, user["username"]) == 429


def _sign_in(client: TestClient, username: str, password: str = "correct-horse-battery") -> int:
    return client.post("/api/auth/token/", json={"username": username, "password": password}).status_code


def test_correct_sign_ins_sent_at_once_never_throttle_each_other(settings: Settings) -> None:
    """More correct sign-ins at once from one address than its limit, and more of one user than the
    username's: all succeed (an attempt waits for those in flight rather than count them as failures)."""
    with new_client(settings, MovableClock()) as client:
        api = Api(client, settings)
        users = [api.register()["username"] for _ in range(BURST)]
        names = users + [users[0]] * 15
        with ThreadPoolExecutor(len(names)) as pool:
            statuses = list(pool.map(lambda name: _sign_in(client, name), names))
        assert statuses == [200] * len(names)


def test_correct_verifications_sent_at_once_never_throttle_each_other(settings: Settings) -> None:
    with new_client(settings, MovableClock()) as client:
        api = Api(client, settings)
        tokens = [mailed_token(settings, api.register()["email"]) for _ in range(BURST)]
        with ThreadPoolExecutor(BURST) as pool:
            statuses = list(
                pool.map(
                    lambda token: client.post("/api/auth/verify-email/", json={"token": token}).status_code, tokens
                )
            )
        assert statuses == [200] * BURST


def test_wrong_passwords_sent_at_once_are_held_to_the_address_limit_and_told_when_to_retry(
    settings: Settings,
) -> None:
    """20 failures, then 5 minutes later 20 wrong passwords for other names at once: exactly 10 more
    are tried; the rest wait for the limit until the first 20 failures leave the window (10 minutes)."""
    clock = MovableClock()
    with new_client(settings, clock) as client:
        assert {_sign_in(client, f"ghost_{i}", "wrong-password") for i in range(20)} == {401}
        clock.advance(timedelta(minutes=5))
        with ThreadPoolExecutor(20) as pool:
            answers = list(
                pool.map(
                    lambda i: client.post(
                        "/api/auth/token/", json={"username": f"late_{i}", "password": "wrong-password"}
                    ),
                    range(20),
                )
            )
        assert sorted(answer.status_code for answer in answers) == [401] * 10 + [429] * 10
        assert {answer.headers["retry-after"] for answer in answers if answer.status_code == 429} == {"600"}


OVERLOADED = {"detail": "Сервис временно перегружен, повторите запрос позже."}


@contextmanager
def _another_process(settings: Settings) -> Iterator[tuple[Database, str]]:
    """The database as another server process sees it, and its name among the lease members: a live
    member (for ten minutes) until the block ends, when it leaves as a killed one's membership expires."""
    elsewhere = Database(settings.database_url)
    member = f"test/{uuid.uuid4().hex[:8]}"
    try:
        with elsewhere.transaction(write=True) as cur:
            leases.attend(cur, member, 600, {}, {})
        yield elsewhere, member
    finally:
        with elsewhere.transaction(write=True) as cur:
            leases.leave(cur, member)
        elsewhere.close()


def _in_flight(elsewhere: tuple[Database, str], clock: MovableClock, who: list[Subject], count: int) -> None:
    """`count` attempts against `who` recorded in flight by another process, which is still at work on
    them (or killed before it answered): none of them ends here."""
    db, member = elsewhere
    now = clock.now()
    for _ in range(count):
        key, _ = auth_failures.attempt(
            db, [(subject, LIMITS[subject.scope]) for subject in who], now, now - WINDOW, now - DEAD_AFTER, member
        )
        assert key is not None


def test_attempts_in_flight_that_do_not_end_in_time_are_an_overload_not_failures(settings: Settings) -> None:
    """A name's limit of attempts in flight from an address, which do not end within the wait: a
    correct sign-in cannot be decided, and answers 503 as the other overloads do (nothing failed, so
    the failures' 429 would be untrue). A name whose failures reached the limit still gets that 429."""
    clock = MovableClock()
    with new_client(settings, clock) as client:
        api = Api(client, settings)
        waiting, failed = api.register(), api.register()
        address = next_address()
        there = _from(client, address)
        with _another_process(settings) as elsewhere:
            _in_flight(elsewhere, clock, subjects(address, waiting["username"]), LIMITS["username_at_address"])
            undecided = there.post(
                "/api/auth/token/", json={"username": waiting["username"], "password": waiting["password"]}
            )
            assert (undecided.status_code, undecided.json()) == (503, OVERLOADED)
            assert undecided.headers["retry-after"] == "1"
            assert {_sign_in(there, failed["username"], "wrong-password") for _ in range(10)} == {401}
            locked = there.post(
                "/api/auth/token/", json={"username": failed["username"], "password": failed["password"]}
            )
            assert locked.status_code == 429
            assert locked.json() == {"detail": "Слишком много неудачных попыток. Повторите позже."}


def test_attempts_whose_process_died_in_flight_count_as_nothing(settings: Settings) -> None:
    """A process killed with an address's limit of attempts in flight: while it is a live member they
    still might fail, so one more waits and is refused as an overload; once its membership is gone
    (as a killed process's expires, tests/test_throttle_crash.py) they count as nothing, and the
    address has its whole allowance of failures."""
    clock = MovableClock()
    with new_client(settings, clock) as client:
        user = Api(client, settings).register()
        address = next_address()
        there = _from(client, address)
        with _another_process(settings) as elsewhere:
            _in_flight(elsewhere, clock, subjects(address), LIMITS["address"])
            refused = there.post("/api/auth/token/", json={"username": user["username"], "password": user["password"]})
            assert (refused.status_code, refused.json()) == (503, OVERLOADED)
        assert _sign_in(there, user["username"]) == 200
        assert {_sign_in(there, f"ghost_{i}", "wrong-password") for i in range(30)} == {401}
        assert _sign_in(there, user["username"]) == 429


def test_attempts_in_flight_of_an_earlier_release_are_taken_for_dead_after_a_while(settings: Settings) -> None:
    """A process of the release before members were recorded (a rolling deploy) names none: its
    attempts in flight count until `DEAD_AFTER`, as they did then."""
    clock = MovableClock()
    with new_client(settings, clock) as client:
        user = Api(client, settings).register()
        address = next_address()
        there = _from(client, address)
        earlier = Database(settings.database_url)
        try:
            with earlier.transaction(write=True) as cur:
                for number in range(LIMITS["address"]):
                    cur.execute(
                        "INSERT INTO auth_failures (scope, key, at, attempt, in_flight) "
                        "VALUES ('address', %s, %s, %s, TRUE)",
                        (address, clock.now(), f"earlier-{number}"),
                    )
        finally:
            earlier.close()
        refused = there.post("/api/auth/token/", json={"username": user["username"], "password": user["password"]})
        assert (refused.status_code, refused.json()) == (503, OVERLOADED)
        clock.advance(DEAD_AFTER + timedelta(seconds=1))
        assert _sign_in(there, user["username"]) == 200
