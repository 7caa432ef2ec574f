"""Browser tests: the pages the app serves, in headless Chromium against a real `ugc serve`.

Chromium and its driver are Debian's `chromium` and `chromium-driver` (.ci/run installs them);
the tests skip only when they are not installed. `UGC_DOCS_SCREENSHOT=path` keeps a screenshot of
the Swagger UI page (docs/swagger-ui.png was made that way).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest

from tests.backends import environment
from tests.servers import Server, start_server

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
def browser() -> Iterator[WebDriver]:
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


def test_swagger_ui_renders_every_operation_and_tries_one_with_a_token(server: Server, browser: WebDriver) -> None:
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


def assert_nothing_loaded_from_elsewhere(browser: WebDriver, server: Server) -> None:
    """Every resource came from this server; one from elsewhere is there only if the page's CSP refused it."""
    names = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    blocked = " ".join(e["message"] for e in browser.get_log("browser") if "has been blocked" in e["message"])
    elsewhere = [name for name in names if not name.startswith(server.url + "/")]
    assert all(name in blocked for name in elsewhere), (elsewhere, blocked)


def test_redoc_renders_the_same_document_offline(server: Server, browser: WebDriver) -> None:
    browser.get(f"{server.url}/api/redoc/")
    wait(browser).until(lambda d: "/api/v1/categories/" in d.find_element(By.ID, "redoc").text)
    assert "Something went wrong" not in browser.find_element(By.ID, "redoc").text
    assert_nothing_loaded_from_elsewhere(browser, server)
