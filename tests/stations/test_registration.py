"""Deciding on a station's registration (accept, reject): from the pending page and the API,
audited, pushed to the live pages, counted once when people decide at once, and told to a
connected charger at its next boot."""

from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from accounts.models import AuditEntry
from stations.api.serializers import StationSerializer
from stations.models import Station
from tests.support.chargers import ChargerSocket
from tests.support.concurrency import in_threads
from tests.support.live import ids, logged_in, opened, receive, run, socket
from tests.support.personas import Personas, make_station

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}
PENDING = Station.Registration.PENDING


def pending_station(station_id: str, site=None) -> Station:
    return Station.objects.create(pk=station_id, site=site, registration=PENDING,
                                  security_profile=Station.SecurityProfile.NONE)


def decisions() -> list[tuple[str, str, str, str, dict]]:
    return list(AuditEntry.objects.filter(action="station.registration").order_by("id")
                .values_list("actor_name", "target", "summary", "action", "details"))


def test_a_decision_on_the_pending_page_is_audited_and_pushed_to_live_pages(
        personas: Personas):
    pending_station("NEW-1")
    operator = logged_in(personas.operator)

    async def scenario():
        pending_page = await socket(personas.operator, "page=pending")
        station_page = await socket(personas.operator, "page=station&station=NEW-1")
        await opened(pending_page)
        await opened(station_page)
        response = await database_sync_to_async(operator.post)(
            "/pending/NEW-1/approve/", {"site": personas.site_a.pk}, **HTMX)
        assert "NEW-1</a>: accepted, at Site A." in response.content.decode()
        row, count = await receive(pending_page, 2)
        assert ids(row, count) == [["pending-NEW-1"], ["pending-count"]]
        assert 'class="decided"' in row and "accepted, at Site A" in row
        assert "hidden" in count  # nothing waits any more
        identity, count = await receive(station_page, 2)
        assert ids(identity, count) == [["station-identity"], ["pending-count"]]
        assert "<dt>Registration</dt><dd>Accepted</dd>" in identity
        for page in (pending_page, station_page):
            await page.disconnect()

    run(scenario)
    assert decisions() == [("operator", "station:NEW-1", "accepted station NEW-1 at Site A",
                            "station.registration",
                            {"registration": ["Pending", "Accepted"],
                             "site": personas.site_a.pk})]


def test_a_decision_through_the_api_is_audited_and_pushed(api, personas: Personas):
    pending_station("NEW-2", personas.site_a)
    client = api(personas.manager)

    async def scenario():
        station_page = await socket(personas.manager, "page=station&station=NEW-2")
        await opened(station_page)
        response = await database_sync_to_async(client.patch)(
            "/api/v1/stations/NEW-2/", {"registration": "Rejected"}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["registration"] == "Rejected"
        identity, count = await receive(station_page, 2)
        assert "<dt>Registration</dt><dd>Rejected</dd>" in identity
        assert ids(count) == [["pending-count"]]
        await station_page.disconnect()

    run(scenario)
    assert decisions() == [("manager", "station:NEW-2", "rejected station NEW-2 at Site A",
                            "station.registration",
                            {"registration": ["Pending", "Rejected"],
                             "site": personas.site_a.pk})]
    # The same answer again changes nothing, and a write without a registration is no decision.
    assert client.patch("/api/v1/stations/NEW-2/", {"registration": "Rejected"},
                        format="json").status_code == 200
    assert client.patch("/api/v1/stations/NEW-2/", {"security_profile": 0},
                        format="json").status_code == 200
    assert len(decisions()) == 1
    # A rejected station can be accepted after all: a decision like the first.
    accepted = client.patch("/api/v1/stations/NEW-2/", {"registration": "Accepted"},
                            format="json")
    assert accepted.json()["registration"] == "Accepted"
    assert decisions()[-1][4]["registration"] == ["Rejected", "Accepted"]


def test_an_api_write_does_not_put_back_what_changed_since_it_read_the_station(personas):
    pending_station("NEW-3", personas.site_a)
    read = Station.objects.get(pk="NEW-3")  # as the API's view reads it
    # Meanwhile someone accepts it on the pending page and the charger connects.
    Station.objects.filter(pk="NEW-3").update(registration="Accepted", connected=True)
    serializer = StationSerializer(read, data={"security_profile": 0}, partial=True,
                                   context={"request": SimpleNamespace(user=personas.manager)})
    assert serializer.is_valid(), serializer.errors
    serializer.save()
    after = Station.objects.get(pk="NEW-3")
    assert (after.registration, after.connected, after.security_profile) == ("Accepted", True, 0)


def test_people_deciding_at_once_count_once(personas: Personas):
    pending_station("NEW-4", personas.site_a)
    clients = [(logged_in(personas.operator), "approve"), (logged_in(personas.manager), "reject")]
    jobs = [lambda c=c, d=d: c.post(f"/pending/NEW-4/{d}/", **HTMX) for c, d in clients * 2]
    responses, errors = in_threads(jobs)
    assert not errors, errors
    assert [r.status_code for r in responses] == [200] * 4
    answers = [r.content.decode() for r in responses]
    assert sum("already decided" not in answer for answer in answers) == 1
    [(actor, _, summary, _, details)] = decisions()
    final = Station.objects.get(pk="NEW-4").registration
    assert details["registration"] == ["Pending", final]
    assert actor == ("operator" if final == "Accepted" else "manager")
    assert summary == f"{final.lower()} station NEW-4 at Site A"


def test_a_connected_station_learns_it_was_accepted_at_its_next_boot(personas, settings):
    settings.OCPP = {**settings.OCPP, "ONBOARDING": True}
    operator = logged_in(personas.operator)
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}

    async def flow():
        charger = ChargerSocket("NEWCOMER-9", password=None)
        assert await charger.connect()
        answer = await charger.ok("BootNotification", boot)
        # It is told when to ask again: the heartbeat interval.
        assert (answer["status"], answer["interval"]) == (
            "Pending", settings.OCPP["HEARTBEAT_INTERVAL"])
        await database_sync_to_async(operator.post)("/pending/NEWCOMER-9/approve/")
        # Accepted, it is given a password of its own before anything else.
        configuration = await charger.receive()
        assert configuration[2:] == ["ChangeConfiguration", {
            "key": "AuthorizationKey", "value": configuration[3]["value"]}]
        await charger.answer(configuration, {"status": "Accepted"})
        assert (await charger.ok("BootNotification", boot))["status"] == "Accepted"
        await charger.close()

    async_to_sync(flow)()
    assert decisions()[0][2] == "accepted station NEWCOMER-9"


def test_a_connected_station_rejected_by_a_person_is_closed_and_kept_out(personas):
    """It does not keep its socket until it next boots: the consumer holding it closes it, and
    the handshake refuses it from then on."""
    make_station("TURNED-AWAY")
    operator = logged_in(personas.operator)

    async def flow():
        charger = ChargerSocket("TURNED-AWAY")
        assert await charger.connect()
        await charger.ok("Heartbeat", {})
        response = await database_sync_to_async(operator.patch)(
            "/api/v1/stations/TURNED-AWAY/", {"registration": "Rejected"},
            content_type="application/json")
        assert response.status_code == 200, response.content
        closed = await charger.communicator.receive_output(timeout=5)
        await charger.close()  # the server's websocket.disconnect after the close
        again = ChargerSocket("TURNED-AWAY")
        return closed, await again.connect()

    closed, reconnected = async_to_sync(flow)()
    assert closed == {"type": "websocket.close", "code": 1000}
    assert not reconnected
    assert not Station.objects.get(pk="TURNED-AWAY").connected


def test_a_decision_is_answered_while_the_channel_layer_is_away(
        personas, settings, caplog, django_capture_on_commit_callbacks):
    """The consumer is told through the channel layer, which may be away (Redis restarting):
    the decision is stored and answered all the same, and the socket follows at the station's
    next boot."""
    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}}  # nothing listens there
    make_station("NO-LAYER")
    operator = logged_in(personas.operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.patch("/api/v1/stations/NO-LAYER/", {"registration": "Rejected"},
                                  content_type="application/json")
    assert response.status_code == 200, response.content
    assert Station.objects.get(pk="NO-LAYER").registration == "Rejected"
    assert "ocpp.registration for NO-LAYER not delivered" in caplog.text
