"""REST API v1: CRUD, validation, tenant scoping, commands, schema and tokens.

Commands that reach a connected charger are tested with the gateway; here stations are never
connected, which is a path of its own (not_connected, or a CommandError when the station's OCPP
version is unknown).
"""

import io
import re
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import IdToken
from stations import records
from stations.models import Call, MessageLog, MeterSample, Station, StatusChange
from stations.services import batch, connectors
from tests.support.personas import make_station, make_transaction

pytestmark = pytest.mark.django_db

STATIONS = "/api/v1/stations/"
TOKENS = "/api/v1/id-tokens/"
TRANSACTIONS = "/api/v1/transactions/"
CALLS = "/api/v1/calls/"
NEW_PASSWORD = "a-new-charger-password-42"


def station_url(station_id: str, suffix: str = "") -> str:
    return f"{STATIONS}{quote(station_id, safe='')}/{suffix}"


def ids(response) -> list:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- stations: create, read, change, delete ---------------------------------------------------

def test_operator_creates_station_and_no_response_holds_its_password(api, operator, site_a):
    client = api(operator)
    created = client.post(STATIONS, {"id": "NEW-1", "site": site_a.pk, "security_profile": 1,
                                     "password": NEW_PASSWORD}, format="json")
    assert created.status_code == 201, created.content
    station = Station.objects.get(pk="NEW-1")
    assert station.check_password(NEW_PASSWORD)
    assert station.registration == Station.Registration.ACCEPTED

    changed = client.patch(station_url("NEW-1"), {"password": NEW_PASSWORD[::-1]}, format="json")
    assert changed.status_code == 200, changed.content
    station.refresh_from_db()
    assert station.check_password(NEW_PASSWORD[::-1])

    responses = [created, changed, client.get(station_url("NEW-1")), client.get(STATIONS)]
    for response in responses:
        assert b"password" not in response.content
        assert NEW_PASSWORD.encode() not in response.content
        assert station.password_hash.encode() not in response.content


def test_station_shows_its_evses_and_connectors(api, manager, station_a):
    batch.status_record(station_a, evse=2, connector=1, status="Faulted", error_code="X")
    body = api(manager).get(station_url(station_a.pk)).json()
    assert body["site"] == station_a.site_id and body["security_profile"] == 1
    assert body["connected"] is False and body["ocpp_version"] == ""
    assert [(e["number"], [(c["number"], c["status"]) for c in e["connectors"]])
            for e in body["evses"]] == [(1, [(1, "Available")]), (2, [(1, "Faulted")])]


@pytest.mark.parametrize("fields", [
    {},
    {"security_profile": 1},
    {"security_profile": 2},
])
def test_station_with_basic_auth_profile_needs_a_password(api, operator, site_a, fields):
    response = api(operator).post(STATIONS, {"id": "NEW-1", "site": site_a.pk, **fields},
                                  format="json")
    assert response.status_code == 400
    (message,) = response.json()["password"]
    assert "set one, or choose security_profile 0 explicitly" in message
    assert not Station.objects.filter(pk="NEW-1").exists()


@pytest.mark.parametrize("profile", [0, 3])
def test_profile_0_or_3_needs_no_password(api, operator, site_a, profile):
    response = api(operator).post(
        STATIONS, {"id": "NEW-1", "site": site_a.pk, "security_profile": profile}, format="json"
    )
    assert response.status_code == 201, response.content
    assert Station.objects.get(pk="NEW-1").password_hash == ""


def test_station_may_not_drop_to_a_password_profile_without_one(api, operator, site_a):
    Station.objects.create(pk="OPEN", site=site_a, security_profile=0)
    response = api(operator).patch(station_url("OPEN"), {"security_profile": 2}, format="json")
    assert response.status_code == 400 and "password" in response.json()


@pytest.mark.parametrize("station_id", ["A:B", "A/B", "A B", "Ä", "", "X" * 49])
def test_station_id_must_be_an_ocpp_identifier(api, operator, site_a, station_id):
    response = api(operator).post(STATIONS, {"id": station_id, "site": site_a.pk,
                                             "security_profile": 0}, format="json")
    assert response.status_code == 400
    assert response.json()["id"]  # a message for the field, whichever rule it broke
    assert not Station.objects.filter(pk=station_id).exists()


def test_station_id_with_every_allowed_character_works_in_urls(api, operator, site_a):
    station_id = "Az09*-_=+|@.x" + "Y" * 35
    client = api(operator)
    created = client.post(STATIONS, {"id": station_id, "site": site_a.pk,
                                     "security_profile": 0}, format="json")
    assert created.status_code == 201, created.content
    assert client.get(station_url(station_id)).json()["id"] == station_id
    assert client.get(station_url(station_id, "calls/")).status_code == 200


def test_station_password_is_checked(api, operator, site_a):
    response = api(operator).post(STATIONS, {"id": "NEW-1", "site": site_a.pk,
                                             "password": "short"}, format="json")
    assert response.status_code == 400
    assert response.json()["password"] == [
        "A charger password is 16 to 40 characters of a-z A-Z 0-9 * - _ = : + | @ ."
    ]


def test_station_id_is_unique_and_fixed(api, operator, manager, station_a, station_b):
    duplicate = api(manager).post(STATIONS, {"id": station_b.pk, "site": station_a.site_id,
                                             "password": NEW_PASSWORD}, format="json")
    assert duplicate.status_code == 400
    assert duplicate.json()["id"] == ["A station with this id already exists."]

    renamed = api(operator).patch(station_url(station_a.pk), {"id": "OTHER"}, format="json")
    assert renamed.status_code == 400 and "cannot be changed" in renamed.json()["id"][0]
    assert not Station.objects.filter(pk="OTHER").exists()


def test_manager_approves_an_onboarded_station(api, manager, site_a):
    Station.objects.create(pk="ONBOARDED", site=site_a, security_profile=0,
                           registration=Station.Registration.PENDING)
    response = api(manager).patch(station_url("ONBOARDED"), {"registration": "Accepted"},
                                  format="json")
    assert response.status_code == 200, response.content
    assert Station.objects.get(pk="ONBOARDED").registration == Station.Registration.ACCEPTED


def test_manager_creates_stations_on_own_sites_only(api, manager, site_a, site_b):
    client = api(manager)
    other_site = client.post(STATIONS, {"id": "NEW-1", "site": site_b.pk,
                                        "password": NEW_PASSWORD}, format="json")
    assert other_site.status_code == 400 and other_site.json()["site"]
    no_site = client.post(STATIONS, {"id": "NEW-1", "password": NEW_PASSWORD}, format="json")
    assert no_site.status_code == 400
    assert no_site.json()["site"] == ["Choose one of your sites."]
    moved = client.patch(station_url("STATION-A"), {"site": site_b.pk}, format="json")
    assert moved.status_code == 400
    assert not Station.objects.filter(pk="NEW-1").exists()


def test_station_read_only_fields_are_ignored_on_write(api, operator, station_a):
    response = api(operator).patch(station_url(station_a.pk),
                                   {"connected": True, "vendor": "Fake"}, format="json")
    assert response.status_code == 200
    station_a.refresh_from_db()
    assert not station_a.connected and station_a.vendor == ""


def test_delete_station_keeps_billing_records(api, operator, station_a, station_b):
    make_transaction(station_a, stop_wh=Decimal("2000"))
    client = api(operator)
    refused = client.delete(station_url(station_a.pk))
    assert refused.status_code == 409
    assert "set its registration to Rejected" in refused.json()["detail"]
    assert client.delete(station_url(station_b.pk)).status_code == 204
    assert list(Station.objects.values_list("pk", flat=True)) == [station_a.pk]


def test_deleting_a_station_deletes_what_it_sent(api, operator, station_b):
    """The tables every message adds rows to have no foreign-key constraints in the database
    (stations/models.py): Django's own cascade must leave nothing behind."""
    connector = connectors.connector_get(station_b, 1, 1)
    MessageLog.objects.create(station=station_b, direction="in", message_type=2,
                              message_id="1", action="Heartbeat", payload={})
    StatusChange.objects.create(station=station_b, connector=connector, status="Available",
                                timestamp=timezone.now())
    MeterSample.objects.create(station=station_b, evse_number=1, value=Decimal("1200"),
                               timestamp=timezone.now())
    assert api(operator).delete(station_url(station_b.pk)).status_code == 204
    for model in (MessageLog, StatusChange, MeterSample):
        assert not model.objects.filter(station_id=station_b.pk).exists(), model


# --- who may see and do what ------------------------------------------------------------------

def test_anonymous_is_refused(api, station_a):
    response = api().get(STATIONS)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_outsider_sees_nothing_of_org_a(api, outsider, station_a, station_b, personas):
    tx = make_transaction(station_a, personas.token)
    call = Call.objects.create(station=station_a, action="Reset")
    client = api(outsider)
    assert ids(client.get(STATIONS)) == [station_b.pk]
    assert ids(client.get(TRANSACTIONS)) == []
    assert ids(client.get(CALLS)) == []
    assert ids(client.get(TOKENS)) == []
    for method, url in [
        ("get", station_url(station_a.pk)),
        ("patch", station_url(station_a.pk)),
        ("put", station_url(station_a.pk)),
        ("delete", station_url(station_a.pk)),
        ("get", station_url(station_a.pk, "calls/")),
        ("post", station_url(station_a.pk, "calls/")),
        ("post", station_url(station_a.pk, "reset/")),
        ("post", station_url(station_a.pk, "remote-start/")),
        ("get", f"{TRANSACTIONS}{tx.pk}/"),
        ("get", f"{TRANSACTIONS}{tx.pk}/samples/"),
        ("post", f"{TRANSACTIONS}{tx.pk}/remote-stop/"),
        ("get", f"{CALLS}{call.pk}/"),
        ("get", f"{TOKENS}{personas.token.pk}/"),
    ]:
        response = getattr(client, method)(url, {}, format="json")
        assert response.status_code == 404, (method, url, response.content)
        assert response.json()["detail"]
    assert Station.objects.filter(pk=station_a.pk).exists()
    assert Call.objects.count() == 1


def test_finance_reads_everything_and_changes_nothing(api, finance, station_a, station_b,
                                                      personas):
    client = api(finance)
    assert ids(client.get(STATIONS)) == [station_a.pk, station_b.pk]
    assert len(ids(client.get(TOKENS))) == 2
    for response in [
        client.patch(station_url(station_a.pk), {"registration": "Rejected"}, format="json"),
        client.post(STATIONS, {"id": "NEW-1", "security_profile": 0}, format="json"),
        client.post(station_url(station_a.pk, "reset/"), {}, format="json"),
        client.patch(f"{TOKENS}{personas.token.pk}/", {"status": "Blocked"}, format="json"),
    ]:
        assert response.status_code == 403, response.content
        assert "may" in response.json()["detail"]
    assert Call.objects.count() == 0


def test_finance_who_manages_a_site_operates_only_that_site(api, finance, personas, station_a,
                                                            station_b):
    personas.org_b.memberships.create(user=finance, role="property_manager")
    client = api(finance)
    assert client.patch(station_url(station_b.pk), {"registration": "Rejected"},
                        format="json").status_code == 200
    assert client.patch(station_url(station_a.pk), {"registration": "Rejected"},
                        format="json").status_code == 403


def test_fleet_admin_has_no_stations(api, fleet, station_a):
    client = api(fleet)
    assert ids(client.get(STATIONS)) == []
    response = client.post(STATIONS, {"id": "NEW-1", "security_profile": 0}, format="json")
    assert response.status_code == 403


# --- ID tokens --------------------------------------------------------------------------------

def test_operator_manages_id_tokens(api, operator, personas):
    client = api(operator)
    created = client.post(TOKENS, {"value": "CARD-9", "holder": "Ann",
                                   "organization": personas.fleet_org.pk,
                                   "expires_at": "2020-01-01T00:00:00Z"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "Accepted" and body["effective_status"] == "Expired"
    assert body["token_type"] == "ISO14443"
    url = f"{TOKENS}{body['id']}/"
    assert client.patch(url, {"status": "Blocked", "expires_at": None},
                        format="json").json()["effective_status"] == "Blocked"
    duplicate = client.post(TOKENS, {"value": "CARD-9"}, format="json")
    assert duplicate.status_code == 400 and duplicate.json()["value"]
    bad_type = client.post(TOKENS, {"value": "CARD-10", "token_type": "Magic"}, format="json")
    assert bad_type.status_code == 400 and bad_type.json()["token_type"]
    assert client.delete(url).status_code == 204
    assert not IdToken.objects.filter(value="CARD-9").exists()


def test_fleet_admin_manages_own_fleet_tokens_only(api, fleet, personas):
    client = api(fleet)
    assert [row["value"] for row in client.get(TOKENS).json()["results"]] == ["TOKEN-FLEET"]

    own = client.post(TOKENS, {"value": "FLEET-2", "organization": personas.fleet_org.pk},
                      format="json")
    assert own.status_code == 201, own.content
    for fields in [{"value": "FLEET-3"}, {"value": "FLEET-3", "organization": None},
                   {"value": "FLEET-3", "organization": personas.org_a.pk}]:
        response = client.post(TOKENS, fields, format="json")
        assert response.status_code == 400, fields
        assert response.json()["organization"]
    handed_over = client.patch(f"{TOKENS}{personas.fleet_token.pk}/",
                               {"organization": personas.operator_org.pk}, format="json")
    assert handed_over.status_code == 400
    others = client.patch(f"{TOKENS}{personas.token.pk}/", {"status": "Blocked"}, format="json")
    assert others.status_code == 404
    assert IdToken.objects.get(pk=personas.token.pk).status == "Accepted"


def test_manager_cannot_write_tokens(api, manager):
    assert api(manager).post(TOKENS, {"value": "X"}, format="json").status_code == 403


# --- transactions and samples -----------------------------------------------------------------

def test_transactions_list_filters_and_energy(api, operator, personas, station_a, station_b):
    done = make_transaction(station_a, personas.token, stop_wh=Decimal("2500.5"))
    active = make_transaction(station_b, personas.fleet_token)
    client = api(operator)
    assert ids(client.get(TRANSACTIONS)) == [active.pk, done.pk]  # newest first
    assert ids(client.get(TRANSACTIONS, {"station": station_a.pk})) == [done.pk]
    assert ids(client.get(TRANSACTIONS, {"id_token": "TOKEN-FLEET"})) == [active.pk]
    assert ids(client.get(TRANSACTIONS, {"state": "active"})) == [active.pk]
    assert ids(client.get(TRANSACTIONS, {"state": "completed"})) == [done.pk]

    bad = client.get(TRANSACTIONS, {"state": "running"})
    assert bad.status_code == 400
    assert bad.json() == {"state": ['"running" is not a valid choice.']}

    body = client.get(f"{TRANSACTIONS}{done.pk}/", {"state": "active"}).json()
    assert body["transaction_id"] == done.transaction_id and body["station"] == station_a.pk
    assert (body["evse"], body["connector"], body["id_token"]) == (1, 1, "TOKEN-OPERATOR")
    # Decimals are strings: exact, as billing needs them.
    assert (body["meter_start_wh"], body["meter_stop_wh"], body["energy_wh"]) == (
        "1000.000", "2500.500", "1500.500")
    assert body["state"] == "completed" and body["stop_reason"] == "Local"
    assert body["needs_review"] is False and body["review_note"] == ""


def test_transaction_scoping_by_site_and_by_fleet_token(api, manager, fleet, personas,
                                                        station_a, station_b):
    at_a = make_transaction(station_a, personas.token)
    fleet_at_b = make_transaction(station_b, personas.fleet_token)
    assert ids(api(manager).get(TRANSACTIONS)) == [at_a.pk]
    # A fleet admin follows their cards to any site.
    assert ids(api(fleet).get(TRANSACTIONS)) == [fleet_at_b.pk]


def test_samples_are_paginated_oldest_first(api, manager, station_a):
    tx = make_transaction(station_a)
    base = tx.started_at
    batch.meter_values_record(station_a, evse=1, transaction_id=tx.transaction_id, samples=[
        records.Sample(base.replace(second=s), Decimal(1000 + s)) for s in (30, 10, 20)
    ])
    response = api(manager).get(f"{TRANSACTIONS}{tx.pk}/samples/", {"page_size": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and body["next"]
    assert [row["value"] for row in body["results"]] == ["1010.0000", "1020.0000"]
    assert body["results"][0]["measurand"] == "Energy.Active.Import.Register"
    assert body["results"][0]["unit"] == "Wh"


# --- commands ---------------------------------------------------------------------------------

def test_call_to_a_disconnected_station_ends_not_connected(api, manager, station_a):
    Station.objects.filter(pk=station_a.pk).update(ocpp_version="1.6")
    client = api(manager)
    response = client.post(station_url(station_a.pk, "calls/"),
                           {"action": "Reset", "payload": {"type": "Soft"}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "not_connected" and body["action"] == "Reset"
    assert body["payload"] == {"type": "Soft"} and body["requested_by"] == "manager"
    assert body["completed_at"] is not None and body["response"] is None

    assert ids(client.get(station_url(station_a.pk, "calls/"))) == [body["id"]]
    assert ids(client.get(CALLS)) == [body["id"]]
    assert client.get(f"{CALLS}{body['id']}/").json()["status"] == "not_connected"


def test_shortcut_to_a_disconnected_station_ends_not_connected(api, operator):
    make_station("CP-201", None, ocpp_version="2.0.1", evses=1)
    response = api(operator).post(station_url("CP-201", "reset/"), {"hard": True},
                                  format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "not_connected"
    assert (body["action"], body["payload"]) == ("Reset", {"type": "Immediate"})


def test_call_the_version_does_not_allow_is_a_readable_400(api, manager, station_a):
    Station.objects.filter(pk=station_a.pk).update(ocpp_version="1.6")
    response = api(manager).post(station_url(station_a.pk, "calls/"),
                                 {"action": "Reset", "payload": {"type": "Sideways"}},
                                 format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Reset is not valid for OCPP 1.6:")
    assert Call.objects.count() == 0


def test_command_to_a_station_that_never_connected_is_a_readable_400(api, manager, station_a,
                                                                    personas):
    client = api(manager)
    started = client.post(station_url(station_a.pk, "remote-start/"),
                          {"evse": 1, "id_token": "TOKEN-OPERATOR"}, format="json")
    assert started.status_code == 400
    assert started.json() == {
        "detail": "STATION-A has never connected: its OCPP version is not known yet"
    }
    tx = make_transaction(station_a, personas.token)
    stopped = client.post(f"{TRANSACTIONS}{tx.pk}/remote-stop/", format="json")
    assert stopped.status_code == 400 and "never connected" in stopped.json()["detail"]
    assert Call.objects.count() == 0


@pytest.mark.parametrize(("suffix", "data", "field"), [
    ("calls/", {"action": "../../etc/passwd"}, "action"),
    ("calls/", {"payload": {}}, "action"),
    ("calls/", {"action": "Reset", "payload": [1]}, "payload"),
    ("remote-start/", {"evse": 0, "id_token": "T"}, "evse"),
    ("remote-start/", {"evse": 1}, "id_token"),
    ("unlock/", {"connector": 1}, "evse"),
    ("availability/", {"evse": 0}, "operative"),
    ("trigger/", {}, "message"),
])
def test_command_parameters_are_checked(api, operator, station_a, suffix, data, field):
    response = api(operator).post(station_url(station_a.pk, suffix), data, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]


# --- errors, query counts, schema, tokens -----------------------------------------------------

def test_errors_are_json(api, operator):
    client = api(operator)
    unknown = client.get("/api/v1/no-such-thing/")
    assert unknown.status_code == 404 and unknown.json() == {"detail": "No such API endpoint."}
    malformed = client.post(STATIONS, "{not json", content_type="application/json")
    assert malformed.status_code == 400 and "JSON parse error" in malformed.json()["detail"]
    assert client.get(f"{TRANSACTIONS}abc/").status_code == 404


def test_lists_cost_a_fixed_number_of_queries(api, manager, site_a, personas,
                                              django_assert_max_num_queries):
    for n in range(50):
        station = make_station(f"MANY-{n:02}", site_a, evses=2)
        make_transaction(station, personas.token)
        Call.objects.create(station=station, action="Reset", requested_by=manager)
    client = api(manager)
    for url in [STATIONS, TRANSACTIONS, CALLS]:
        # Token, roles, scope, count, rows, and for stations their EVSEs and connectors.
        with django_assert_max_num_queries(8):
            response = client.get(url)
        assert response.status_code == 200 and len(response.json()["results"]) == 50, url


def test_schema_validates_without_warnings():
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=io.StringIO())


def test_swagger_ui_needs_no_cdn(client, manager):
    client.force_login(manager)  # private outside DEBUG (API_DOCS_PUBLIC)
    assert client.get("/api/schema/").status_code == 200
    page = client.get("/api/docs/").content.decode()
    assert "://" not in page  # no absolute URL: nothing is fetched from another host
    assets = re.findall(r"""(?:src|href)=["']([^"']+)""", page)
    assert len(assets) == 4, page
    for url in assets:
        assert url.startswith("/static/") and finders.find(url.removeprefix("/static/")), url


def test_drf_create_token_authenticates_the_api(manager, station_a):
    out = io.StringIO()
    call_command("drf_create_token", "manager", stdout=out)
    key = Token.objects.get(user=manager).key
    assert key in out.getvalue()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert ids(client.get(STATIONS)) == [station_a.pk]


def test_session_login_works_too(client, manager, station_a):
    client.force_login(manager)
    assert client.get(STATIONS).json()["results"][0]["id"] == station_a.pk

