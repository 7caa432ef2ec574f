"""Browser tests: the pages the app serves, in headless Chromium against a real `ugc serve`.

Chromium and its driver are Debian's `chromium` and `chromium-driver` (.ci/run installs them);
the tests skip only when they are not installed. `UGC_DOCS_SCREENSHOT=path` keeps a screenshot of
the Swagger UI page (docs/swagger-ui.png was made that way).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from starlette.testclient import TestClient

from readmodels.audit_record import entry as record_entry
from tests import third_party_check
from tests.backends import environment
from tests.conftest import Api
from tests.golden_events import FIXTURES
from tests.orders_world import Deal, a_deal, act, place
from tests.servers import Server, start_server
from tests.test_api_orders import grant
from tests.test_chain_verify import Log
from tests.test_event_versions import MAPPER, as_stored
from ugc.config import Settings
from ugc.platform.chain import RecordedEvent
from ugc.platform.encoding import dumps

selenium = pytest.importorskip("selenium")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT = 30.0
PASSWORD = "browser-pass-123"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:  # Chrome's own driver: `get_log` reads the console
    if CHROMIUM is None or CHROMEDRIVER is None:
        missing = "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
        if os.environ.get("CI"):  # CI installed them: their absence there is a failure, not a skip
            pytest.fail(missing)
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--lang=ru",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()  # ends chromedriver and the browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    var_dir = tmp_path_factory.mktemp("browser")
    env = environment("sqlite", f"sqlite:///{var_dir / 'ugc.sqlite3'}", var_dir)
    # No UGC_PUBLIC_URL: `ugc serve --port` derives it, so the mail's link leads back to this server.
    with start_server(env, log_dir=var_dir) as running:
        running.var_dir = var_dir  # type: ignore[attr-defined]
        yield running


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, WAIT)


def registered(server: Server, username: str) -> str:
    """Register `username` and return the verification link from the mail written to the outbox."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answer = client.post(
            "/api/auth/register/",
            json={
                "username": username,
                "email": f"{username}@example.com",
                "password": PASSWORD,
                "first_name": "Анна",
                "last_name": "Браузерова",
            },
        )
        assert answer.status_code == 201, answer.text
    outbox = Path(server.var_dir) / "outbox"  # type: ignore[attr-defined]
    deadline_polls = 200
    for _ in range(deadline_polls):
        for path in sorted(outbox.glob("*.eml")) if outbox.is_dir() else []:
            mail = message_from_bytes(path.read_bytes())
            if f"{username}@example.com" in str(mail["To"]):
                body = mail.get_payload(decode=True)
                assert isinstance(body, bytes)
                found = re.search(r"(http://\S+/verify-email\?token=[A-Za-z0-9._-]*[A-Za-z0-9_-])", body.decode())
                assert found, body
                return found.group(1)
        import time

        time.sleep(0.05)
    raise AssertionError(f"no verification mail for {username}")


def sign_in(server: Server, username: str) -> str:
    answer = httpx.post(f"{server.url}/api/auth/token/", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access"]
    return token


def test_the_mail_link_opens_a_page_whose_button_verifies_the_address(server: Server, browser: WebDriver) -> None:
    link = registered(server, "anna_link")
    assert link.startswith(server.url + "/verify-email?token="), link  # the port served, not 8000
    browser.get(link)
    button = wait(browser).until(ec.element_to_be_clickable((By.ID, "confirm")))
    assert "Подтверждение адреса" in browser.title
    # Opening the link verified nothing: a mail scanner that follows it cannot sign the user up.
    me = httpx.post(f"{server.url}/api/auth/token/", json={"username": "anna_link", "password": PASSWORD})
    assert me.status_code == 401 or not _verified(server, me.json()["access"])
    button.click()
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "result"), "Email успешно подтвержден"))
    assert _verified(server, sign_in(server, "anna_link"))
    button_again = browser.find_element(By.ID, "confirm")
    assert not button_again.is_enabled()


def test_the_mail_link_without_a_token_says_so(server: Server, browser: WebDriver) -> None:
    browser.get(f"{server.url}/verify-email")
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "result"), "нет токена"))
    assert not browser.find_element(By.ID, "confirm").is_enabled()


def _verified(server: Server, access: str) -> bool:
    me = httpx.get(f"{server.url}/api/v1/users/me/", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 200, me.text
    return bool(me.json().get("is_verified", True))


def operation(driver: WebDriver, method: str, path: str) -> WebElement:
    """The Swagger UI block of one operation, found by its path (ids depend on tags and operationIds)."""
    xpath = f"//div[contains(@class, 'opblock-{method}')][.//*[@data-path='{path}']]"
    return wait(driver).until(ec.presence_of_element_located((By.XPATH, xpath)))


def test_swagger_ui_renders_every_operation_and_tries_one_with_a_token(
    server: Server, browser: webdriver.Chrome
) -> None:
    registered(server, "anna_docs")
    with httpx.Client(base_url=server.url) as client:
        schema = client.get("/api/schema/").json()
    expected = sum(len(methods) for methods in schema["paths"].values())
    browser.get(f"{server.url}/api/docs/")
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= expected)
    assert not browser.find_elements(By.CSS_SELECTOR, ".errors-wrapper"), "Swagger UI reports schema errors"

    # A public call: try it out, execute, and the live answer is the server's 200.
    categories = operation(browser, "get", "/api/v1/categories/")
    categories.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait(browser).until(lambda d: categories.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    categories.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    wait(browser).until(lambda d: categories.find_elements(By.CSS_SELECTOR, ".execute"))
    categories.find_element(By.CSS_SELECTOR, ".execute").click()
    status = wait(browser).until(
        lambda d: categories.find_element(By.CSS_SELECTOR, ".live-responses-table tr.response td.response-col_status")
    )
    assert status.text.strip().startswith("200"), status.text
    assert "Видео" in categories.find_element(By.CSS_SELECTOR, ".live-responses-table").text

    # The token box: Authorize with an access token, then an authenticated call answers 200.
    with httpx.Client(base_url=server.url) as client:
        link = registered(server, "anna_token")
        token = link.split("token=", 1)[1]
        assert client.post("/api/auth/verify-email/", json={"token": token}).status_code == 200
    access = sign_in(server, "anna_token")
    browser.find_element(By.CSS_SELECTOR, ".auth-wrapper .authorize").click()
    box = wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".auth-container input")))
    box.send_keys(access)
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .authorize").click()
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper .btn-done").click()
    me = operation(browser, "get", "/api/v1/users/me/")
    me.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait(browser).until(lambda d: me.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    me.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    wait(browser).until(lambda d: me.find_elements(By.CSS_SELECTOR, ".execute"))
    me.find_element(By.CSS_SELECTOR, ".execute").click()
    status = wait(browser).until(
        lambda d: me.find_element(By.CSS_SELECTOR, ".live-responses-table tr.response td.response-col_status")
    )
    assert status.text.strip().startswith("200"), status.text
    assert "anna_token" in me.find_element(By.CSS_SELECTOR, ".live-responses-table").text

    assert_nothing_loaded_from_elsewhere(browser, server)
    if shot := os.environ.get("UGC_DOCS_SCREENSHOT"):
        categories.find_element(By.CSS_SELECTOR, ".opblock-summary").click()  # fold it back for the picture
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(shot)


def assert_nothing_loaded_from_elsewhere(browser: webdriver.Chrome, server: Server) -> None:
    """Every resource came from this server; one from elsewhere is there only if the page's CSP refused it."""
    names = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    blocked = " ".join(e["message"] for e in browser.get_log("browser") if "has been blocked" in e["message"])
    elsewhere = [name for name in names if not name.startswith(server.url + "/")]
    assert all(name in blocked for name in elsewhere), (elsewhere, blocked)


def test_redoc_renders_the_same_document_offline(server: Server, browser: webdriver.Chrome) -> None:
    browser.get(f"{server.url}/api/redoc/")
    wait(browser).until(lambda d: "/api/v1/categories/" in d.find_element(By.ID, "redoc").text)
    assert "Something went wrong" not in browser.find_element(By.ID, "redoc").text
    assert_nothing_loaded_from_elsewhere(browser, server)


# The auditor's page ------------------------------------------------------------------------------

# Every escape of the canonical JSON meets this text twice: as itself in `data`, and inside the
# stored state (its JSON escapes, `\"` and `\\`, escaped once more by the recipe). A C0 control other
# than tab, line feed and carriage return is refused at the edge (api/text.py), so the serializer's
# `\u00XX` is held to Python's in `test_the_pages_canonical_json_is_pythons` instead.
TRICKY = 'Бриф: "кавычки", \\ косая, строка\nвторая,\tтаб, é✓ и 😀'
UPDATES = 97  # with its other five events the order has 102: two pages of the page's 100
UNBROKEN = {"X-Request-ID": "R" * 128}


@dataclass
class Audited:
    server: Server
    env: dict[str, str]
    auditor: dict[str, Any]
    order: int  # placed, updated UPDATES times, accepted, delivered, approved, reviewed
    tampered: int  # placed, accepted, delivered, approved, reviewed; its review edited by a test
    unbroken: int  # placed by a request whose X-Request-ID is the longest one kept: 128 characters, no space
    gapped: int  # placed, accepted, delivered, approved, reviewed; its delivery deleted by a test


def reviewed(api: Api, deal: Deal, updates: int) -> int:
    order: int = place(api, deal, requirements=TRICKY)["id"]
    for number in range(updates):
        changed = api.client.patch(
            f"/api/v1/orders/{order}/", headers=deal.buyer["headers"], json={"requirements": f"{TRICKY} №{number}"}
        )
        assert changed.status_code == 200, changed.text
    act(api, deal.creator, order, "accept")
    act(api, deal.creator, order, "deliveries", {"message": TRICKY}, expect=201)
    act(api, deal.buyer, order, "approve")
    act(api, deal.buyer, order, "reviews", {"content": TRICKY, "rating": 5}, expect=201)
    return order


@pytest.fixture(scope="module")
def audited(
    backend: str, settings: Settings, app_client: TestClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Audited]:
    """Three reviewed orders and an auditor, made in-process; then a real server on the same database."""
    api = Api(app_client, settings)
    deal = a_deal(api)
    order, tampered, gapped = reviewed(api, deal, UPDATES), reviewed(api, deal, 0), reviewed(api, deal, 0)
    unbroken = place(api, Deal(deal.creator, deal.buyer | {"headers": deal.buyer["headers"] | UNBROKEN}, deal.service))
    auditor = grant(api, api.verified_user(), "auditor")
    env = environment(backend, settings.database_url, settings.var_dir)
    with start_server(env, log_dir=tmp_path_factory.mktemp("audit-logs")) as running:
        yield Audited(running, env, auditor, order, tampered, unbroken["id"], gapped)


def record(audited: Audited, order: int) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{audited.server.url}/api/v1/orders/{order}/history/",
        headers=audited.auditor["headers"],
        params={"page_size": 100},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["next"] is None or len(body["results"]) == 100
    entries: list[dict[str, Any]] = body["results"]
    while body["next"]:
        body = httpx.get(body["next"], headers=audited.auditor["headers"]).json()
        entries += body["results"]
    return entries


def audit_sign_in(browser: WebDriver, audited: Audited, password: str = "correct-horse-battery") -> None:
    browser.get(f"{audited.server.url}/audit/")
    wait(browser).until(ec.visibility_of_element_located((By.ID, "username"))).send_keys(audited.auditor["username"])
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "signin-button").click()


def audit_open(browser: WebDriver, order: int | str, as_of: str = "") -> None:
    box = wait(browser).until(ec.visibility_of_element_located((By.ID, "order")))
    box.clear()
    box.send_keys(str(order))
    browser.find_element(By.ID, "as-of").clear()
    browser.find_element(By.ID, "as-of").send_keys(as_of)
    browser.find_element(By.ID, "lookup-button").click()


def verdicts(browser: WebDriver) -> dict[int, tuple[str, str, str]]:
    """Each row's version: its class (`ok`/`broken`), the hash the page computed, and its verdict."""
    found: dict[int, tuple[str, str, str]] = {}
    for row in browser.find_elements(By.CSS_SELECTOR, "#entries tr"):
        verdict = row.find_element(By.CSS_SELECTOR, "td.verdict").text
        found[int(row.get_attribute("data-version") or 0)] = (
            row.get_attribute("class") or "",
            row.get_attribute("data-computed") or "",
            verdict,
        )
    return found


def test_an_auditor_sees_every_event_of_an_order_verified_in_the_browser(
    audited: Audited, browser: webdriver.Chrome
) -> None:
    browser.get_log("browser")  # only this test's console lines below
    audit_sign_in(browser, audited)
    audit_open(browser, audited.order)
    summary = wait(browser).until(lambda d: d.find_element(By.ID, "summary").text)
    entries = record(audited, audited.order)
    assert len(entries) == UPDATES + 5  # two pages of the page's 100: it followed `next`
    assert summary.startswith(f"Запись заказа №{audited.order} подтверждена: {len(entries)} из {len(entries)}")
    shown = verdicts(browser)
    # The hashes the browser computed are the server's, for every event, and every row says so.
    assert shown == {entry["version"]: ("ok", entry["hash"], "✓ проверено") for entry in entries}
    first = browser.find_element(By.CSS_SELECTOR, "#entries tr").text
    buyer = entries[0]["actor"]
    assert "OrderPlaced" in first and f"user / {buyer['id']} / {buyer['username']}" in first and "é✓ и 😀" in first
    assert "ugc verify" in browser.find_element(By.ID, "truncation").text
    # The token lived in the page's memory only: nothing stored, and a reload asks to sign in again.
    assert browser.execute_script("return [localStorage.length, sessionStorage.length, document.cookie]") == [0, 0, ""]
    refused = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not refused, refused  # no script or style refused by the page's CSP, no failed request
    assert_nothing_loaded_from_elsewhere(browser, audited.server)
    browser.refresh()
    assert wait(browser).until(ec.visibility_of_element_located((By.ID, "signin")))
    assert not browser.find_element(By.ID, "lookup").is_displayed()


def test_as_of_cuts_the_record_and_it_still_verifies(audited: Audited, browser: WebDriver) -> None:
    audit_sign_in(browser, audited)
    audit_open(browser, audited.tampered, as_of="3")
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "summary"), "подтверждена: 3 из 3"))
    assert sorted(verdicts(browser)) == [1, 2, 3]


def test_an_edited_stored_event_is_named_and_the_record_does_not_hold(audited: Audited, browser: WebDriver) -> None:
    entries = record(audited, audited.tampered)
    review = entries[-1]
    assert review["type"] == "OrderReviewed" and review["data"]["rating"] == 5
    edited = review["payload"].replace('"rating":5', '"rating":1')
    assert edited != review["payload"]
    # An intruder with database access rewrites the stored review (the test database has no
    # append-only triggers: deploy/append-only.sql is the operator's): the API now serves rating 1.
    Log(audited.env["UGC_DATABASE_URL"], audited.env, {}).set_state(review["position"], edited.encode())
    assert record(audited, audited.tampered)[-1]["data"]["rating"] == 1
    audit_sign_in(browser, audited)
    audit_open(browser, audited.tampered)
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "summary"), "НЕ подтверждается"))
    assert "ошибки в 1 из 5 событий (версии 5)" in browser.find_element(By.ID, "summary").text
    shown = verdicts(browser)
    assert [shown[version][0] for version in range(1, 6)] == ["ok", "ok", "ok", "ok", "broken"]
    assert shown[5][2].startswith("hash не совпадает с пересчитанным ") and shown[5][1] != review["hash"]
    assert "ugc verify" in browser.find_element(By.ID, "truncation").text


def test_an_event_deleted_from_the_log_is_named_at_the_gap_alone(audited: Audited, browser: WebDriver) -> None:
    """A removed event is named where its successor stands, and only there: the rows after it follow
    their predecessor and verify. Counting the expected version by row, the page named every later row
    ("ожидалась версия 4: событие пропущено или переставлено" for the review, which follows its
    version 4 right before it)."""
    entries = record(audited, audited.gapped)
    assert [entry["type"] for entry in entries][2] == "WorkDelivered"
    delivery = entries[2]["position"]
    Log(audited.env["UGC_DATABASE_URL"], audited.env, {}).sql(
        "DELETE FROM {events} WHERE notification_id = %s", "DELETE FROM {events} WHERE rowid = ?", delivery
    )
    assert [entry["version"] for entry in record(audited, audited.gapped)] == [1, 2, 4, 5]
    audit_sign_in(browser, audited)
    audit_open(browser, audited.gapped)
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "summary"), "НЕ подтверждается"))
    assert "ошибки в 1 из 4 событий (версии 4)" in browser.find_element(By.ID, "summary").text
    shown = verdicts(browser)
    assert {version: shown[version][0] for version in shown} == {1: "ok", 2: "ok", 4: "broken", 5: "ok"}
    assert shown[4][2].startswith(
        "ожидалась версия 3: событие пропущено или переставлено; previous_hash не совпадает с hash предыдущего события"
    )


def test_each_field_of_an_event_is_one_line_of_its_data_cell(audited: Audited, browser: WebDriver) -> None:
    """A text a party wrote is shown as the CLI's table writes it, quoted, its line breaks escaped: shown
    raw, the placing's requirements ("…строка\\nвторая…") spread over two lines of the cell, so that a
    buyer's text could put a line of its own making ("total_price: 1") among the event's fields."""
    entries = record(audited, audited.tampered)
    audit_sign_in(browser, audited)
    audit_open(browser, audited.tampered)
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "summary"), f"Запись заказа №{audited.tampered}"))
    cells = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#entries td.data")]
    assert len(cells) == len(entries)
    for entry, cell in zip(entries, cells, strict=True):
        lines = cell.split("\n") if cell else []
        assert [line.split(": ", 1)[0] for line in lines] == list(entry["data"]), (entry["type"], cell)
    assert f"requirements: {json.dumps(TRICKY, ensure_ascii=False)}" in cells[0].split("\n")


def test_a_long_unbroken_value_wraps_in_its_cell_and_every_verdict_stays_in_view(
    audited: Audited, browser: WebDriver
) -> None:
    """A request id of 128 characters without a space (or a username of 150) is broken inside its
    cell: the table no longer grows past the window and pushes the verdicts out of sight."""
    audit_sign_in(browser, audited)
    audit_open(browser, audited.unbroken)
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "summary"), "подтверждена: 1 из 1"))
    cells = browser.find_elements(By.CSS_SELECTOR, "#entries tr td")
    assert "".join(cells[4].text.split()) == UNBROKEN["X-Request-ID"]  # all of it shown, over several lines
    page, window = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert page <= window, (page, window)
    verdict = browser.find_element(By.CSS_SELECTOR, "#entries td.verdict").rect
    assert verdict["x"] + verdict["width"] <= window, (verdict, window)


# Each of the page's requests waits in `window.held` until the test lets it go: a gate, not a timer.
HOLD_REQUESTS = """
const real = window.fetch;
window.held = [];
window.fetch = (...args) => new Promise((resolve) => window.held.push(() => resolve(real(...args))));
"""
RELEASE_UNTIL_DONE = """
window.held.splice(0).forEach((go) => go());
return !document.getElementById("lookup-button").disabled;
"""


def test_signing_out_during_a_lookup_shows_nothing_of_it(audited: Audited, browser: WebDriver) -> None:
    """Sign-out while a record is on its way: what arrives after is dropped. The lookup went on with
    the token gone, so a one-page record was drawn on the signed-out page, under the sign-in form,
    for whoever sits down next, and a longer one failed on its next page with JavaScript's English
    "Cannot read properties of null"."""
    for order in (audited.tampered, audited.order):  # one page, then two
        audit_sign_in(browser, audited)
        wait(browser).until(ec.visibility_of_element_located((By.ID, "order")))
        browser.execute_script(HOLD_REQUESTS)
        audit_open(browser, order)
        wait(browser).until(lambda d: d.execute_script("return window.held.length") == 1)
        browser.find_element(By.ID, "signout").click()
        wait(browser).until(lambda d: d.execute_script(RELEASE_UNTIL_DONE))
        assert browser.find_element(By.ID, "signin").is_displayed()
        assert not browser.find_element(By.ID, "record").is_displayed()
        assert not browser.find_elements(By.CSS_SELECTOR, "#entries tr")
        assert browser.find_element(By.ID, "summary").text == ""
        assert browser.find_element(By.ID, "message").text == ""


def test_the_page_shows_the_apis_russian_messages(audited: Audited, browser: WebDriver) -> None:
    audit_sign_in(browser, audited, password="wrong-password-1")
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "message"), "Неверное имя пользователя или пароль."))
    assert browser.find_element(By.ID, "signin").is_displayed()
    browser.find_element(By.ID, "password").clear()
    browser.find_element(By.ID, "password").send_keys("correct-horse-battery")
    browser.find_element(By.ID, "signin-button").click()
    audit_open(browser, 987654321)
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "message"), "Страница не найдена."))
    assert not browser.find_element(By.ID, "record").is_displayed()
    assert browser.find_element(By.ID, "summary").text == ""
    audit_open(browser, audited.order, as_of="вчера")
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "message"), "Ошибка валидации данных."))
    # A name whose failures reached the throttle's 10 (from this address too: 12 of its 30 in all).
    for _ in range(10):
        failed = httpx.post(
            f"{audited.server.url}/api/auth/token/", json={"username": "audit_nobody", "password": "wrong-password-1"}
        )
        assert failed.status_code == 401, failed.text
    browser.find_element(By.ID, "signout").click()
    browser.find_element(By.ID, "username").clear()
    browser.find_element(By.ID, "username").send_keys("audit_nobody")
    browser.find_element(By.ID, "password").send_keys("wrong-password-1")
    browser.find_element(By.ID, "signin-button").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "message"), "Слишком много неудачных попыток."))
    assert re.search(r"\(через \d+ с\)$", browser.find_element(By.ID, "message").text)


# Keys that JavaScript's default sort orders unlike Python (U+FF01 after U+1F600 by UTF-16 unit),
# and every escape json.dumps writes: the short ones, `\u00XX` for the other controls, none for DEL.
CANONICAL_CASES: list[Any] = [
    {"\uff01": 1, "😀": 2, "b": None, "a": [True, False, -7], "Я": {"z": "", "y": 0}},
    '"\\/\b\f\n\r\t\u0000\u0001\u001f\u007f é✓😀',
    [9007199254740991, "\u2028\u2029", {}],
]


@pytest.mark.parametrize("value", CANONICAL_CASES, ids=["key order", "escapes", "integers and lines"])
def test_the_pages_canonical_json_is_pythons(server: Server, browser: WebDriver, value: Any) -> None:
    browser.get(f"{server.url}/audit/")
    wait(browser).until(lambda d: d.execute_script("return typeof canonicalJson === 'function'"))
    python = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert browser.execute_script("return canonicalJson(arguments[0])", value) == python
    # The hash over it, as entryHash takes an entry: the bytes after the 32 of the previous hash.
    entry = {"recorded_at": "2026-12-05T10:00:00.5+01:00", "payload": python, "stream": "s", "topic": "t", "version": 3}
    document: dict[str, Any] = {"context": "orders", "recorded_at": "2026-12-05T09:00:00.500000Z", "state": python}
    document |= {"stream": "s", "topic": "t", "version": 3}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    expected = hashlib.sha256(bytes.fromhex("ab" * 32) + canonical).hexdigest()
    computed = browser.execute_async_script(
        "entryHash(arguments[0], arguments[1]).then(arguments[2], (e) => arguments[2](String(e)))", "ab" * 32, entry
    )
    assert computed == expected


def shown_entry(kept: dict[str, Any]) -> dict[str, Any]:
    """The history entry the API serves for a stored order event (its chain left out: not what this checks)."""
    stored = as_stored(kept)
    assert isinstance(stored.originator_id, UUID)
    recorded = RecordedEvent(
        context="orders",
        position=1,
        stream=stored.originator_id,
        version=stored.originator_version,
        topic=stored.topic,
        state=stored.state,
        recorded_at=None,
        hash=None,
        previous_hash=None,
        link=None,
    )
    shown: dict[str, Any] = json.loads(dumps(record_entry(MAPPER.to_domain_event(stored), recorded, {})))
    return shown


def page_differences(browser: WebDriver, entry: dict[str, Any]) -> list[str]:
    differences: list[str] = browser.execute_script(
        "return shownDifferences(arguments[0], JSON.parse(arguments[0].payload))", entry
    )
    return differences


ORDER_PAYLOADS = sorted(FIXTURES.glob("ugc.Order.*/v*.json"))


@pytest.mark.parametrize("path", ORDER_PAYLOADS, ids=lambda path: f"{path.parent.name}-{path.stem}")
def test_every_stored_version_of_an_order_event_shows_only_what_its_payload_holds(
    server: Server, browser: WebDriver, path: Path
) -> None:
    """An intact event of an older version verifies, on the page as by the third party's check: a
    field its upcaster adds as null (`erased_party` of a cancellation before version 3) tells
    nothing the payload does not, where a named record of an intact log would alarm an auditor."""
    entry = shown_entry(json.loads(path.read_text()))
    assert third_party_check.shown_differs(entry) is None
    browser.get(f"{server.url}/audit/")
    wait(browser).until(lambda d: d.execute_script("return typeof shownDifferences === 'function'"))
    assert page_differences(browser, entry) == []


def test_a_value_shown_for_a_field_the_payload_lacks_is_still_named(server: Server, browser: WebDriver) -> None:
    entry = shown_entry(json.loads((FIXTURES / "ugc.Order.Cancelled" / "v2.json").read_text()))
    assert "erased_party" not in json.loads(entry["payload"]) and entry["data"]["erased_party"] is None
    entry["data"]["erased_party"] = 2  # a party the old cancellation never named
    assert third_party_check.shown_differs(entry) == "data.erased_party is not in the payload"
    browser.get(f"{server.url}/audit/")
    wait(browser).until(lambda d: d.execute_script("return typeof shownDifferences === 'function'"))
    assert page_differences(browser, entry) == ["data.erased_party: этого поля нет в захешированных данных"]
