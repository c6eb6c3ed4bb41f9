"""The web page (CONTRACT §11, issue 16): its reads through httpx on every database, then the page itself
in Debian's headless Chromium against a real server (uvicorn in a thread, SQLite).

The browser is driven by selenium through /usr/bin/chromedriver (benchmarks.browser). Without Chromium
the browser tests are skipped, except under CI=true where that is a failure (`make test` installs it
with scripts/ensure-chromium). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from benchmarks import browser
from eventstore import Asset, Store, Writer
from eventstore.server import create_app
from eventstore.tokens import create_token

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ORDERS = Asset("orders", "s3://data/orders/")
ETL = Writer.task("etl", "run-1", "load")


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store)) as opened:
        yield opened


# --- the page's reads, on every database ------------------------------------------------------------


def test_asset_overview_counts_keys_and_gives_the_last_change(client: TestClient, store: Store) -> None:
    orders = store.asset(ORDERS, ETL)
    store.activate(ORDERS)
    orders.set("a", 1)
    orders.set("b", 2)
    orders.delete("a")
    store.activate(Asset("Users"))
    store.deactivate(Asset("Users"))
    answer = client.get("/api/v2/asset-overview").json()
    assert answer["total_entries"] == 2
    assert answer["last_position"] == store.events()[-1].position
    first, second = answer["assets"]
    assert (first["name"], first["active"], first["key_count"]) == ("orders", True, 1)
    assert (second["name"], second["active"], second["key_count"]) == ("Users", False, 0)
    last = store.history(ORDERS, newest_first=True, limit=1)[0]
    assert datetime.fromisoformat(first["last_change_at"]) == last.recorded_at

    def names(**params: Any) -> list[str]:
        return [a["name"] for a in client.get("/api/v2/asset-overview", params=params).json()["assets"]]

    assert names(name="USE") == ["Users"]
    assert names(name="data/ord") == ["orders"]
    assert names(active="false") == ["Users"]
    by_id = client.get(f"/api/v2/asset-overview?id={first['id']}").json()
    assert [a["name"] for a in by_id["assets"]] == ["orders"] and by_id["total_entries"] == 1
    assert client.get("/api/v2/asset-overview?limit=0").json()["assets"] == []


def test_state_timeline_buckets_a_keys_history(client: TestClient, store: Store) -> None:
    store.activate(ORDERS)
    orders = store.asset(ORDERS, ETL)
    for n in (5, 1, 9, 3):
        orders.set("rows", n)
    orders.set("other", "x")
    orders.clear()  # removes rows: a change of rows
    orders.clear()  # removes nothing: not a change of rows
    orders.set("rows", 7)
    asset_id = store.assets(name="orders")[0].id
    one = client.get(f"/api/v2/assets/{asset_id}/state-timeline", params={"key": "rows", "buckets": 1}).json()
    assert one["kind"] == "number" and one["total_entries"] == 6
    [bucket] = one["buckets"]
    assert (bucket["count"], bucket["min"], bucket["max"]) == (6, 1, 9)
    assert bucket["last"]["value"] == 7 and bucket["last"]["writer"]["dag_id"] == "etl"
    many = client.get(f"/api/v2/assets/{asset_id}/state-timeline", params={"key": "rows"}).json()
    assert sum(b["count"] for b in many["buckets"]) == 6
    assert [b["last"]["op"] for b in many["buckets"]][-2:] == ["clear", "set"] or len(many["buckets"]) < 6
    assert many["first_at"] <= many["last_at"]

    orders.set("watermark", "2024-06-01T00:00:00+00:00")
    orders.set("watermark", "2024-06-02T00:00:00Z")
    times = client.get(f"/api/v2/assets/{asset_id}/state-timeline", params={"key": "watermark"}).json()
    assert times["kind"] == "time"
    lows = [b["min"] for b in times["buckets"]]
    assert min(lows) == datetime(2024, 6, 1, tzinfo=UTC).timestamp() * 1000
    other = client.get(f"/api/v2/assets/{asset_id}/state-timeline", params={"key": "other"}).json()
    assert other["kind"] == "other"
    empty = client.get(f"/api/v2/assets/{asset_id}/state-timeline", params={"key": "never"}).json()
    assert (empty["total_entries"], empty["buckets"]) == (0, [])
    assert client.get("/api/v2/assets/987654/state-timeline", params={"key": "rows"}).status_code == 404
    assert client.get(f"/api/v2/assets/{asset_id}/state-timeline", params={"key": ""}).status_code == 422


def test_key_changes_pages_newest_first_by_position(client: TestClient, store: Store) -> None:
    store.activate(ORDERS)
    orders = store.asset(ORDERS, ETL)
    for n in range(5):
        orders.set("rows", n)
    orders.clear()
    orders.clear()  # removed nothing
    orders.set("rows", 99)
    asset_id = store.assets(name="orders")[0].id
    expected = [c.position for c in store.history(ORDERS, "rows", newest_first=True)]
    url = f"/api/v2/assets/{asset_id}/key-changes"
    seen: list[int] = []
    before = None
    while True:
        cursor = {} if before is None else {"before": before}
        page = client.get(url, params={"key": "rows", "limit": 3, **cursor}).json()
        seen += [c["position"] for c in page["changes"]]
        assert len(page["changes"]) <= 3
        before = page["next_before"]
        if before is None:
            break
    assert len(expected) == 7 and seen == expected
    first = client.get(url, params={"key": "rows", "limit": 2}).json()["changes"]
    assert [c["op"] for c in first] == ["set", "clear"] and first[0]["value"] == 99


def test_the_page_needs_no_token_but_its_data_does(store: Store) -> None:
    token = create_token(store, "viewer", "read")
    with TestClient(create_app(store)) as client:
        page = client.get("/")
        assert page.status_code == 200 and "<title>eventstore</title>" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
            response = client.get(f"/static/{name}")
            assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        assert client.get("/static/missing.js").status_code == 404
        assert client.get("/static/..%2Fapp.py").status_code == 404
        assert client.get("/api/v2/asset-overview").status_code == 401
        assert client.get("/api/v2/session").json() == {"tokens_required": True, "name": None, "scope": None}
        bearer = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v2/session", headers=bearer).json() == {
            "tokens_required": True, "name": "viewer", "scope": "read"
        }  # fmt: skip
        assert client.get("/api/v2/asset-overview", headers=bearer).status_code == 200


def test_the_benchmarks_loader_writes_a_consistent_store(tmp_path: Path) -> None:
    from benchmarks.web import BIG, HOT_KEY, load_web
    from eventstore import open_store

    url = f"sqlite:///{tmp_path / 'bench.db'}"
    open_store(url).close()
    loaded = load_web(url, events=500, key_changes=20)
    with open_store(url) as store:
        assert len(store.history(BIG, HOT_KEY)) == loaded.hot_key_changes == 20
        assert len(store.history(BIG)) == 500 and store.verify_projections() == []
        timeline = client_timeline(store, loaded.asset_id, HOT_KEY)
        assert timeline["kind"] == "number" and timeline["total_entries"] == 20


def client_timeline(store: Store, asset_id: int, key: str) -> dict[str, Any]:
    with TestClient(create_app(store)) as client:
        answer: dict[str, Any] = client.get(
            f"/api/v2/assets/{asset_id}/state-timeline", params={"key": key}
        ).json()
        return answer


# --- the page in headless Chromium --------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    not browser.available() and os.environ.get("CI") != "true",
    reason="Chromium is not installed (make test installs it: scripts/ensure-chromium)",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A served SQLite store with two assets, a history and two tokens."""
    from eventstore import open_store

    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('web') / 'web.db'}")
    store.activate(ORDERS)
    orders = store.asset(ORDERS, ETL)
    for i in range(30):
        orders.set("rows", i * 10 + (i % 4) * 25)
        orders.set("watermark", f"2024-06-{1 + i % 28:02d}T00:00:00+00:00")
    orders.set("config", {"mode": "full", "retries": 3})
    orders.delete("config")
    orders.set("config", {"mode": "incremental"})
    store.activate(Asset("users"))
    store.asset(Asset("users"), Writer.watcher()).set("count", 3)
    store.activate(Asset("archived"))
    store.deactivate(Asset("archived"))
    tokens = {
        "read": create_token(store, "viewer", "read"),
        "write": create_token(store, "operator", "write"),
    }
    with browser.serving(create_app(store)) as base:
        yield {"store": store, "base": base, "tokens": tokens}
    store.close()


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    with browser.chromium() as opened:
        opened.get("about:blank")
        browser.requested_urls(opened)  # what the browser loads at start is not the page's
        opened.get_log("browser")
        yield opened


def open_page(driver: Any, site: dict[str, Any], fragment: str) -> None:
    driver.get(f"{site['base']}/{fragment}")


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("timed out")


def ready(driver: Any) -> None:
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready === '1'"))


def visible(driver: Any) -> str:
    text: str = driver.find_element("tag name", "body").text
    return text


def enter_token(driver: Any, token: str) -> None:
    from selenium.webdriver.common.by import By

    wait_for(lambda: driver.execute_script("return document.getElementById('token-dialog').open"))
    field = driver.find_element(By.ID, "token-input")
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()


def screenshot(driver: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 800), 4000))
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    driver.set_window_size(1280, 1000)


def assert_clean(driver: Any, site: dict[str, Any]) -> None:
    """No console errors; every request went to the server on 127.0.0.1 (or was data:/blob:)."""
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    urls = browser.requested_urls(driver)
    assert urls, "the performance log recorded no request"
    outside = [u for u in urls if not (u.startswith(site["base"] + "/") or u.startswith(("data:", "blob:")))]
    assert outside == []


@needs_chromium
def test_every_page_renders_offline_without_console_errors(driver: Any, site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    open_page(driver, site, "#/")
    enter_token(driver, site["tokens"]["read"])
    ready(driver)
    text = visible(driver)
    assert "Token: viewer (read)" in text and "3 assets" in text
    row = driver.find_element(By.XPATH, "//table[@id='assets']//tr[th/a[text()='orders']]").text
    assert "s3://data/orders/" in row and "active" in row and " 3 " in f" {row} "  # rows, watermark, config
    assert "inactive" in driver.find_element(By.XPATH, "//tr[th/a[text()='archived']]").text
    screenshot(driver, "assets")

    # Search by name: typing filters the list (debounced), and the URL keeps it.
    driver.find_element(By.ID, "asset-search").send_keys("USER")
    wait_for(lambda: "1 asset" in driver.find_element(By.CSS_SELECTOR, "#assets caption").text)
    assert [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#assets tbody a")] == ["users"]
    driver.find_element(By.CSS_SELECTOR, "input[name=active][value=false]").click()
    wait_for(lambda: "No assets match" in driver.find_element(By.CSS_SELECTOR, "#assets caption").text)

    # An asset's page: keys with last writers, the first key's history and chart.
    orders_id = site["store"].assets(name="orders")[0].id
    open_page(driver, site, f"#/asset/{orders_id}?key=rows")
    ready(driver)
    text = visible(driver)
    assert "orders" in text and "3 keys now" in text
    assert "task etl.load (run-1)" in text
    assert "History of rows" in text and "30 changes" in text
    points = driver.find_elements(By.CSS_SELECTOR, "figure.chart circle.pt")
    assert len(points) == 30
    tip = points[-1].find_element(By.TAG_NAME, "title").get_attribute("textContent")
    assert "task etl.load (run-1)" in tip and "position" in tip
    assert driver.find_elements(By.CSS_SELECTOR, "figure.chart path.step")
    screenshot(driver, "asset-page")

    # A non-numeric key: points on a line, the delete shown.
    open_page(driver, site, f"#/asset/{orders_id}?key=config")
    ready(driver)
    assert "3 changes" in visible(driver)
    assert [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#changes tbody td:nth-child(2)")] == [
        "set", "delete", "set"
    ]  # fmt: skip

    # The as-of picker: the state at a chosen moment, beside now.
    moment = site["store"].history(ORDERS, "rows")[4].recorded_at
    picker = driver.find_element(By.ID, "asof-input")
    driver.execute_script(
        "arguments[0].value = arguments[1]", picker, moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23]
    )
    driver.find_element(By.CSS_SELECTOR, "#asof-form button[type=submit]").click()
    ready(driver)
    wait_for(lambda: "Showing the state as of" in visible(driver))
    then = site["store"].state_as_of(ORDERS, at=moment)
    row = driver.find_element(By.XPATH, "//table[@id='keys']//tr[th//button[text()='rows']]").text
    assert f" {then['rows']} " in f" {row} "

    open_page(driver, site, "#/feed")
    ready(driver)
    assert "Live feed" in visible(driver) and "users" in visible(driver)
    screenshot(driver, "feed")
    assert_clean(driver, site)


@needs_chromium
def test_the_feed_updates_live(driver: Any, site: dict[str, Any]) -> None:
    open_page(driver, site, "#/feed")
    ready(driver)
    site["store"].asset(Asset("users"), Writer.watcher()).set("fresh-key", 42)
    wait_for(lambda: "fresh-key" in visible(driver), timeout=30)  # a few polls, on a busy machine too
    assert_clean(driver, site)


@needs_chromium
def test_a_restore_through_the_page_records_the_tokens_name(driver: Any, site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    store: Store = site["store"]
    orders_id = store.assets(name="orders")[0].id
    target = store.history(ORDERS, "rows")[9]
    driver.execute_script("sessionStorage.clear()")  # a new visitor, in a fresh document
    driver.get("about:blank")
    open_page(driver, site, f"#/asset/{orders_id}?key=rows&position={target.position}")
    enter_token(driver, site["tokens"]["read"])
    ready(driver)

    # With a read token: a clear message, and nothing written.
    before = store.history(ORDERS, newest_first=True, limit=1)[0].position
    driver.find_element(By.ID, "restore").click()
    alert = wait_for(lambda: driver.find_element(By.ID, "alert").text)
    assert "needs a token with the write scope" in alert and "viewer" in alert
    assert store.history(ORDERS, newest_first=True, limit=1)[0].position == before
    screenshot(driver, "restore-refused")

    # Another token (the alert's button, by keyboard), then restore and confirm.
    focused = driver.switch_to.active_element
    assert focused.text == "Use another token…"
    focused.send_keys(Keys.ENTER)
    enter_token(driver, site["tokens"]["write"])
    ready(driver)
    wait_for(lambda: "Token: operator (write)" in visible(driver))
    driver.find_element(By.ID, "restore").click()
    wait_for(lambda: driver.execute_script("return document.getElementById('confirm-dialog').open"))
    assert "Restore orders?" in driver.find_element(By.ID, "confirm-dialog").text
    screenshot(driver, "restore-confirm")
    driver.find_element(By.ID, "confirm-ok").click()
    wait_for(lambda: "Restored orders" in driver.find_element(By.ID, "alert").text)

    landed = store.history(ORDERS, since=target.recorded_at)
    restored = [c for c in landed if c.position > before]
    assert restored and all(c.writer.user == "operator" and c.writer.kind.value == "api" for c in restored)
    assert store.asset(ORDERS).get("rows") == target.value
    assert_clean(driver, site)
