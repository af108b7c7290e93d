"""Charger credentials on real sockets: the answer to bad credentials, new passwords a station
accepts, credentials given at approval, and rate limits that spare the chargers behind a NAT."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.test import Client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from accounts.audit import MASK
from accounts.models import AuditEntry
from stations.models import Call, MessageLog, RefusedConnection, Station, StationEvent
from stations.services import commands
from tests.support.chargers import ChargerSocket, RealCharger, basic_auth, in_thread, serving
from tests.support.personas import CHARGER_PASSWORD, make_station

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "brand-new-password-1"  # 20 bytes: 1.6 and 2.0.1 both take it


async def handshake_status(port: int, station_id: str, password: str | None,
                           version: str = "1.6") -> int:
    """The HTTP status the server answers a charger's upgrade with (101 when it connects)."""
    headers = {"Authorization": basic_auth(station_id, password)} if password else {}
    try:
        async with connect(f"ws://127.0.0.1:{port}/ocpp/{station_id}",
                           subprotocols=[f"ocpp{version}"], additional_headers=headers,
                           open_timeout=5):
            return 101
    except InvalidStatus as refused:
        if refused.response.status_code == 401:
            challenge = refused.response.headers.get("WWW-Authenticate", "")
            assert challenge.startswith("Basic "), challenge
        return refused.response.status_code


def logins(station_id: str, *passwords: str | None) -> list[int]:
    async def flow() -> list[int]:
        async with serving() as port:
            return [await handshake_status(port, station_id, password)
                    for password in passwords]

    return async_to_sync(flow)()


# --- the answer to bad credentials ------------------------------------------------------------

def test_bad_or_missing_credentials_are_answered_401_with_a_basic_challenge():
    make_station("CHALLENGED")
    make_station("TURNED-AWAY", registration=Station.Registration.REJECTED)
    assert logins("CHALLENGED", "wrong-password-0123456", None, CHARGER_PASSWORD) == [
        401, 401, 101]
    # Not a matter of credentials: the server's 403.
    assert logins("TURNED-AWAY", CHARGER_PASSWORD) == [403]


# --- a new password the station accepts -------------------------------------------------------

def change_password(station_id: str, version: str, request: dict, answer: dict) -> Call:
    """A person's raw call (as the API's "send any action" makes it) answered by the charger."""
    action = "ChangeConfiguration" if version == "1.6" else "SetVariables"

    async def flow() -> Call:
        async with serving() as port, \
                RealCharger.connected(port, station_id, version) as charger:
            station = await Station.objects.aget(pk=station_id)
            pending = in_thread(commands.call_send, station, action, request)
            frame = await charger.receive()
            assert frame[2] == action and frame[3] == request
            await charger.answer(frame, answer)
            return await pending

    return async_to_sync(flow)()


AUTHORIZATION_KEY = {"key": "AuthorizationKey", "value": NEW_PASSWORD.encode().hex()}
BASIC_AUTH_PASSWORD = {"setVariableData": [{
    "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
    "attributeValue": NEW_PASSWORD}]}


def set_variables_answer(status: str) -> dict:
    return {"setVariableResult": [{"attributeStatus": status,
                                   "component": {"name": "SecurityCtrlr"},
                                   "variable": {"name": "BasicAuthPassword"}}]}


@pytest.mark.parametrize(("version", "request_payload", "answer"), [
    ("1.6", AUTHORIZATION_KEY, {"status": "Accepted"}),
    ("1.6", AUTHORIZATION_KEY, {"status": "RebootRequired"}),
    ("2.0.1", BASIC_AUTH_PASSWORD, set_variables_answer("Accepted")),
], ids=["1.6", "1.6-reboot", "2.0.1"])
def test_an_accepted_password_works_and_the_old_one_until_the_new_one_logged_in(
        version, request_payload, answer):
    make_station("ROTATED")
    call = change_password("ROTATED", version, request_payload, answer)
    assert call.status == Call.Status.ACCEPTED
    station = Station.objects.get(pk="ROTATED")
    assert NEW_PASSWORD not in station.password_hash_next  # a salted hash only
    # The charger may still come with the old one (it applies the new one on reconnection),
    # then logs in with the new one, after which the old one no longer works.
    assert logins("ROTATED", CHARGER_PASSWORD, NEW_PASSWORD, CHARGER_PASSWORD,
                  NEW_PASSWORD) == [101, 101, 401, 101]
    summaries = list(AuditEntry.objects.filter(target="station:ROTATED")
                     .values_list("summary", flat=True))
    assert any("new password accepted" in summary for summary in summaries)
    assert any("old password retired" in summary for summary in summaries)


@pytest.mark.parametrize(("version", "request_payload", "answer"), [
    ("1.6", AUTHORIZATION_KEY, {"status": "Rejected"}),
    ("2.0.1", BASIC_AUTH_PASSWORD, set_variables_answer("Rejected")),
], ids=["1.6", "2.0.1"])
def test_a_refused_password_changes_nothing(version, request_payload, answer):
    make_station("KEPT")
    call = change_password("KEPT", version, request_payload, answer)
    assert call.status == Call.Status.REJECTED
    assert logins("KEPT", NEW_PASSWORD, CHARGER_PASSWORD) == [401, 101]


@pytest.mark.parametrize(("version", "request_payload", "answer"), [
    ("1.6", AUTHORIZATION_KEY, {"status": "Accepted"}),
    ("2.0.1", BASIC_AUTH_PASSWORD, set_variables_answer("Accepted")),
], ids=["1.6", "2.0.1"])
def test_a_new_password_is_masked_in_the_call_the_api_and_the_message_log(
        version, request_payload, answer, operator, api):
    make_station("MASKED")
    call = change_password("MASKED", version, request_payload, answer)
    secrets = (NEW_PASSWORD, NEW_PASSWORD.encode().hex())
    stored = json.dumps(Call.objects.get(pk=call.pk).payload, ensure_ascii=False)
    logged = json.dumps(list(MessageLog.objects.filter(station_id="MASKED")
                             .values_list("payload", flat=True)), ensure_ascii=False)
    listed = api(operator).get("/api/v1/calls/").content.decode()
    for where in (stored, logged, listed):
        assert MASK in where and not any(secret in where for secret in secrets), where


def test_a_call_still_waiting_shows_its_password_masked(operator, api):
    station = make_station("WAITING", ocpp_version="1.6", connected=True)
    # Nobody holds the station's socket here: the call stays pending until it times out.
    pending = Call.objects.create(station=station, action="ChangeConfiguration",
                                  payload=AUTHORIZATION_KEY, message_id="m-1")
    listed = api(operator).get(f"/api/v1/calls/{pending.pk}/").json()
    assert listed["payload"] == {"key": "AuthorizationKey", "value": MASK}
    commands.call_not_sent(pending.pk)
    assert Call.objects.get(pk=pending.pk).payload["value"] == MASK


# --- credentials at approval -------------------------------------------------------------------

def onboard_and_approve(settings, client_user: User, station_id: str, version: str,
                        unauthenticated: bool = False) -> tuple[list, str]:
    """An unknown charger connects (onboarding on), a person approves it on the pending page;
    returns the frame the charger then receives (if any) and the page's answer."""
    settings.OCPP = {**settings.OCPP, "ONBOARDING": True}
    web = Client()
    web.force_login(client_user)

    async def flow() -> tuple[list, str]:
        charger = ChargerSocket(station_id, version, password=None)
        assert await charger.connect()
        form = {"unauthenticated": "on"} if unauthenticated else {}
        page = await in_thread(web.post, f"/pending/{station_id}/approve/", form,
                               headers={"HX-Request": "true"})
        frame = [] if unauthenticated else await charger.receive()
        if frame:
            await charger.answer(frame, {"status": "Accepted"} if version == "1.6"
                                 else set_variables_answer("Accepted"))
        await charger.close()
        return frame, page.content.decode()

    return async_to_sync(flow)()


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_an_approved_station_gets_a_password_it_is_sent_and_shown_once(settings, operator,
                                                                        version):
    frame, page = onboard_and_approve(settings, operator, "ONBOARDED", version)
    if version == "1.6":
        assert frame[2] == "ChangeConfiguration" and frame[3]["key"] == "AuthorizationKey"
        password = bytes.fromhex(frame[3]["value"]).decode()
        assert 16 <= len(password.encode()) <= 20
    else:
        assert frame[2] == "SetVariables"
        (item,) = frame[3]["setVariableData"]
        assert item["variable"]["name"] == "BasicAuthPassword"
        password = item["attributeValue"]
        assert 16 <= len(password) <= 40
    assert password in page  # shown to the person who approved, on that answer
    station = Station.objects.get(pk="ONBOARDED")
    assert station.registration == Station.Registration.ACCEPTED
    assert station.security_profile == Station.SecurityProfile.BASIC
    # No one takes it over without the password; the charger with it connects.
    assert logins("ONBOARDED", None, "someone-elses-guess-00", password) == [401, 401, 101]
    assert password not in json.dumps(list(AuditEntry.objects.values_list("details",
                                                                          flat=True)))


def test_only_an_explicit_choice_leaves_an_approved_station_without_a_password(settings,
                                                                                operator):
    _, page = onboard_and_approve(settings, operator, "OPEN-BY-CHOICE", "1.6",
                                  unauthenticated=True)
    assert "password" not in page
    station = Station.objects.get(pk="OPEN-BY-CHOICE")
    assert station.registration == Station.Registration.ACCEPTED
    assert station.security_profile == Station.SecurityProfile.NONE
    assert not Call.objects.filter(station=station).exists()


def test_accepting_through_the_api_gives_the_password_in_that_answer_only(settings, operator,
                                                                           api):
    settings.OCPP = {**settings.OCPP, "ONBOARDING": True}
    Station.objects.create(pk="API-ONBOARDED", registration=Station.Registration.PENDING,
                           security_profile=Station.SecurityProfile.NONE)
    accepted = api(operator).patch("/api/v1/stations/API-ONBOARDED/",
                                   {"registration": "Accepted"}, format="json").json()
    password = accepted["generated_password"]
    assert accepted["security_profile"] == 1 and 16 <= len(password) <= 40
    assert "generated_password" not in api(operator).get(
        "/api/v1/stations/API-ONBOARDED/").json()
    assert logins("API-ONBOARDED", None, password) == [401, 101]


def test_onboarding_is_rate_limited_per_address(settings):
    settings.OCPP = {**settings.OCPP, "ONBOARDING": True, "ONBOARDING_LIMIT": 2}
    crowd = ("203.0.113.9", 40000)

    def onboards(station_id: str, client: tuple[str, int]) -> bool:
        async def attempt() -> bool:
            charger = ChargerSocket(station_id, password=None, client=client)
            connected = await charger.connect()
            if connected:
                await charger.close()
            return connected

        return async_to_sync(attempt)()

    assert [onboards(f"NEW-{n}", crowd) for n in range(3)] == [True, True, False]
    assert onboards("NEW-0", crowd)  # already pending: not a new one
    assert onboards("NEW-ELSEWHERE", ("198.51.100.20", 40000))
    assert not Station.objects.filter(pk="NEW-2").exists()
    assert list(RefusedConnection.objects.values_list("reason", flat=True)) == ["rate_limited"]


# --- rate limits and NAT -----------------------------------------------------------------------

def test_failures_lock_out_one_station_at_one_address_not_its_neighbours(settings):
    settings.OCPP = {**settings.OCPP, "AUTH_FAILURE_LIMIT": 3}
    for station_id in ("NAT-GOOD", "NAT-NEIGHBOUR", "NAT-TARGET"):
        make_station(station_id)

    async def flow() -> list[int]:
        async with serving() as port:
            answers = [await handshake_status(port, "NAT-GOOD", CHARGER_PASSWORD)]
            # Someone behind the same address guesses the passwords of two stations.
            for _ in range(3):
                answers.append(await handshake_status(port, "NAT-GOOD", "guess-0123456789abc"))
                answers.append(await handshake_status(port, "NAT-TARGET", "guess-0123456789abc"))
            answers += [
                await handshake_status(port, "NAT-GOOD", CHARGER_PASSWORD),  # logged in before
                await handshake_status(port, "NAT-NEIGHBOUR", CHARGER_PASSWORD),  # not guessed
                await handshake_status(port, "NAT-TARGET", CHARGER_PASSWORD),  # never seen
                await handshake_status(port, "NAT-GOOD", "guess-0123456789abc"),
            ]
            return answers

    answers = async_to_sync(flow)()
    assert answers == [101] + [401] * 6 + [101, 101, 403, 403]
    blocked = StationEvent.objects.filter(kind=StationEvent.Kind.SECURITY, name="LoginsBlocked")
    assert sorted(blocked.values_list("station_id", flat=True)) == ["NAT-GOOD", "NAT-TARGET"]
    assert blocked.first().detail["address"] == "127.0.0.1"


def test_approving_without_htmx_shows_the_password_on_the_answer_not_in_the_session(operator):
    Station.objects.create(pk="FORM-ONBOARDED", registration=Station.Registration.PENDING,
                           security_profile=Station.SecurityProfile.NONE, ocpp_version="1.6")
    web = Client()
    web.force_login(operator)
    page = web.post("/pending/FORM-ONBOARDED/approve/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "FORM-ONBOARDED</a> accepted" in body and "shown only now" in body
    password = body.split("shown only now: <code class=\"mono\">")[1].split("</code>")[0]
    assert Station.objects.get(pk="FORM-ONBOARDED").check_password(password)
    assert password not in web.get("/pending/").content.decode()
    # Gone since: nothing could be sent, and the call that says so keeps no secret.
    (call,) = Call.objects.filter(station_id="FORM-ONBOARDED")
    assert call.status == Call.Status.NOT_CONNECTED and password not in json.dumps(call.payload)
