"""The dashboard in a real browser for the browser tests of every folder: Debian's chromium driven
by Playwright against a real daphne on the test database, and the project's simulated chargers
on its OCPP endpoint.

tests/conftest.py registers this module's fixtures (pytest_plugins): `server`, one daphne per
test module, and `dashboard`, a browser and its chargers per test. Database work a test does
itself goes through `orm`: Playwright's sync API holds the test's thread.
"""

import asyncio
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.support import ROOT
from tests.support.personas import CHARGER_PASSWORD, PASSWORD, Personas
from tests.support.servers import free_port, server_env, wait_for_port
from tools.simulator import ChargerConfig, VirtualCharger

CHROMIUM = "/usr/bin/chromium"
LIVE = 2_000  # ms: a change must show within this, without a reload
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


# The app as `make run` serves it, plus our static files (daphne alone serves none), started
# with exec: a forked server would inherit this process's executor threads as dead ones.
SERVE = """
import sys
import django
django.setup()
from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from csms.asgi import application
Server(ASGIStaticFilesHandler(application),
       endpoints=build_endpoint_description_strings(host="127.0.0.1", port=int(sys.argv[1])),
       signal_handlers=True).run()
"""


@pytest.fixture(scope="module")
def server(django_db_setup) -> Iterator[str]:
    """A daphne process on the test database; its address (http://127.0.0.1:port)."""
    port = free_port()
    log = open(ROOT / f"test-artifacts/browser-daphne-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], cwd=ROOT,
                               env=server_env(DJANGO_SETTINGS_MODULE="csms.settings"),
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


class ChargerThread:
    """A simulated charger on its own event loop, so the test thread can drive it step by step
    while Playwright's sync API holds this one."""

    def __init__(self, server: str, station_id: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.charger = VirtualCharger(ChargerConfig(
            station_id=station_id, version="1.6", url=f"{server.replace('http', 'ws')}/ocpp/",
            password=CHARGER_PASSWORD, meter_interval=1.0, power_w=7400.0))

    def do(self, coroutine, seconds: float = 15):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(seconds)

    def close(self) -> None:
        if self.charger.connected:
            self.do(self.charger.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Dashboard:
    """A browser on the dashboard, and chargers on its OCPP endpoint, for one test."""

    def __init__(self, server: str, browser: Browser) -> None:
        self.server = server
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.chargers: list[ChargerThread] = []

    def close(self) -> None:
        for charger in self.chargers:
            charger.close()
        for context in self.contexts:
            context.close()

    def page(self, viewport: dict = DESKTOP, **options) -> Page:
        context = self.browser.new_context(viewport=viewport, **options)
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm's questions
        return page

    def log_in(self, page: Page, username: str = "operator") -> None:
        page.goto(f"{self.server}/")
        expect(page).to_have_url(re.compile(r"/accounts/login/"))
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    def visit_live(self, page: Page, path: str) -> None:
        page.goto(f"{self.server}{path}")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")

    def charger(self, station_id: str) -> VirtualCharger:
        """A 1.6 charger, connected and booted, its connector available."""
        thread = ChargerThread(self.server, station_id)
        self.chargers.append(thread)
        thread.do(thread.charger.connect())
        thread.do(thread.charger.boot())
        return thread


def orm(function, *args):
    """Database work on a thread of its own: Playwright's sync API runs an event loop on the
    test's thread, where Django refuses ORM calls (and sync-to-async bridges fail)."""

    def work():
        try:
            return function(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()


@pytest.fixture
def dashboard(server: str, personas: Personas) -> Iterator[Dashboard]:
    # Playwright starts after the personas are in, and stops before the database is flushed.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        session = Dashboard(server, browser)
        try:
            yield session
        finally:
            session.close()
            browser.close()
