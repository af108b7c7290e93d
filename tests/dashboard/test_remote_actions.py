"""The registry of remote actions (stations/web/actions.py) drives both surfaces: every entry has
its form on the station page and its API endpoint, which take the same fields, answer with the
Call, and refuse what they cannot take with a message a person can read."""

import pytest
from django.db import transaction
from django.utils.html import escape

from accounts import card_use
from accounts.models import IdToken
from stations.models import Call, Transaction
from stations.services import presence
from stations.web.actions import ACTIONS, BY_NAME, RemoteAction
from tests.support.chargers import answered
from tests.support.personas import CHARGER_PASSWORD, Personas, make_station, make_transaction

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}

# Fields each action takes, sent alike as the API's JSON and as the dashboard's form, and the
# message they become for an OCPP 1.6 charger.
EXAMPLES = {
    "start": ({"evse": 1, "id_token": "TOKEN-SITE-A"}, "RemoteStartTransaction"),
    "stop": ({}, "RemoteStopTransaction"),
    "reset": ({"hard": True}, "Reset"),
    "unlock": ({"evse": 1}, "UnlockConnector"),
    "availability": ({"evse": 0, "operative": False}, "ChangeAvailability"),
    "trigger": ({"message": "Heartbeat"}, "TriggerMessage"),
}
# Fields no form of ours sends, and the field each refusal names (as the form labels it).
MISTAKES = {
    "start": ({"evse": 1, "id_token": "   "}, "id_token", "ID token"),
    "reset": ({"hard": "sideways"}, "hard", "hard"),
    "unlock": ({"evse": "one"}, "evse", "Connector"),
    "availability": ({"evse": 0}, "operative", "operative"),
    "trigger": ({"message": "Heartbeat", "evse": -1}, "evse", "For"),
}
# A 1.6 charger's answers, where "Accepted" is not one.
ANSWERS = {"UnlockConnector": {"status": "Unlocked"}}



@pytest.fixture(autouse=True)
def site_card(personas: Personas) -> IdToken:
    """A card of site A's owner: one its property manager may start a session with there."""
    return IdToken.objects.create(value="TOKEN-SITE-A", organization=personas.org_a)


each_action = pytest.mark.parametrize("entry", ACTIONS, ids=lambda entry: entry.name)


def api_url(entry: RemoteAction, station_id: str, session: Transaction) -> str:
    if entry.on_session:
        return f"/api/v1/transactions/{session.pk}/{entry.api_path}/"
    return f"/api/v1/stations/{station_id}/{entry.api_path}/"


def form_of(entry: RemoteAction, data: dict, session: Transaction) -> dict:
    """The dashboard's form post: the same fields, and the session an action on one names."""
    return {**data, "transaction": session.pk} if entry.on_session else data


def test_every_action_has_examples():
    assert set(EXAMPLES) == set(BY_NAME)
    assert set(MISTAKES) == {entry.name for entry in ACTIONS if entry.fields is not None}


@each_action
def test_each_form_is_offered_to_those_who_may_take_it(client, personas: Personas, entry):
    make_transaction(personas.station_a, personas.token)  # a running session offers its stop
    form = f'action="/stations/STATION-A/actions/{entry.name}/"'
    client.force_login(personas.operator)
    assert form in client.get("/stations/STATION-A/").content.decode()
    client.force_login(personas.finance)
    assert form not in client.get("/stations/STATION-A/").content.decode()


@each_action
@pytest.mark.django_db(transaction=True)
def test_each_endpoint_sends_its_command_to_a_connected_charger(api, personas: Personas, entry):
    session = make_transaction(personas.station_a, personas.token)
    data, message = EXAMPLES[entry.name]
    client = api(personas.operator)
    frame, response = answered(
        "STATION-A", lambda: client.post(api_url(entry, "STATION-A", session), data,
                                         format="json"),
        lambda frame: ANSWERS.get(frame[2], {"status": "Accepted"}), password=CHARGER_PASSWORD)
    assert frame[2] == message
    assert response.status_code == 201, response.content
    call = response.json()
    assert (call["action"], call["status"]) == (message, "accepted")
    assert call["requested_by"] == "operator"


@each_action
def test_the_dashboard_posts_the_same_fields(client, personas: Personas, entry):
    station = make_station("OLD-16", personas.site_a, ocpp_version="1.6", evses=1)
    session = make_transaction(station, personas.token)
    data, message = EXAMPLES[entry.name]
    client.force_login(personas.manager)
    response = client.post(f"/stations/OLD-16/actions/{entry.name}/",
                           form_of(entry, data, session), **HTMX)
    assert response.status_code == 200
    assert f"{message}</strong>: Not connected" in response.content.decode()
    assert Call.objects.get().requested_by == personas.manager


@each_action
def test_a_station_that_never_connected_is_a_readable_400(api, personas: Personas, entry):
    session = make_transaction(personas.station_a, personas.token)
    data, _ = EXAMPLES[entry.name]
    response = api(personas.manager).post(api_url(entry, "STATION-A", session), data,
                                          format="json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "STATION-A has never connected: its OCPP version is not known yet"}
    assert not Call.objects.exists()


@pytest.mark.parametrize("name", MISTAKES)
def test_fields_it_cannot_take_are_a_400_naming_them(api, client, personas: Personas, name):
    entry = BY_NAME[name]
    with transaction.atomic():  # connected: only the fields stand in the way
        presence.station_connected(personas.station_a, "1.6")
    session = make_transaction(personas.station_a, personas.token)
    data, field, label = MISTAKES[name]
    response = api(personas.operator).post(api_url(entry, "STATION-A", session), data,
                                           format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]

    client.force_login(personas.operator)
    page = client.post(f"/stations/STATION-A/actions/{name}/", form_of(entry, data, session))
    assert page.status_code == 400
    assert page.content.decode().startswith(f"{label}: ")
    shown = client.post(f"/stations/STATION-A/actions/{name}/", form_of(entry, data, session),
                        **HTMX)
    assert shown.status_code == 400 and f'role="alert">{label}: ' in shown.content.decode()
    assert not Call.objects.exists()


REFUSED_STARTS = {
    # card: why the start is not sent
    "A-BLOCKED": "card A-BLOCKED is blocked",
    "A-EXPIRED": "card A-EXPIRED has expired",
    "NOBODY-KNOWS": "card NOBODY-KNOWS is not one of the cards you may start with",
    "TOKEN-SITE-A": "card TOKEN-SITE-A is charging at this station already",
    "A-ELSEWHERE": "card A-ELSEWHERE does not charge at this station's site",
    # Another organization's card, even one that charges here: not the manager's to use.
    "TOKEN-FLEET": "card TOKEN-FLEET is not one of the cards you may start with",
}
# An operator admin sees every card: an unknown one is said to be unknown.
UNKNOWN_TO_THE_OPERATOR = "card NOBODY-KNOWS is unknown"


def test_a_remote_start_the_charger_would_refuse_is_not_sent_and_says_why(
        api, client, personas: Personas, site_card: IdToken):
    """Blocked, expired, unknown, busy, elsewhere-only and other people's cards never reach the
    charger (which would answer Accepted and leave an empty session): a 400 in the API, the
    reason in red on the page, no call."""
    with transaction.atomic():
        presence.station_connected(personas.station_a, "1.6")
    IdToken.objects.create(value="A-BLOCKED", organization=personas.org_a, status="Blocked")
    IdToken.objects.create(value="A-EXPIRED", organization=personas.org_a,
                           expires_at="2020-01-01T00:00:00Z")
    IdToken.objects.create(value="A-ELSEWHERE", organization=personas.org_a
                           ).allowed_sites.set([personas.site_b])
    card_use.access_grant(personas.manager, personas.fleet_org, personas.site_a)
    make_transaction(personas.station_a, site_card)
    client.force_login(personas.manager)
    for card, reason in REFUSED_STARTS.items():
        data = {"evse": 1, "id_token": card}
        response = api(personas.manager).post("/api/v1/stations/STATION-A/remote-start/", data,
                                              format="json")
        assert (response.status_code, response.json()) == (
            400, {"detail": f"Not sent: {reason}."}), card
        shown = client.post("/stations/STATION-A/actions/start/", data, **HTMX).content.decode()
        assert f'class="outcome bad" role="alert">Not sent: {escape(reason)}.' in shown, card
    operator = api(personas.operator).post("/api/v1/stations/STATION-A/remote-start/",
                                           {"evse": 1, "id_token": "NOBODY-KNOWS"},
                                           format="json")
    assert operator.json() == {"detail": f"Not sent: {UNKNOWN_TO_THE_OPERATOR}."}
    assert not Call.objects.exists()
    # The form offers only the cards the manager may start with here.
    form = client.get("/stations/STATION-A/").content.decode()
    assert '<option value="TOKEN-SITE-A">' in form
    assert not any(f'<option value="{card}">' in form
                   for card in ("A-BLOCKED", "A-ELSEWHERE", "TOKEN-FLEET", "TOKEN-OPERATOR"))


@pytest.mark.django_db(transaction=True)
def test_a_remote_start_shows_the_chargers_own_answer(client, personas: Personas):
    """What the page shows is the call's outcome as the charger answered: Rejected in red."""
    client.force_login(personas.manager)
    frame, response = answered(
        "STATION-A", lambda: client.post("/stations/STATION-A/actions/start/",
                                         {"evse": 1, "id_token": "TOKEN-SITE-A"}, **HTMX),
        lambda frame: {"status": "Rejected"}, password=CHARGER_PASSWORD)
    assert frame[2] == "RemoteStartTransaction"
    shown = response.content.decode()
    assert 'class="outcome bad"' in shown and "RemoteStartTransaction</strong>: Rejected" in shown
    assert Call.objects.get().status == Call.Status.REJECTED
