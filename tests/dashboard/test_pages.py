"""The dashboard's pages as each persona sees them: scope, filters, pagination, empty states,
bounded queries, and the remote actions' rights and outcomes."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Site
from stations import records
from stations.models import (
    Call,
    Connector,
    Evse,
    LocalListState,
    MessageLog,
    RefusedConnection,
    Station,
    StationEvent,
    Transaction,
)
from stations.services import batch, device, presence, registration
from stations.web import charts
from tests.support.chargers import answered
from tests.support.personas import (
    CHARGER_PASSWORD,
    Personas,
    make_station,
    make_transaction,
    make_user,
    status,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def page(client, user, url: str, **headers):
    client.force_login(user)
    return client.get(url, **headers)


def text(response) -> str:
    return response.content.decode()


def connect(station: Station, version: str = "1.6") -> None:
    with transaction.atomic():
        presence.station_connected(station, version)
    station.refresh_from_db()


def sample(tx: Transaction, minutes: int, wh: str, watts: str) -> None:
    """An energy register and a power reading of a running session."""
    at = tx.started_at + timedelta(minutes=minutes)
    with transaction.atomic():
        batch.meter_values_record(tx.station, evse=1, transaction_id=tx.transaction_id,
                                     samples=[
                                         records.Sample(at, Decimal(wh)),
                                         records.Sample(at, Decimal(watts),
                                                         measurand="Power.Active.Import",
                                                         unit="W"),
                                     ])


# --- who sees which page -----------------------------------------------------------------------

def test_anonymous_is_sent_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    login = client.get(response["Location"])
    assert login.status_code == 200
    assert 'name="username"' in text(login) and 'autocomplete="current-password"' in text(login)


def test_login_page_logs_in_and_lands_on_the_overview(client, personas: Personas):
    response = client.post(reverse("login"), {"username": "operator",
                                              "password": "persona-password"}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert "<h1>Overview</h1>" in text(response)


def test_every_page_renders_for_the_operator(client, personas: Personas):
    tx = make_transaction(personas.station_a, personas.token)
    Station.objects.create(pk="NEW-1", registration=Station.Registration.PENDING)
    urls = ["/", "/sites/", f"/sites/{personas.site_a.pk}/", "/stations/STATION-A/",
            "/sessions/", f"/sessions/{tx.pk}/", "/pending/"]
    client.force_login(personas.operator)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        body = text(response)
        # The nav, the logout (a POST form), the API docs and the page's own live socket.
        assert 'href="/api/docs/"' in body and 'action="/accounts/logout/"' in body
        assert 'ws-connect="/ws/dashboard/?page=' in body


def test_nav_marks_the_current_page_and_offers_admin_to_staff_only(client, personas: Personas):
    body = text(page(client, personas.operator, "/sessions/"))
    assert '<a href="/sessions/" aria-current="page">Sessions</a>' in body
    assert 'href="/admin/"' not in body
    personas.operator.is_staff = True
    personas.operator.save()
    assert 'href="/admin/"' in text(page(client, personas.operator, "/"))


@pytest.mark.parametrize("url", ["/sites/{site_b}/", "/stations/STATION-B/", "/sessions/{tx_b}/"])
def test_a_manager_gets_404_for_another_tenants_pages(client, personas: Personas, url):
    tx_b = make_transaction(personas.station_b, personas.token)
    url = url.format(site_b=personas.site_b.pk, tx_b=tx_b.pk)
    assert page(client, personas.manager, url).status_code == 404


def test_a_manager_sees_only_their_sites_stations_and_sessions(client, personas: Personas):
    make_transaction(personas.station_a, personas.token)
    make_transaction(personas.station_b, personas.token)
    sites = text(page(client, personas.manager, "/sites/"))
    assert "Site A" in sites and "Site B" not in sites
    sessions = text(page(client, personas.manager, "/sessions/"))
    assert "STATION-A" in sessions and "STATION-B" not in sessions
    assert page(client, personas.manager, "/stations/STATION-A/").status_code == 200


def test_a_fleet_admin_sees_their_tokens_sessions_anywhere_and_no_station(client,
                                                                         personas: Personas):
    ours = make_transaction(personas.station_b, personas.fleet_token)
    make_transaction(personas.station_a, personas.token)
    body = text(page(client, personas.fleet, "/sessions/"))
    assert f'id="tx-{ours.pk}"' in body and "TOKEN-OPERATOR" not in body
    assert page(client, personas.fleet, f"/sessions/{ours.pk}/").status_code == 200
    assert page(client, personas.fleet, "/stations/STATION-B/").status_code == 404
    assert "No sites yet" in text(page(client, personas.fleet, "/sites/"))


# --- overview ----------------------------------------------------------------------------------

def test_overview_counts_connectors_by_state_and_todays_energy(client, personas: Personas):
    a, b = personas.station_a, personas.station_b
    connect(a)
    status(a, "Occupied")
    status(a, "Faulted", evse=2)
    status(a, "Available", evse=3)
    # station_b stays offline: its connector counts as offline whatever it last said.
    running = make_transaction(a, personas.token, start_wh=Decimal("1000"))
    sample(running, 10, "3500", "7400")
    make_transaction(b, personas.token, start_wh=Decimal("0"), stop_wh=Decimal("1234"),
                     started_at=timezone.now() - timedelta(minutes=40))
    body = text(page(client, personas.operator, "/"))
    counters = re.search(r'<section id="counters".*?</section>', body, re.S).group(0)
    values = dict((label, value) for value, label in re.findall(
        r'<span class="value">([^<]*)</span> <span class="label">([^<]*)</span>', counters))
    assert values == {"Available": "1", "Charging": "1", "Faulted": "1", "Offline": "1",
                      "Active sessions": "1", "Energy today": "3.734 kWh"}
    assert "1 of 2 stations online" in counters
    # The manager's overview counts their site only.
    mine = text(page(client, personas.manager, "/"))
    assert "0 of 1 station online" not in mine and "1 of 1 station online" in mine


def test_overview_lists_recent_alerts_in_the_sites_time_zone(client, personas: Personas):
    connect(personas.station_a)
    status(personas.station_a, "Faulted")
    with transaction.atomic():
        device.station_event_record(personas.station_b, StationEvent.Kind.SECURITY,
                                      "InvalidFirmwareSignature", {},
                                      datetime(2026, 7, 1, 10, 0, tzinfo=UTC))
    RefusedConnection.objects.create(station_id="SCANNER-1", remote_addr="203.0.113.9",
                                     reason="unknown_station",
                                     created_at=datetime(2026, 7, 1, 9, 0, tzinfo=UTC))
    body = text(page(client, personas.operator, "/"))
    # A refusal belongs to no site: it is shown in the zone the operator's sites share.
    assert "2026-07-01 11:00 CEST" in body
    assert "connector 1/1 faulted" in body
    assert "InvalidFirmwareSignature" in body
    assert "2026-07-01 12:00 CEST" in body  # site_b is in Europe/Berlin
    assert "SCANNER-1" in body and "203.0.113.9" in body
    # A manager sees the fault at their station, not the other site's event nor the scan.
    mine = text(page(client, personas.manager, "/"))
    assert "connector 1/1 faulted" in mine
    assert "InvalidFirmwareSignature" not in mine and "SCANNER-1" not in mine


def test_overview_says_when_all_is_quiet(client, personas: Personas):
    assert "All quiet" in text(page(client, personas.operator, "/"))


# --- sites ----------------------------------------------------------------------------------

def many_stations(site, count: int, *, prefix: str = "BULK") -> None:
    """count stations with two connectors each, some online, charging or faulted."""
    Station.objects.bulk_create([
        Station(pk=f"{prefix}-{n:04d}", site=site, vendor="Acme", model="AC22",
                connected=n % 3 != 0, last_seen=timezone.now())
        for n in range(count)
    ])
    Evse.objects.bulk_create([Evse(station_id=f"{prefix}-{n:04d}", number=e)
                              for n in range(count) for e in (1, 2)])
    statuses = ["Available", "Occupied", "Faulted", "Unavailable"]
    Connector.objects.bulk_create([
        Connector(evse=evse, number=1, status=statuses[i % 4], status_at=timezone.now())
        for i, evse in enumerate(Evse.objects.filter(station__pk__startswith=f"{prefix}-"))
    ])


def test_a_site_with_1000_stations_lists_a_page_in_a_bounded_number_of_queries(
        client, personas: Personas, django_assert_num_queries):
    site = personas.site_a
    many_stations(site, 10, prefix="FEW")
    client.force_login(personas.operator)
    url = f"/sites/{site.pk}/"
    client.get(url)  # warm caches (content types, sessions)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    assert len(few) <= 25
    many_stations(site, 1000)
    with django_assert_num_queries(len(few)):
        response = client.get(url)
    body = text(response)
    assert body.count('<tr id="station-') == 50
    assert "Page 1 of 21" in body and "1011 in all" in body
    assert 'href="?page=2"' in body


def test_the_site_page_shows_every_connectors_live_status(client, personas: Personas):
    station = make_station("TWO-EVSES", personas.site_a, evses=2)
    connect(station)
    status(station, "Occupied", evse=2)
    make_transaction(station, personas.token, evse=2)
    body = text(page(client, personas.manager, f"/sites/{personas.site_a.pk}/"))
    row = re.search(r'<tr id="station-TWO-EVSES">.*?</tr>', body, re.S).group(0)
    assert "1 Available" in row and "2 Occupied" in row and "kWh" in row
    # STATION-A never connected: its connector shows offline, not its last word.
    row_a = re.search(r'<tr id="station-STATION-A">.*?</tr>', body, re.S).group(0)
    assert "1 Offline" in row_a and "never connected" in row_a


def test_the_sites_list_counts_per_site_without_a_query_per_site(client, personas: Personas,
                                                                django_assert_num_queries):
    client.force_login(personas.operator)
    client.get("/sites/")
    with CaptureQueriesContext(connection) as two_sites:
        client.get("/sites/")
    for n in range(30):
        Site.objects.create(name=f"More {n:02d}", organization=personas.org_b)
    many_stations(personas.site_a, 30)
    with django_assert_num_queries(len(two_sites)):
        body = text(client.get("/sites/"))
    assert body.count('<tr id="site-') == 32
    row = re.search(rf'<tr id="site-{personas.site_a.pk}">.*?</tr>', body, re.S).group(0)
    cells = re.findall(r'<td data-label="[^"]+">(.*?)</td>', row, re.S)
    # 20 of 30 bulk stations online plus STATION-A offline; connectors by state among online.
    assert cells[0] == "20 / 31"
    assert cells[1:3] == ["10", "10"]


def test_an_empty_site_says_so(client, personas: Personas):
    empty = personas.site_a.__class__.objects.create(name="Empty", organization=personas.org_a)
    assert "No stations at this site yet" in text(page(client, personas.operator,
                                                       f"/sites/{empty.pk}/"))


# --- station -----------------------------------------------------------------------------------

def test_station_page_shows_identity_connectors_session_transactions_and_calls(
        client, personas: Personas):
    station = personas.station_a
    connect(station, "2.0.1")
    with transaction.atomic():
        registration.boot_record(station, vendor="Acme", model="Wallbox 22", serial_number="SN-42",
                             firmware_version="3.1.4")
    status(station, "Occupied")
    tx = make_transaction(station, personas.token)
    sample(tx, 5, "1500", "11000")
    Call.objects.create(station=station, action="Reset", payload={"type": "Immediate"},
                        status=Call.Status.REJECTED, response={"status": "Rejected"},
                        requested_by=personas.operator)
    body = text(page(client, personas.operator, "/stations/STATION-A/"))
    for expected in ("Acme", "Wallbox 22", "SN-42", "3.1.4", "2.0.1", "1: HTTP Basic auth",
                     "Online</span>", "1 Occupied", "11.0 kW", "0.500 kWh", "TOKEN-OPERATOR",
                     "Reset", "Rejected", "Europe/Berlin", "CE"):
        assert expected in body, expected


def test_station_page_has_clear_empty_states(client, personas: Personas):
    Station.objects.create(pk="BARE", site=personas.site_a)
    body = text(page(client, personas.operator, "/stations/BARE/"))
    for empty in ("has not reported any connector yet", "No session running",
                  "No session on this station yet", "No command sent",
                  "No message exchanged with this station yet"):
        assert empty in body, empty


def log(station: Station, count: int, action: str, direction: str = "in") -> None:
    base = timezone.now() - timedelta(hours=1)
    MessageLog.objects.bulk_create([
        MessageLog(station=station, direction=direction, message_type=2, message_id=f"{action}-{n}",
                   action=action, payload={"n": n, "secret": "<script>"},
                   created_at=base + timedelta(seconds=n))
        for n in range(count)
    ])


def test_message_log_filters_by_action_and_direction_and_paginates(client, personas: Personas):
    station = personas.station_a
    log(station, 60, "Heartbeat")
    log(station, 3, "BootNotification")
    log(station, 2, "Reset", direction="out")
    client.force_login(personas.operator)
    body = text(client.get("/stations/STATION-A/"))
    assert "65 messages" in body and "Page 1 of 2" in body
    assert "&lt;script&gt;" in body and "<script>\"" not in body  # payloads escaped
    boots = text(client.get("/stations/STATION-A/?action=bootnotification"))
    assert boots.count('<td data-label="Message">') == 3
    outgoing = text(client.get("/stations/STATION-A/?direction=out"))
    assert outgoing.count('<td data-label="Message">') == 2 and "Reset-1" in outgoing
    second = text(client.get("/stations/STATION-A/?action=Heartbeat&page=2"))
    assert second.count('<td data-label="Message">') == 10
    assert 'href="?action=Heartbeat&amp;page=1#message-log"' in second
    nothing = text(client.get("/stations/STATION-A/?action=Authorize"))
    assert "No message matches this filter" in nothing


def test_the_station_pages_socket_shows_the_log_as_the_page_does(client, personas: Personas):
    """The log's filter and page are the page's address, and its live socket's."""
    body = page(client, personas.operator,
                "/stations/STATION-A/?action=Heartbeat&direction=in").content.decode()
    assert re.search(r'ws-connect="/ws/dashboard/\?page=station&amp;station=STATION-A&amp;p=1'
                     r'&amp;action=Heartbeat&amp;direction=in"', body)


def local_list_cell(body: str) -> str:
    return re.search(r'<span id="station-local-list".*?</span>\s*</dd>', body, re.S).group(0)


@pytest.mark.parametrize("state, shown", [
    (None, ["not kept", "manage"]),
    ({"enabled": False, "sync": "in_sync"}, ["not kept", "manage"]),
    ({"enabled": True, "sync": "in_sync"}, ["badge ok\">in sync", "details"]),
    ({"enabled": True, "sync": "out_of_sync", "note": "the station is offline"},
     ["out of sync", "details"]),
    ({"enabled": True, "sync": "too_large", "note": "90 cards belong on this list"},
     ["too large for the charger", "90 cards belong on this list"]),
])
def test_station_page_shows_the_local_lists_state(client, personas: Personas, state, shown):
    if state is not None:
        LocalListState.objects.create(station=personas.station_a, **state)
    cell = local_list_cell(text(page(client, personas.manager, "/stations/STATION-A/")))
    assert 'href="/local-lists/STATION-A/"' in cell
    for expected in shown:
        assert expected in cell, cell
    assert "every 2s" not in cell
    if state and "note" in state and state["sync"] == "out_of_sync":
        assert state["note"] not in cell  # the list page tells the details of the ordinary


def test_the_local_list_state_asks_for_itself_while_an_update_travels(client,
                                                                       personas: Personas):
    LocalListState.objects.create(station=personas.station_a, sync="sending", enabled=True)
    cell = local_list_cell(text(page(client, personas.operator, "/stations/STATION-A/")))
    assert 'hx-get="/stations/STATION-A/" hx-trigger="every 2s"' in cell
    LocalListState.objects.filter(station=personas.station_a).update(sync="in_sync")
    fragment = text(client.get("/stations/STATION-A/", HTTP_HX_TARGET="station-local-list",
                               **HTMX))
    assert fragment.strip().startswith('<span id="station-local-list">')
    assert "in sync" in fragment and "<html" not in fragment


def test_the_station_page_reads_the_local_list_with_the_station(client, personas: Personas):
    client.force_login(personas.operator)
    client.get("/stations/STATION-A/")
    with CaptureQueriesContext(connection) as without_list:
        client.get("/stations/STATION-A/")
    LocalListState.objects.create(station=personas.station_a, sync="in_sync", enabled=True)
    with CaptureQueriesContext(connection) as with_list:
        assert "in sync" in text(client.get("/stations/STATION-A/"))
    assert len(with_list) == len(without_list)
    # Joined to the station's own query, never read on its own.
    assert not [q for q in with_list if 'FROM "accounts_localliststate"' in q["sql"]]


# --- sessions ----------------------------------------------------------------------------------

def test_sessions_filter_by_site_station_token_state_and_date(client, personas: Personas):
    berlin = ZoneInfo("Europe/Berlin")
    old = make_transaction(personas.station_a, personas.token, stop_wh=Decimal("9000"),
                           started_at=datetime(2026, 3, 1, 23, 30, tzinfo=berlin))
    running = make_transaction(personas.station_b, personas.fleet_token)
    client.force_login(personas.operator)

    def rows(query: str) -> set[int]:
        return {int(pk) for pk in re.findall(r'<tr id="tx-(\d+)"', text(
            client.get(f"/sessions/?{query}")))}

    assert rows("") == {old.pk, running.pk}
    assert rows(f"site={personas.site_b.pk}") == {running.pk}
    assert rows("station=station-a") == {old.pk}
    assert rows("token=FLEET") == {running.pk}
    assert rows("state=active") == {running.pk}
    assert rows("state=completed") == {old.pk}
    # Dates are the site's days: 23:30 in Berlin on 1 March is 22:30 UTC.
    assert rows(f"site={personas.site_a.pk}&from=2026-03-01&to=2026-03-01") == {old.pk}
    assert rows(f"site={personas.site_a.pk}&from=2026-03-02") == set()
    assert rows("from=not-a-date&state=bogus&site=x") == {old.pk, running.pk}
    assert "No session matches these filters" in text(client.get("/sessions/?token=NOPE"))


def test_sessions_paginate_and_keep_their_filters(client, personas: Personas,
                                                  django_assert_num_queries):
    start = timezone.now() - timedelta(days=2)
    make_transaction(personas.station_b, personas.fleet_token, stop_wh=Decimal(2000),
                     started_at=start)
    client.force_login(personas.operator)
    client.get("/sessions/?state=completed")
    with CaptureQueriesContext(connection) as one:
        client.get("/sessions/?state=completed")
    for n in range(54):
        make_transaction(personas.station_a, personas.token, stop_wh=Decimal(2000 + n),
                         started_at=start + timedelta(minutes=n))
    with django_assert_num_queries(len(one)):
        body = text(client.get("/sessions/?state=completed"))
    assert body.count('<tr id="tx-') == 50
    assert 'href="?state=completed&amp;page=2"' in body
    assert text(client.get("/sessions/?state=completed&page=2")).count('<tr id="tx-') == 5


def test_sessions_empty_state(client, personas: Personas):
    assert "No charging session yet" in text(page(client, personas.operator, "/sessions/"))


def test_session_detail_draws_the_curve_from_meter_values(client, personas: Personas):
    tx = make_transaction(personas.station_a, personas.token, start_wh=Decimal("1000"))
    for minute, wh, watts in ((1, "1100", "7000"), (2, "1220", "7200"), (3, "1340", "7100")):
        sample(tx, minute, wh, watts)
    body = text(page(client, personas.operator, f"/sessions/{tx.pk}/"))
    assert '<svg class="chart"' in body
    assert body.count("<polyline") == 2
    assert "Peak power 7.2 kW, 0.34 kWh delivered" in body
    assert "0.340 kWh" in body and "7.1 kW" in body


def test_session_detail_without_meter_values_says_so(client, personas: Personas):
    tx = make_transaction(personas.station_a, personas.token)
    body = text(page(client, personas.operator, f"/sessions/{tx.pk}/"))
    assert "No meter values for this session yet" in body and "<svg" not in body


# --- the chart on its own ---------------------------------------------------------------------

def test_chart_scales_round_and_thins_long_series():
    assert charts._nice_scale(7.4) == (2, 8)
    assert charts._nice_scale(0.34) == (0.1, 0.4)
    assert charts._nice_scale(0) == (1.0, 1.0)
    start = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    points = [(start + timedelta(seconds=10 * n), float(n)) for n in range(5000)]
    thinned = charts._thin(points)
    assert len(thinned) <= charts.MAX_POINTS + 1 and thinned[-1] == points[-1]
    svg = charts.session_chart(charts.Curve(power=points, energy=points), ZoneInfo("UTC"))
    ticks = re.findall(r'text-anchor="middle">([^<]+)</text>', svg)
    assert ticks[:2] == ["09:00", "12:00"]  # 14 hours: every 3 hours, on the hour


def test_chart_of_one_reading_is_a_dot():
    at = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    svg = charts.session_chart(charts.Curve(power=[(at, 7.0)]), ZoneInfo("UTC"))
    assert "<circle" in svg and "no energy readings" in svg


# --- pending stations --------------------------------------------------------------------------

def test_pending_station_is_approved_onto_a_site(client, personas: Personas):
    Station.objects.create(pk="NEW-1", registration=Station.Registration.PENDING)
    client.force_login(personas.operator)
    body = text(client.get("/pending/"))
    assert '<tr id="pending-NEW-1">' in body and 'id="pending-count" class="count">' in body
    response = client.post("/pending/NEW-1/approve/", {"site": personas.site_a.pk}, **HTMX)
    assert 'id="pending-NEW-1" class="decided"' in text(response)
    assert 'id="pending-count" class="count" hx-swap-oob="true" hidden' in text(response)
    station = Station.objects.get(pk="NEW-1")
    assert station.registration == "Accepted" and station.site == personas.site_a
    assert "No station is waiting for approval" in text(client.get("/pending/"))


def test_pending_station_is_rejected_without_javascript(client, personas: Personas):
    Station.objects.create(pk="NEW-2", registration=Station.Registration.PENDING)
    client.force_login(personas.operator)
    response = client.post("/pending/NEW-2/reject/", follow=True)
    assert response.redirect_chain[-1][0] == "/pending/"
    assert "NEW-2: Rejected" in text(response)
    assert Station.objects.get(pk="NEW-2").registration == "Rejected"


def test_only_operators_decide_on_pending_stations(client, personas: Personas):
    Station.objects.create(pk="NEW-3", registration=Station.Registration.PENDING)
    finance_page = text(page(client, personas.finance, "/pending/"))
    assert "NEW-3" in finance_page and "Approve" not in finance_page
    assert client.post("/pending/NEW-3/approve/").status_code == 403
    # A manager does not see a station of no site at all.
    assert page(client, personas.manager, "/pending/").status_code == 200
    assert client.post("/pending/NEW-3/approve/").status_code == 404
    assert Station.objects.get(pk="NEW-3").registration == "Pending"


# --- remote actions ----------------------------------------------------------------------------

def test_actions_are_offered_to_those_who_may_operate_the_station(client, personas: Personas):
    assert "Remote actions" in text(page(client, personas.operator, "/stations/STATION-A/"))
    assert "Remote actions" in text(page(client, personas.manager, "/stations/STATION-A/"))
    assert "Remote actions" not in text(page(client, personas.finance, "/stations/STATION-A/"))
    # A finance role elsewhere does not let a manager operate other sites.
    Membership.objects.create(user=personas.outsider, organization=personas.operator_org,
                              role=Membership.Role.FINANCE)
    assert "Remote actions" not in text(page(client, personas.outsider, "/stations/STATION-A/"))


@pytest.mark.parametrize(("who", "code"), [("finance", 403), ("outsider", 404), ("fleet", 404)])
def test_actions_are_refused_to_the_others(client, personas: Personas, who, code):
    client.force_login(getattr(personas, who))
    response = client.post("/stations/STATION-A/actions/reset/", {"hard": "false"})
    assert response.status_code == code
    assert not Call.objects.exists()


def test_an_unknown_action_or_a_tampered_form_is_refused(client, personas: Personas):
    client.force_login(personas.operator)
    assert client.post("/stations/STATION-A/actions/format-disk/").status_code == 404
    assert client.post("/stations/STATION-A/actions/reset/", {"hard": "rude"}).status_code == 400
    assert client.post("/stations/STATION-A/actions/unlock/", {"evse": "x"}).status_code == 400
    assert client.get("/stations/STATION-A/actions/reset/").status_code == 405


def test_a_command_to_an_offline_station_ends_as_not_connected(client, personas: Personas):
    make_station("OLD-16", personas.site_a, ocpp_version="1.6", evses=1)
    client.force_login(personas.manager)
    response = client.post("/stations/OLD-16/actions/reset/", {"hard": "true"}, **HTMX)
    body = text(response)
    assert 'class="outcome muted"' in body and "Reset</strong>: Not connected" in body
    call = Call.objects.get()
    assert call.action == "Reset" and call.payload == {"type": "Hard"}
    assert call.status == Call.Status.NOT_CONNECTED and call.requested_by == personas.manager


@pytest.mark.parametrize(("action", "form", "expected"), [
    ("start", {"evse": "1", "id_token": "TOKEN-OPERATOR"},
     ("RemoteStartTransaction", {"connectorId": 1, "idTag": "TOKEN-OPERATOR"})),
    ("unlock", {"evse": "1", "connector": "1"}, ("UnlockConnector", {"connectorId": 1})),
    ("availability", {"evse": "0", "operative": "no"},
     ("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})),
    ("trigger", {"message": "StatusNotification", "evse": "1"},
     ("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1})),
])
def test_each_action_sends_its_command(client, personas: Personas, action, form, expected):
    make_station("OLD-16", personas.site_a, ocpp_version="1.6", evses=1)
    client.force_login(personas.operator)
    assert client.post(f"/stations/OLD-16/actions/{action}/", form, **HTMX).status_code == 200
    call = Call.objects.get()
    assert (call.action, call.payload) == expected


def test_stopping_a_session_that_ended_explains_itself(client, personas: Personas):
    tx = make_transaction(personas.station_a, personas.token, stop_wh=Decimal("2000"))
    client.force_login(personas.operator)
    body = text(client.post("/stations/STATION-A/actions/stop/", {"transaction": tx.pk}, **HTMX))
    assert 'role="alert">That session has ended already.' in body


def test_a_command_without_javascript_redirects_back_with_its_outcome(client,
                                                                       personas: Personas):
    make_station("OLD-16", personas.site_a, ocpp_version="1.6", evses=1)
    client.force_login(personas.operator)
    response = client.post("/stations/OLD-16/actions/reset/", {"hard": "false"}, follow=True)
    assert response.redirect_chain[-1][0] == "/stations/OLD-16/"
    assert "Reset: Not connected" in text(response)


@pytest.mark.django_db(transaction=True)
def test_the_command_goes_through_stations_commands(client, personas: Personas):
    """The dashboard uses the API's version-neutral commands, never a socket of its own: a
    charger on the gateway's socket gets the command in its version's words."""
    client.force_login(personas.operator)
    frame, response = answered(
        "STATION-A", lambda: client.post("/stations/STATION-A/actions/reset/", {"hard": "true"},
                                         **HTMX),
        lambda frame: {"status": "Accepted"}, password=CHARGER_PASSWORD)
    assert frame[2:] == ["Reset", {"type": "Hard"}]
    call = Call.objects.get()
    assert (call.station_id, call.requested_by) == ("STATION-A", personas.operator)
    body = text(response)
    assert 'class="outcome ok"' in body and "Reset</strong>: Accepted" in body


def test_a_finance_user_who_is_also_a_manager_operates_only_their_sites(client,
                                                                        personas: Personas):
    both = make_user("both", personas.org_a, Membership.Role.PROPERTY_MANAGER)
    Membership.objects.create(user=both, organization=personas.operator_org,
                              role=Membership.Role.FINANCE)
    client.force_login(both)
    assert client.post("/stations/STATION-B/actions/reset/", {"hard": "false"}).status_code == 403
    assert client.post("/stations/STATION-A/actions/reset/", {"hard": "false"}).status_code == 302
