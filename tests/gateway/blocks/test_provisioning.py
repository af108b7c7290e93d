"""Provisioning: boot, resets, the configuration and device model a station reports, and
requests sent in the parts a station takes."""

import json
from collections.abc import Callable

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts.models import AuditEntry
from csms.gateway.blocks.provisioning import _authorization_key_password, password_change_16
from stations.models import Call, DeviceVariable
from stations.services import commands
from tests.support.chargers import RealCharger, in_thread, serving
from tests.support.examples import Examples
from tests.support.personas import make_station

EXAMPLES = Examples(
    received={
        ("1.6", "BootNotification"): {"chargePointVendor": "V", "chargePointModel": "M"},
        ("2.0.1", "BootNotification"): {"reason": "PowerUp",
                                        "chargingStation": {"vendorName": "V", "model": "M"}},
        ("2.0.1", "NotifyReport"): {
            "requestId": 1, "generatedAt": "2026-11-24T10:00:00Z", "seqNo": 0,
            "reportData": [{"component": {"name": "LocalAuthListCtrlr"},
                            "variable": {"name": "Entries"},
                            "variableAttribute": [{"value": "0", "mutability": "ReadOnly"}],
                            "variableCharacteristics": {"dataType": "integer",
                                                        "supportsMonitoring": False,
                                                        "maxLimit": 500}}]},
    },
    sent={
        ("1.6", commands.Reset): (commands.Reset(hard=True), {"status": "Accepted"}),
        ("2.0.1", commands.Reset): (commands.Reset(hard=False), {"status": "Scheduled"}),
        ("1.6", commands.PasswordChange): (commands.PasswordChange("new-password-0123456"),
                                           {"status": "Accepted"}),
        ("2.0.1", commands.PasswordChange): (
            commands.PasswordChange("new-password-0123456"),
            {"setVariableResult": [{"attributeStatus": "Accepted",
                                    "component": {"name": "SecurityCtrlr"},
                                    "variable": {"name": "BasicAuthPassword"}}]}),
    },
)


CHARGER_PASSWORD_CHARACTERS = st.sampled_from(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*-_=:+|@.")


@given(st.text(CHARGER_PASSWORD_CHARACTERS, min_size=16, max_size=20))
def test_an_authorization_key_says_the_password_it_was_built_from(password):
    payload = password_change_16(commands.PasswordChange(password))
    assert payload["key"] == "AuthorizationKey"
    assert _authorization_key_password(payload["value"]) == password


@given(st.text(max_size=60))
def test_an_authorization_key_that_is_not_16_to_20_bytes_in_hex_says_none(value):
    password = _authorization_key_password(value)
    assert password is None or (16 <= len(bytes.fromhex(value)) <= 20
                                and password.encode().hex() == value.lower())


# --- requests larger than a station takes in one message --------------------------------------

def _report(variable: str, instance: str, value: str) -> dict:
    return {"component": {"name": "DeviceDataCtrlr"},
            "variable": {"name": variable, "instance": instance},
            "variableAttribute": [{"value": value, "mutability": "ReadOnly"}]}


def _variable(n: int) -> dict:
    return {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": f"Variable{n}"}}


def _through_the_api(station_id: str, version: str, before: list[tuple[str, dict]],
                     user, action: str, payload: dict,
                     answer: Callable[[list], list]) -> tuple[list[str], dict]:
    """A real charger says `before` (action, payload), then a person asks the API to send
    `action`; the charger answers each frame it receives with answer(frame), a reply frame.
    Returns the frames' texts as they came over the socket, and the API's answer."""
    client = APIClient()
    client.force_authenticate(user)

    async def flow() -> tuple[list[str], dict]:
        async with serving() as port, RealCharger.connected(port, station_id, version) as cp:
            for said, what in before:
                await cp.ok(said, what)
            response = in_thread(client.post, f"/api/v1/stations/{station_id}/calls/",
                                 {"action": action, "payload": payload}, format="json")
            texts = []
            while not response.done():
                try:
                    text = await cp.receive_text(0.5)
                except TimeoutError:
                    continue
                texts.append(text)
                await cp.send_text(json.dumps(answer(json.loads(text))))
            return texts, (await response).json()

    return async_to_sync(flow)()


@pytest.mark.django_db(transaction=True)
def test_get_variables_go_in_parts_the_station_takes_and_their_results_merge(personas):
    station = make_station("CP-PARTS", site=personas.site_a)
    report = ("NotifyReport", {"requestId": 1, "generatedAt": "2026-11-24T10:00:00Z",
                               "seqNo": 0, "reportData": [
                                   _report("ItemsPerMessage", "GetVariables", "2"),
                                   _report("ItemsPerMessage", "SetVariables", "50")]})
    wanted = [_variable(n) for n in range(5)]

    def answer(frame: list) -> list:
        return [3, frame[1], {"getVariableResult": [
            {"attributeStatus": "Accepted", "attributeValue": item["variable"]["name"][-1],
             **item} for item in frame[3]["getVariableData"]]}]

    texts, outcome = _through_the_api(station.pk, "2.0.1", [report], personas.operator,
                                      "GetVariables", {"getVariableData": wanted}, answer)

    frames = [json.loads(text) for text in texts]
    assert [len(frame[3]["getVariableData"]) for frame in frames] == [2, 2, 1]
    assert [item for frame in frames for item in frame[3]["getVariableData"]] == wanted
    assert outcome["status"] == "accepted"
    assert [result["variable"] for result in outcome["response"]["getVariableResult"]] == [
        item["variable"] for item in wanted]
    whole = Call.objects.get(pk=outcome["id"])
    assert whole.part_of is None and whole.payload == {"getVariableData": wanted}
    parts = list(whole.parts.order_by("pk"))
    assert [part.message_id for part in parts] == [frame[1] for frame in frames]
    assert {part.status for part in parts} == {Call.Status.ACCEPTED}
    # Each part's answer is read as a GetVariables answer is.
    assert DeviceVariable.objects.filter(station=station, component="OCPPCommCtrlr").count() == 5
    # Audited once, as the person asked.
    assert AuditEntry.objects.filter(action=AuditEntry.Action.COMMAND).count() == 1
    # The station's page lists the request once, with its merged outcome.
    page = Client()
    page.force_login(personas.operator)
    html = page.get(f"/stations/{station.pk}/").content.decode()
    assert f'id="call-{whole.pk}"' in html and "in 3 requests, as the station takes them" in html
    assert not any(f'id="call-{part.pk}"' in html for part in parts)


@pytest.mark.django_db(transaction=True)
def test_set_variables_parts_stay_within_the_bytes_the_station_takes(personas):
    station = make_station("CP-BYTES", site=personas.site_a)
    most_bytes = 400
    report = ("NotifyReport", {"requestId": 1, "generatedAt": "2026-11-24T10:00:00Z",
                               "seqNo": 0, "reportData": [
                                   _report("BytesPerMessage", "SetVariables", str(most_bytes)),
                                   _report("ItemsPerMessage", "SetVariables", "100")]})
    wanted = [{"attributeValue": "x" * (n * 7), **_variable(n)} for n in range(12)]

    def answer(frame: list) -> list:
        return [3, frame[1], {"setVariableResult": [
            {"attributeStatus": "Rejected" if item["variable"]["name"] == "Variable3"
             else "Accepted", "component": item["component"], "variable": item["variable"]}
            for item in frame[3]["setVariableData"]]}]

    texts, outcome = _through_the_api(station.pk, "2.0.1", [report], personas.operator,
                                      "SetVariables", {"setVariableData": wanted}, answer)

    assert len(texts) > 1
    assert all(len(text.encode()) <= most_bytes for text in texts), [len(t) for t in texts]
    assert [item for text in texts for item in json.loads(text)[3]["setVariableData"]] == wanted
    results = outcome["response"]["setVariableResult"]
    assert len(results) == 12
    assert [r["variable"]["name"] for r in results if r["attributeStatus"] == "Rejected"] == [
        "Variable3"]


@pytest.mark.django_db(transaction=True)
def test_16_get_configuration_goes_in_parts_of_get_configuration_max_keys(personas):
    station = make_station("CP-KEYS", site=personas.site_a)
    DeviceVariable.objects.create(station=station, component="", variable="GetConfigurationMaxKeys",
                                  value="2")

    def answer(frame: list) -> list:
        keys = frame[3]["key"]
        return [3, frame[1], {"configurationKey": [{"key": key, "readonly": True, "value": "1"}
                                                   for key in keys if key != "Nope"],
                              "unknownKey": [key for key in keys if key == "Nope"]}]

    keys = ["HeartbeatInterval", "Nope", "MeterValueSampleInterval"]
    texts, outcome = _through_the_api(station.pk, "1.6", [], personas.operator,
                                      "GetConfiguration", {"key": keys}, answer)

    assert [json.loads(text)[3]["key"] for text in texts] == [
        ["HeartbeatInterval", "Nope"], ["MeterValueSampleInterval"]]
    assert outcome["status"] == "accepted"
    assert outcome["response"] == {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": True, "value": "1"},
                             {"key": "MeterValueSampleInterval", "readonly": True,
                              "value": "1"}],
        "unknownKey": ["Nope"]}


@pytest.mark.django_db(transaction=True)
def test_a_part_refused_with_a_callerror_ends_the_request_and_says_so(personas):
    station = make_station("CP-REFUSE", site=personas.site_a)
    DeviceVariable.objects.create(station=station, component="", variable="GetConfigurationMaxKeys",
                                  value="1")

    texts, outcome = _through_the_api(
        station.pk, "1.6", [], personas.operator, "GetConfiguration",
        {"key": ["A", "B", "C"]},
        lambda frame: [4, frame[1], "InternalError", "busy", {}])

    assert len(texts) == 1
    assert (outcome["status"], outcome["error_code"]) == ("error", "InternalError")
    assert outcome["error_description"] == "1 of 3 requests sent; busy"


@pytest.mark.django_db(transaction=True)
def test_without_reported_limits_a_request_goes_whole(personas):
    station = make_station("CP-WHOLE", site=personas.site_a)

    texts, outcome = _through_the_api(
        station.pk, "2.0.1", [], personas.operator, "GetVariables",
        {"getVariableData": [_variable(n) for n in range(30)]},
        lambda frame: [3, frame[1], {"getVariableResult": []}])

    assert len(texts) == 1
    assert outcome["part_of"] is None
    assert not Call.objects.filter(part_of__isnull=False).exists()
