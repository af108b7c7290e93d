"""The dashboard's live socket, driven in-process: who may connect, which events reach whom, and
that what is pushed is re-read from the database as small fragments.

Each test runs one asyncio scenario (asyncio.run, by tests/support/live.py's run): the
communicator's consumer lives in that loop, and database writes go through
database_sync_to_async so that the events they publish on commit (async_to_sync(group_send))
are delivered in the same loop.
"""

import re
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.urls import reverse

from accounts import organizations, people
from accounts.models import Membership
from csms.asgi import application
from stations import events, records
from stations.models import Call, Station
from stations.services import batch, presence, registration
from stations.web.consumers import ACCESS_CHANGED
from tests.support.chargers import ChargerSocket
from tests.support.live import WAIT, ids, logged_in, opened, receive, run, socket
from tests.support.personas import Personas, make_transaction

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def set_status(station_id: str, status: str, evse: int = 1) -> None:
    station = Station.objects.get(pk=station_id)
    with transaction.atomic():
        batch.status_record(station, evse=evse, connector=1, status=status)


@database_sync_to_async
def set_connected(station_id: str) -> None:
    station = Station.objects.get(pk=station_id)
    with transaction.atomic():
        presence.station_connected(station, "1.6")


@database_sync_to_async
def start_session(personas: Personas):
    return make_transaction(Station.objects.get(pk="STATION-A"), personas.token,
                            start_wh=Decimal("1000"))


# --- who may connect -------------------------------------------------------------------------

def test_anonymous_and_foreign_origin_connections_are_refused(personas: Personas):
    async def scenario():
        for communicator in (await socket(None),
                             await socket(personas.operator,
                                          origin="http://evil.example")):
            connected, _ = await communicator.connect()
            assert not connected
            await communicator.disconnect()

    run(scenario)


@pytest.mark.parametrize("origin", [
    "http://testserver:8080", "https://testserver", "http://evil.example", "null", "",
    "http://testserver.evil.example", "ws://testserver",
])
def test_only_the_pages_own_origin_opens_the_socket(personas: Personas, origin):
    """Same scheme, host and port as the request (ws:// from http://testserver) or nothing:
    another port of the same host is another site."""
    async def scenario():
        refused = await socket(personas.operator, origin=origin)
        assert not (await refused.connect())[0]
        await refused.disconnect()
        for own in ("http://testserver", "http://TESTSERVER:80"):
            accepted = await socket(personas.operator, origin=own)
            await opened(accepted)
            await accepted.disconnect()

    run(scenario)


def test_a_trusted_origin_opens_the_socket_and_a_tls_proxy_makes_it_https(personas: Personas,
                                                                          settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "csms.example"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://csms.example"]
    settings.TRUSTED_PROXIES = ["10.0.0.1"]

    async def scenario():
        trusted = await socket(personas.operator, origin="https://csms.example")
        await opened(trusted)
        await trusted.disconnect()
        plain = await socket(personas.operator, origin="http://csms.example")
        assert not (await plain.connect())[0]
        await plain.disconnect()
        anybody = await socket(personas.operator, origin="https://testserver")
        anybody.scope["headers"].append((b"x-forwarded-proto", b"https"))
        assert not (await anybody.connect())[0]  # said by anybody: not believed
        await anybody.disconnect()
        behind_proxy = await socket(personas.operator, origin="https://testserver")
        behind_proxy.scope["headers"].append((b"x-forwarded-proto", b"https"))
        behind_proxy.scope["client"] = ["10.0.0.1", 40000]
        await opened(behind_proxy)
        await behind_proxy.disconnect()

    run(scenario)


@pytest.mark.parametrize("query", [
    "page=station&station=STATION-B", "page=site&site={site_b}", "page=nonsense", "",
    "page=session&tx=999999",
])
def test_pages_the_user_may_not_see_are_refused(personas: Personas, query):
    query = query.format(site_b=personas.site_b.pk)

    async def scenario():
        communicator = await socket(personas.manager, query)
        connected, _ = await communicator.connect()
        assert not connected
        await communicator.disconnect()

    run(scenario)


# --- who hears what -------------------------------------------------------------------------

def test_the_overview_catches_up_on_connect_and_counts_a_fault_live(personas: Personas):
    async def scenario():
        await set_connected("STATION-A")
        communicator = await socket(personas.operator)
        first = await opened(communicator)
        assert ids(*first) == [["counters", "alerts"]]
        assert "All quiet" in first[0]
        await set_status("STATION-A", "Faulted")
        [update] = await receive(communicator)
        assert ids(update) == [["counters", "alerts"]]
        assert re.search(r'<span class="value">1</span> <span class="label">Faulted', update)
        assert "connector 1/1 faulted" in update
        await communicator.disconnect()

    run(scenario)


def test_a_manager_hears_only_their_sites(personas: Personas):
    async def scenario():
        communicator = await socket(personas.manager)
        await opened(communicator)
        await set_status("STATION-B", "Faulted")  # the outsider's station
        assert await communicator.receive_nothing(timeout=0.6)
        await set_status("STATION-A", "Occupied")
        [update] = await receive(communicator)
        assert ids(update) == [["counters"]]  # no fault: the alerts stay as they are
        await communicator.disconnect()

    run(scenario)


def test_the_socket_joins_only_the_groups_the_user_may_see(personas: Personas):
    from stations.web.consumers import open_page

    operator = open_page(personas.operator, {"page": "overview"})
    manager = open_page(personas.manager, {"page": "overview"})
    fleet = open_page(personas.fleet, {"page": "sessions"})
    station = open_page(personas.manager, {"page": "station", "station": "STATION-A"})
    assert operator.groups == [events.EVERYTHING]
    assert manager.groups == [events.site_group(personas.site_a.pk)]
    assert fleet.groups == []
    assert station.groups == [events.station_group("STATION-A")]


# --- small fragments, re-read ----------------------------------------------------------------

def test_a_status_change_costs_one_row_on_the_site_page(personas: Personas):
    async def scenario():
        await set_connected("STATION-A")
        communicator = await socket(personas.manager, f"page=site&site={personas.site_a.pk}")
        first = await opened(communicator, 2)
        assert ids(*first) == [["counters"], ["stations-body"]]
        await set_status("STATION-A", "Faulted")
        counters, row = await receive(communicator, 2)
        assert ids(counters, row) == [["counters"], ["station-STATION-A"]]
        assert "1 Faulted" in row and len(row) < 2000
        await communicator.disconnect()

    run(scenario)


def test_events_are_hints_what_is_shown_is_read_from_the_database(personas: Personas):
    async def scenario():
        await set_connected("STATION-A")
        await set_status("STATION-A", "Faulted")
        communicator = await socket(personas.operator, "page=station&station=STATION-A")
        first = await opened(communicator)
        assert ids(*first) == [["station-identity", "connectors", "current-sessions",
                                "recent-sessions", "calls", "message-log"]]
        # An event that lies about the status (or arrives late) shows the stored truth.
        await events.asend([{
            "event": "connector.status", "station_id": "STATION-A",
            "site_id": personas.site_a.pk, "data": {"evse": 1, "status": "Available"}}])
        [update] = await receive(communicator)
        assert ids(update) == [["station-identity", "connectors"]]
        assert "1 Faulted" in update and "1 Available" not in update
        await communicator.disconnect()

    run(scenario)


def test_a_burst_of_events_is_folded_into_one_message(personas: Personas):
    async def scenario():
        await set_connected("STATION-A")
        communicator = await socket(personas.operator, "page=station&station=STATION-A")
        await opened(communicator)

        @database_sync_to_async
        def burst():
            station = Station.objects.get(pk="STATION-A")
            for status in ("Occupied", "Faulted", "Unavailable", "Available", "Occupied"):
                with transaction.atomic():
                    batch.status_record(station, evse=1, connector=1, status=status)

        await burst()
        [update] = await receive(communicator)
        assert "1 Occupied" in update
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()

    run(scenario)


def test_a_reconnected_page_catches_up_on_what_it_missed(personas: Personas):
    async def scenario():
        await set_connected("STATION-A")
        query = f"page=site&site={personas.site_a.pk}"
        communicator = await socket(personas.manager, query)
        assert "1 Available" in (await opened(communicator, 2))[1]
        await communicator.disconnect()
        await set_status("STATION-A", "Faulted")  # while the page was away
        again = await socket(personas.manager, query)
        assert "1 Faulted" in (await opened(again, 2))[1]
        await again.disconnect()

    run(scenario)


def test_the_station_page_shows_a_commands_outcome_live(personas: Personas):
    async def scenario():
        communicator = await socket(personas.operator, "page=station&station=STATION-A")
        await opened(communicator)

        @database_sync_to_async
        def answered():
            call = Call.objects.create(station_id="STATION-A", action="Reset",
                                       payload={"type": "Soft"}, status=Call.Status.SENT)
            with transaction.atomic():
                Call.objects.filter(pk=call.pk).update(status=Call.Status.ACCEPTED,
                                                       response={"status": "Accepted"})
                events.publish("call.outcome", "STATION-A", personas.site_a.pk, call=call.pk,
                               status="accepted")

        await answered()
        [update] = await receive(communicator)
        assert ids(update) == [["calls"]]
        assert '<span class="badge ok">Accepted</span>' in update
        await communicator.disconnect()

    run(scenario)


def test_sessions_appear_and_update_live(personas: Personas):
    async def scenario():
        communicator = await socket(personas.operator, "page=sessions")
        assert ids(*await opened(communicator)) == [["sessions-body"]]
        tx = await start_session(personas)
        [started] = await receive(communicator)
        assert ids(started) == [["sessions-body"]] and f'id="tx-{tx.pk}"' in started

        @database_sync_to_async
        def metered():
            with transaction.atomic():
                batch.meter_values_record(tx.station, evse=1, transaction_id=tx.transaction_id,
                                             samples=[records.Sample(tx.started_at,
                                                                      Decimal("3500"))])

        await metered()
        [update] = await receive(communicator)
        assert ids(update) == [[f"tx-{tx.pk}"]] and "2.500 kWh" in update
        await communicator.disconnect()

    run(scenario)


def test_a_session_page_follows_its_meter_values(personas: Personas):
    async def scenario():
        tx = await start_session(personas)
        communicator = await socket(personas.manager, f"page=session&tx={tx.pk}")
        [first] = await opened(communicator)
        assert ids(first) == [["session-summary", "session-chart", "session-messages"]]
        assert "No meter values" in first

        @database_sync_to_async
        def metered():
            with transaction.atomic():
                batch.meter_values_record(tx.station, evse=1, transaction_id=tx.transaction_id,
                                             samples=[records.Sample(tx.started_at,
                                                                      Decimal("1800"))])

        await metered()
        [update] = await receive(communicator)
        assert "0.800 kWh" in update and "<svg" in update
        await set_status("STATION-A", "Faulted")  # the same station, not this session
        assert await communicator.receive_nothing(timeout=0.6)
        await communicator.disconnect()

    run(scenario)


def test_a_station_awaiting_approval_appears_on_the_pending_page(personas: Personas):
    async def scenario():
        communicator = await socket(personas.operator, "page=pending")
        assert "No station is waiting" in (await opened(communicator))[0]

        @database_sync_to_async
        def arrives():
            with transaction.atomic():
                station = registration.station_onboard("NEWCOMER-7")
                presence.station_connected(station, "2.0.1")

        await arrives()
        [update] = await receive(communicator)
        assert ids(update) == [["pending-body"]] and 'id="pending-NEWCOMER-7"' in update
        assert "Approve" in update
        await communicator.disconnect()

    run(scenario)


# --- access revoked -------------------------------------------------------------------------

def test_a_removed_membership_closes_the_users_open_pages(personas: Personas):
    """The manager watches their station; the operator removes them from the organization: the
    page closes at once, hears nothing more, and cannot open again."""
    @database_sync_to_async
    def remove_manager() -> None:
        people.member_remove(personas.operator, Membership.objects.get(user=personas.manager))

    async def scenario():
        station_page = await socket(personas.manager, "page=station&station=STATION-A")
        await opened(station_page)
        overview = await socket(personas.manager)
        await opened(overview)
        await remove_manager()
        for page in (station_page, overview):
            closed = await page.receive_output(timeout=WAIT)
            assert closed == {"type": "websocket.close", "code": ACCESS_CHANGED}
            await page.disconnect()
        await set_status("STATION-A", "Faulted")
        again = await socket(personas.manager, "page=station&station=STATION-A")
        assert not (await again.connect())[0]
        await again.disconnect()

    run(scenario)


def test_moving_a_site_to_another_organization_closes_its_members_pages(personas: Personas):
    @database_sync_to_async
    def move_site_a() -> None:
        site = personas.site_a
        organizations.site_change(personas.operator, site, personas.org_b, site.name,
                                  site.address, site.time_zone)

    async def scenario():
        manager, outsider = await socket(personas.manager), await socket(personas.outsider)
        for page in (manager, outsider):
            await opened(page)
        await move_site_a()
        for page in (manager, outsider):  # one sees it no more, the other sees it now
            closed = await page.receive_output(timeout=WAIT)
            assert closed == {"type": "websocket.close", "code": ACCESS_CHANGED}
            await page.disconnect()

    run(scenario)


def test_only_the_user_whose_access_changed_is_closed(personas: Personas):
    @database_sync_to_async
    def change_outsider() -> None:
        people.role_change(personas.operator, Membership.objects.get(user=personas.outsider),
                           Membership.Role.FLEET_ADMIN)

    async def scenario():
        page = await socket(personas.manager, "page=station&station=STATION-A")
        await opened(page)
        await change_outsider()
        await set_status("STATION-A", "Faulted")
        assert ids(*await receive(page)) == [["station-identity", "connectors"]]
        await page.disconnect()

    run(scenario)


def test_logging_out_closes_the_pages_of_that_session(personas: Personas):
    client = logged_in(personas.manager)
    cookie = client.cookies["sessionid"].value

    def page_socket() -> WebsocketCommunicator:
        return WebsocketCommunicator(application, "/ws/dashboard/?page=overview", headers=[
            (b"host", b"testserver"), (b"origin", b"http://testserver"),
            (b"cookie", f"sessionid={cookie}".encode())])

    async def scenario():
        page = page_socket()
        await opened(page)
        response = await database_sync_to_async(client.post)(reverse("logout"))
        assert response.status_code == 302
        closed = await page.receive_output(timeout=WAIT)
        assert closed == {"type": "websocket.close", "code": ACCESS_CHANGED}
        await page.disconnect()
        again = page_socket()
        assert not (await again.connect())[0]
        await again.disconnect()

    run(scenario)


# --- the message log and the alerts -------------------------------------------------------------

def test_the_station_page_shows_the_chargers_frames_as_they_are_logged(personas: Personas):
    """A heartbeat and a frame answered with a CALLERROR appear in the log of the page that
    shows it, filtered as that page is; the overview, which shows no log, hears nothing."""
    async def scenario():
        whole_log = await socket(personas.operator, "page=station&station=STATION-A")
        await opened(whole_log)
        errors_only = await socket(personas.operator,
                                   "page=station&station=STATION-A&action=Nonsense")
        await opened(errors_only)
        overview = await socket(personas.operator)
        await opened(overview)
        charger = ChargerSocket("STATION-A")
        assert await charger.connect()
        await receive(whole_log)  # connected: the identity card
        await receive(errors_only)
        await receive(overview)
        await charger.ok("Heartbeat", {})
        [update] = await receive(whole_log)
        assert ids(update) == [["message-log"]]
        assert '<th scope="row" data-label="Action">Heartbeat' in update
        [filtered] = await receive(errors_only)
        assert '<th scope="row" data-label="Action">Heartbeat' not in filtered
        assert "No message matches this filter" in filtered
        assert (await charger.call("Nonsense", {}))[0] == 4
        [update] = await receive(whole_log)
        assert '<th scope="row" data-label="Action">Nonsense' in update and "CALLERROR" in update
        [filtered] = await receive(errors_only)
        assert '<th scope="row" data-label="Action">Nonsense' in filtered
        assert await overview.receive_nothing(timeout=0.6)
        await charger.close()
        for page in (whole_log, errors_only, overview):
            await page.disconnect()

    run(scenario)


def test_a_refused_connection_appears_in_the_overviews_alerts(personas: Personas):
    """To the operator, and to the manager of the station's site; not to another manager."""
    async def scenario():
        operator = await socket(personas.operator)
        await opened(operator)
        manager = await socket(personas.manager)
        await opened(manager)
        outsider = await socket(personas.outsider)
        await opened(outsider)
        intruder = ChargerSocket("STATION-A", password="not-the-password-000")
        assert not await intruder.connect()
        for page in (operator, manager):
            [update] = await receive(page)
            assert ids(update) == [["counters", "alerts"]]
            assert "connection refused (wrong_password)" in update
        assert await outsider.receive_nothing(timeout=0.6)
        for page in (operator, manager, outsider):
            await page.disconnect()

    run(scenario)
