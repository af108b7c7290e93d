"""The dashboard in a real browser (Debian's chromium driven by Playwright) against a real
daphne, with a simulated charger on the OCPP endpoint (tests/support/browser.py): changes a
charger makes show without a reload, remote start and stop run end to end, and the main pages
are shot at desktop and phone widths into docs/screenshots/ (the README shows them).

Changes reach the page the way they do in production: the charger speaks to the gateway in the
server process, the gateway writes through the services, the events go to the page's socket.
"""

import os
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Site
from stations import records
from stations.models import (
    Call,
    MessageLog,
    RefusedConnection,
    Station,
    StationEvent,
    Transaction,
    TransactionMessage,
)
from stations.services import batch, device, presence, registration, transactions
from tests.support import ROOT
from tests.support.browser import DESKTOP, LIVE, PHONE, Dashboard, orm
from tests.support.personas import Personas, make_station

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every run takes the screenshots (a page that fails to render fails the test); the README's
# copies in docs/screenshots/ are refreshed only on request: `make screenshots`.
SCREENSHOTS = ROOT / ("docs" if os.environ.get("UPDATE_SCREENSHOTS") else "test-artifacts") / (
    "screenshots")


# --- live updates ------------------------------------------------------------------------------

def test_a_chargers_changes_show_without_reload(dashboard: Dashboard):
    page = dashboard.page()
    dashboard.log_in(page)
    dashboard.visit_live(page, "/stations/STATION-A/")
    expect(page.locator("#station-identity")).to_contain_text("never connected")

    charger = dashboard.charger("STATION-A")
    expect(page.locator("#station-identity")).to_contain_text("Online", timeout=LIVE)
    expect(page.locator("#station-identity")).to_contain_text("SimVendor", timeout=LIVE)

    charger.do(charger.charger.status(1, "Faulted", error_code="GroundFailure"))
    connectors = page.locator("#connectors")
    expect(connectors).to_contain_text("Faulted", timeout=LIVE)
    expect(connectors).to_contain_text("GroundFailure", timeout=LIVE)

    # The overview counts it too, and lists it among the alerts.
    dashboard.visit_live(page, "/")
    charger.do(charger.charger.status(1, "Available"))
    expect(page.locator("#counters .counter.ok .value")).to_have_text("1", timeout=LIVE)
    expect(page.locator("#alerts")).to_contain_text("GroundFailure")


def test_the_message_log_is_live_until_the_user_logs_out(dashboard: Dashboard):
    """The station's frames appear in its log as the charger sends them; logging out in another
    tab stops the page at once, and it says why."""
    page = dashboard.page()
    dashboard.log_in(page)
    charger = dashboard.charger("STATION-A")
    dashboard.visit_live(page, "/stations/STATION-A/")
    newest = page.locator("#message-log tbody tr").first
    expect(newest).not_to_contain_text("Heartbeat")
    charger.do(charger.charger.heartbeat())
    expect(newest).to_contain_text("Heartbeat", timeout=LIVE)
    heartbeats = page.locator("#message-log tbody tr", has_text="Heartbeat")
    seen = heartbeats.count()

    other_tab = page.context.new_page()
    other_tab.goto(f"{dashboard.server}/")
    other_tab.get_by_role("button", name="Log out").click()
    expect(other_tab).to_have_url(re.compile(r"/accounts/login/|/$"))
    expect(page.locator("#live")).to_have_text("Your access changed: reload the page",
                                               timeout=LIVE)
    charger.do(charger.charger.heartbeat())
    page.wait_for_timeout(1000)  # a push would have come within the page's 0.2 s pause
    assert heartbeats.count() == seen


def test_a_dropped_socket_reconnects_and_catches_up(dashboard: Dashboard, site_a):
    page = dashboard.page()
    dashboard.log_in(page)
    charger = dashboard.charger("STATION-A")
    charger.do(charger.charger.status(1, "Available"))

    # The page's socket runs through a relay that can lose messages and drop the line.
    relays = []

    def relay(route) -> None:
        server = route.connect_to_server()
        state = {"deliver": True}
        server.on_message(lambda message: route.send(message) if state["deliver"] else None)
        relays.append((route, state))

    page.route_web_socket(re.compile(r"/ws/dashboard/"), relay)
    dashboard.visit_live(page, f"/sites/{site_a.pk}/")
    row = page.locator("#station-STATION-A")
    expect(row).to_contain_text("1 Available")

    route, state = relays[0]
    state["deliver"] = False  # the network loses what the server sends...
    charger.do(charger.charger.status(1, "Charging"))
    page.wait_for_timeout(500)
    expect(row).to_contain_text("1 Available")
    route.close(code=1012, reason="restart")  # ...and then the line drops
    # The ws extension reconnects on its own, and the new socket catches up.
    expect(row).to_contain_text("1 Occupied", timeout=5_000)
    assert len(relays) == 2


# --- remote actions, end to end ----------------------------------------------------------------

def test_remote_start_and_stop_with_a_simulated_charger(dashboard: Dashboard):
    charger = dashboard.charger("STATION-A")
    charger.do(charger.charger.status(1, "Available"))
    page = dashboard.page()
    dashboard.log_in(page)
    dashboard.visit_live(page, "/stations/STATION-A/")
    expect(page.locator("#current-sessions")).to_contain_text("No session running")

    page.get_by_label("ID token").fill("TOKEN-OPERATOR")
    page.get_by_role("button", name="Start", exact=True).click()
    result = page.locator("#action-result")
    expect(result).to_contain_text("RemoteStartTransaction: Accepted")
    assert charger.charger.received_calls[0][0] == "RemoteStartTransaction"

    session = page.locator("#current-sessions")
    expect(session).to_contain_text("TOKEN-OPERATOR", timeout=LIVE)
    # Meter values every second: power and a growing energy, pushed live.
    expect(session).to_contain_text("7.4 kW", timeout=5_000)
    expect(session.locator("dd").nth(1)).to_have_text(
        re.compile(r"0\.0*[1-9]\d* kWh"), timeout=5_000)

    page.get_by_role("button", name="Stop session").click()
    expect(result).to_contain_text("RemoteStopTransaction: Accepted")
    expect(session).to_contain_text("No session running", timeout=LIVE)
    recent = page.locator("#recent-sessions tbody tr").first
    expect(recent).to_contain_text("Completed", timeout=LIVE)
    expect(page.locator("#calls")).to_contain_text("RemoteStopTransaction")

    tx = orm(lambda: Transaction.objects.get(station_id="STATION-A"))
    assert tx.state == Transaction.State.COMPLETED and tx.energy_wh > 0
    assert tx.id_token_value == "TOKEN-OPERATOR"
    expect(recent).to_contain_text(f"{tx.energy_wh / 1000:.3f} kWh")
    calls = orm(lambda: list(Call.objects.order_by("created_at").values_list("action", "status")))
    assert calls == [("RemoteStartTransaction", "accepted"), ("RemoteStopTransaction", "accepted")]


def test_an_offline_station_answers_not_connected_and_finance_has_no_buttons(
        dashboard: Dashboard, site_a):
    orm(lambda: make_station("OFFLINE-16", site_a, ocpp_version="1.6", evses=1))
    page = dashboard.page()
    dashboard.log_in(page)
    page.goto(f"{dashboard.server}/stations/OFFLINE-16/")
    page.get_by_role("button", name="Soft reset").click()
    expect(page.locator("#action-result")).to_contain_text("Reset: Not connected")

    finance = dashboard.page()
    dashboard.log_in(finance, "finance")
    finance.goto(f"{dashboard.server}/stations/OFFLINE-16/")
    expect(finance.get_by_role("heading", name="Identity")).to_be_visible()
    expect(finance.get_by_role("heading", name="Remote actions")).to_have_count(0)


# --- usable: keyboard, no JavaScript, narrow screens -----------------------------------------

def test_keyboard_and_no_javascript(dashboard: Dashboard):
    page = dashboard.page()
    dashboard.log_in(page)
    page.goto(f"{dashboard.server}/sessions/")
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))
    page.keyboard.press("Tab")
    expect(page.get_by_label("Site")).to_be_focused()  # the first filter, past the nav

    static = dashboard.page(java_script_enabled=False)
    dashboard.log_in(static)
    static.goto(f"{dashboard.server}/stations/STATION-A/")
    expect(static.locator("#connectors")).to_contain_text("1 Offline")
    static.goto(f"{dashboard.server}/sessions/?state=completed")
    expect(static.get_by_text("No session matches these filters")).to_be_visible()


def test_screenshots_of_the_main_pages(dashboard: Dashboard, personas: Personas):
    """Pages at 1280 and 390 px into docs/screenshots/; nothing wider than the phone."""
    shown = orm(showcase, personas)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = {
        "overview": "/",
        "sites": "/sites/",
        "site": f"/sites/{personas.site_a.pk}/",
        "station": f"/stations/{shown['station']}/",
        "sessions": "/sessions/",
        "session": f"/sessions/{shown['session']}/",
        "pending": "/pending/",
    }
    for width, viewport in (("1280", DESKTOP), ("390", PHONE)):
        page = dashboard.page(viewport)
        page.goto(f"{dashboard.server}/accounts/login/")
        page.screenshot(path=SCREENSHOTS / f"login-{width}.png")
        dashboard.log_in(page)
        for name, path in pages.items():
            dashboard.visit_live(page, path)
            page.screenshot(path=SCREENSHOTS / f"{name}-{width}.png", full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= viewport["width"], f"{name} is {overflow} px wide"


def showcase(cast: Personas) -> dict:
    """A small network in plausible shape for the screenshots: sites, stations in every state,
    running and finished sessions with meter curves, commands, frames, alerts, a newcomer."""
    now = timezone.now()
    harbour, riverside = cast.site_a, cast.site_b
    Site.objects.filter(pk=harbour.pk).update(name="Harbour Car Park",
                                              address="Kaistraße 12, Hamburg")
    Site.objects.filter(pk=riverside.pk).update(name="Riverside Offices",
                                                address="Uferweg 3, Berlin")
    models = [("Alfen", "Eve Double Pro"), ("ABB", "Terra AC"), ("Wallbox", "Copper SB"),
              ("Kempower", "S-Series")]
    stations = []
    for n in range(1, 7):
        station = make_station(f"HARBOUR-{n:02d}", harbour, evses=2)
        vendor, model = models[n % len(models)]
        with transaction.atomic():
            if n != 6:  # one station is offline
                presence.station_connected(station, "1.6" if n % 2 else "2.0.1")
            registration.boot_record(station, vendor=vendor, model=model,
                                 serial_number=f"SN{4400 + n}", firmware_version="2.4.1")
        stations.append(station)
    for station_id in ("RIVER-01", "RIVER-02"):
        station = make_station(station_id, riverside, evses=1)
        with transaction.atomic():
            presence.station_connected(station, "2.0.1")
            registration.boot_record(station, vendor="ABB", model="Terra AC",
                                     firmware_version="1.8")

    def status(station, evse, value, error=""):
        with transaction.atomic():
            batch.status_record(station, evse=evse, connector=1, status=value,
                                   error_code=error)

    status(stations[1], 1, "Occupied")
    status(stations[2], 2, "Occupied")
    status(stations[3], 1, "Faulted", "GroundFailure")
    status(stations[4], 2, "Unavailable")

    running = session(stations[1], cast.token, now - timedelta(minutes=38), minutes=38)
    session(stations[2], cast.fleet_token, now - timedelta(minutes=12), minutes=12, evse=2)
    finished = None
    for n in range(9):
        started = now - timedelta(hours=5 + 7 * n)
        tx = session(stations[n % 4], cast.token if n % 3 else cast.fleet_token, started,
                     minutes=35 + 9 * n, stop=True)
        finished = finished or tx

    for action, outcome, answer in (
            ("RemoteStartTransaction", Call.Status.ACCEPTED, {"status": "Accepted"}),
            ("TriggerMessage", Call.Status.ACCEPTED, {"status": "Accepted"}),
            ("Reset", Call.Status.REJECTED, {"status": "Rejected"}),
            ("UnlockConnector", Call.Status.TIMEOUT, None)):
        Call.objects.create(station=stations[1], action=action, payload={"connectorId": 1},
                            status=outcome, response=answer, requested_by=cast.operator,
                            completed_at=now)
    frames = [("in", 2, "BootNotification", {"chargePointVendor": "ABB"}),
              ("out", 3, "BootNotification", {"status": "Accepted", "interval": 300}),
              ("in", 2, "StatusNotification", {"connectorId": 1, "status": "Charging"}),
              ("out", 3, "StatusNotification", {}),
              ("in", 2, "MeterValues", {"connectorId": 1, "meterValue": []}),
              ("out", 3, "MeterValues", {}),
              ("in", 2, "Heartbeat", {}), ("out", 3, "Heartbeat", {"currentTime": "…"})]
    MessageLog.objects.bulk_create([
        MessageLog(station=stations[1], direction=direction, message_type=kind,
                   message_id=f"m-{n // 2}", action=action, payload=payload,
                   created_at=now - timedelta(seconds=40 * (len(frames) - n)))
        for n, (direction, kind, action, payload) in enumerate(frames)
    ])
    RefusedConnection.objects.create(station_id="CP-UNKNOWN-77", remote_addr="198.51.100.23",
                                     reason="unknown_station")
    with transaction.atomic():
        device.station_event_record(stations[2], StationEvent.Kind.SECURITY,
                                      "InvalidCentralSystemCertificate", {},
                                      now - timedelta(hours=2))
    newcomer = Station.objects.create(pk="NEWCOMER-01", registration=Station.Registration.PENDING,
                                      vendor="Easee", model="Charge Lite", serial_number="EZ90210",
                                      connected=True, connected_at=now, last_seen=now)
    return {"station": stations[1].pk, "session": finished.pk, "running": running.pk,
            "newcomer": newcomer.pk}


def session(station, token, started, *, minutes: int, evse: int = 1, stop: bool = False):
    """A session with a meter value every two minutes: power ramps up, holds, then tapers."""
    start_wh = Decimal(100_000)
    with transaction.atomic():
        tx, _ = transactions.transaction_report(station, records.TransactionReport(
            kind=TransactionMessage.Kind.START, timestamp=started, evse=evse, connector=1,
            id_token=token.value, meter_wh=start_wh))
    energy = float(start_wh)
    for minute in range(2, minutes + 1, 2):
        watts = min(11_000.0, 2_750.0 * minute) if minute < minutes - 8 else 4_000.0
        energy += watts * 2 / 60
        at = started + timedelta(minutes=minute)
        with transaction.atomic():
            batch.meter_values_record(station, evse=evse, transaction_id=tx.transaction_id,
                                         samples=[
                                             records.Sample(at, Decimal(round(energy))),
                                             records.Sample(at, Decimal(watts),
                                                             measurand="Power.Active.Import",
                                                             unit="W"),
                                         ])
    if stop:
        with transaction.atomic():
            tx, _ = transactions.transaction_report(station, records.TransactionReport(
                kind=TransactionMessage.Kind.END, timestamp=started + timedelta(minutes=minutes),
                transaction_id=tx.transaction_id, meter_wh=Decimal(round(energy)),
                stop_reason="EVDisconnected"))
    return tx
