"""OCPP 2.0.1 OCTT CSMS cases (Part 6), played against the project on real sockets (see
octt.py). Each asserts the frames the CSMS sends (and its answers) and what it records."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from accounts.models import IdToken
from csms.gateway.frames import utc_now
from stations.models import (
    Call,
    Connector,
    DeviceVariable,
    LocalListState,
    MeterSample,
    Station,
    Transaction,
)
from tests.conformance import octt
from tests.conformance.octt import Tool, World
from tests.support.chargers import basic_auth, serving

pytestmark = pytest.mark.django_db(transaction=True)

V201 = "2.0.1"
STATION = "OCTT-CS"


def boot() -> dict:
    return {"reason": "PowerUp", "chargingStation": {"vendorName": "OCTT", "model": "Tool"}}


def status(evse: int, state: str) -> dict:
    return {"timestamp": utc_now(), "connectorStatus": state, "evseId": evse, "connectorId": 1}


def card(value: str) -> dict:
    return {"idToken": value, "type": "ISO14443"}


def event(kind: str, trigger: str, seq: int, transaction_id: str = "OCTT-TX", **fields) -> dict:
    return {"eventType": kind, "timestamp": utc_now(), "triggerReason": trigger, "seqNo": seq,
            "transactionInfo": {"transactionId": transaction_id, **fields.pop("info", {})},
            **fields}


def energy(wh: int, context: str = "Sample.Periodic") -> list[dict]:
    return [{"timestamp": utc_now(), "sampledValue": [
        {"value": wh, "context": context, "measurand": "Energy.Active.Import.Register"}]}]


@sync_to_async
def session(transaction_id: str = "OCTT-TX") -> Transaction:
    return Transaction.objects.get(station_id=STATION, transaction_id=transaction_id)


async def started(tool: Tool, trigger: str = "Authorized", **fields) -> None:
    answer = await tool.ok("TransactionEvent", event(
        "Started", trigger, 0, evse={"id": 1, "connectorId": 1}, idToken=card("OCTT-VALID"),
        meterValue=energy(1000, "Transaction.Begin"), **fields))
    assert answer["idTokenInfo"]["status"] == "Accepted"


# --- A: Security ---------------------------------------------------------------------------------

@octt.case(V201, "TC_A_01_CSMS")
def test_basic_authentication_valid(world: World):
    async def flow(tool: Tool):
        assert (await tool.ok("BootNotification", boot()))["status"] == "Accepted"

    world.play(V201, flow)


@octt.case(V201, "TC_A_02_CSMS", "TC_A_03_CSMS")
@pytest.mark.parametrize(("user", "password"), [("SOMEONE-ELSE", None),
                                                (STATION, "not-the-password-at-all")],
                         ids=["username", "password"])
def test_basic_authentication_refused_with_401(world: World, user: str, password: str | None):
    async def flow() -> None:
        headers = {"Authorization": basic_auth(user, *([password] if password else []))}
        async with serving() as port:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"ws://127.0.0.1:{port}/ocpp/{STATION}",
                                   subprotocols=["ocpp2.0.1"], additional_headers=headers,
                                   open_timeout=5):
                    pass
            assert refused.value.response.status_code == 401

    asyncio.run(flow())
    assert not Station.objects.get(pk=STATION).connected


@octt.case(V201, "TC_A_09_CSMS", "TC_A_10_CSMS")
@pytest.mark.parametrize("answer", ["Accepted", "Rejected"])
def test_update_the_basic_auth_password(world: World, answer: str):
    """SetVariables SecurityCtrlr.BasicAuthPassword: adopted once the station accepts it, the
    old one kept when it rejects."""
    new_password = "octt-new-password-2024"
    item = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}

    async def flow(tool: Tool):
        sent = tool.call("SetVariables", {"setVariableData": [
            {**item, "attributeValue": new_password}]})
        frame = await tool.expect("SetVariables")
        assert frame[3]["setVariableData"][0]["attributeValue"] == new_password
        await tool.reply(frame, {"setVariableResult": [{**item, "attributeStatus": answer}]})
        assert (await tool.outcome(sent))["status"] == answer.lower()

    async def boots(tool: Tool):
        assert (await tool.ok("BootNotification", boot()))["status"] == "Accepted"

    world.play(V201, flow)
    if answer == "Accepted":
        world.play(V201, boots, password=new_password)
    else:
        world.play(V201, boots)
        assert not Station.objects.get(pk=STATION).password_hash_next


# --- B: Provisioning -----------------------------------------------------------------------------

@octt.case(V201, "TC_B_01_CSMS")
def test_cold_boot_accepted(world: World):
    async def flow(tool: Tool):
        answer = await tool.ok("BootNotification", boot())
        assert answer["status"] == "Accepted" and answer["interval"] > 0
        assert answer["currentTime"].endswith("Z")
        for evse in (1, 2):
            assert await tool.ok("StatusNotification", status(evse, "Available")) == {}
        assert (await tool.ok("Heartbeat", {}))["currentTime"].endswith("Z")

    world.play(V201, flow)
    station = Station.objects.get(pk=STATION)
    assert (station.vendor, station.model, station.ocpp_version) == ("OCTT", "Tool", V201)


@octt.case(V201, "TC_B_02_CSMS", "TC_B_30_CSMS")
def test_cold_boot_pending(world: World):
    """A station awaiting approval: its boot is answered Pending, what else it sends but a
    heartbeat SecurityError, and nothing of it is recorded."""
    Station.objects.filter(pk=STATION).update(registration=Station.Registration.PENDING)

    async def flow(tool: Tool):
        answer = await tool.ok("BootNotification", boot())
        assert answer["status"] == "Pending" and answer["interval"] > 0
        assert (await tool.ok("Heartbeat", {}))["currentTime"].endswith("Z")
        refused = await tool.charger.call("StatusNotification", status(1, "Faulted"))
        assert refused[0] == 4 and refused[2] == "SecurityError", refused

    world.play(V201, flow)
    assert Connector.objects.get(evse__station_id=STATION, evse__number=1).status == "Available"


@octt.case(V201, "TC_B_06_CSMS", "TC_B_07_CSMS")
@pytest.mark.parametrize("variables", [["HeartbeatInterval"],
                                       ["HeartbeatInterval", "OfflineThreshold"]],
                         ids=["single", "multiple"])
def test_get_variables(world: World, variables: list[str]):
    asked = [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": name}}
             for name in variables]

    async def flow(tool: Tool):
        sent = tool.call("GetVariables", {"getVariableData": asked})
        frame = await tool.expect("GetVariables")
        assert frame[3] == {"getVariableData": asked}
        results = [{**item, "attributeStatus": "Accepted", "attributeValue": "300"}
                   for item in asked]
        await tool.reply(frame, {"getVariableResult": results})
        call = await tool.outcome(sent)
        assert call["status"] == Call.Status.ACCEPTED
        assert call["response"] == {"getVariableResult": results}

    world.play(V201, flow)


@octt.case(V201, "TC_B_08_CSMS")
def test_get_variables_within_the_stations_limit(world: World):
    """More variables than the station takes in one message (its reported
    ItemsPerMessageGetVariables): the CSMS asks in parts and records one answer."""
    DeviceVariable.objects.create(station=world.station, component="DeviceDataCtrlr",
                                  variable="ItemsPerMessage", variable_instance="GetVariables",
                                  value="2")
    asked = [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": f"Variable{n}"}}
             for n in range(3)]

    async def flow(tool: Tool):
        sent = tool.call("GetVariables", {"getVariableData": asked})
        for part in (asked[:2], asked[2:]):
            frame = await tool.expect("GetVariables")
            assert frame[3] == {"getVariableData": part}
            await tool.reply(frame, {"getVariableResult": [
                {**item, "attributeStatus": "Accepted", "attributeValue": "1"} for item in part]})
        call = await tool.outcome(sent)
        assert call["status"] == Call.Status.ACCEPTED
        assert len(call["response"]["getVariableResult"]) == 3

    world.play(V201, flow)


@octt.case(V201, "TC_B_09_CSMS", "TC_B_10_CSMS")
@pytest.mark.parametrize("variables", [["HeartbeatInterval"],
                                       ["HeartbeatInterval", "OfflineThreshold"]],
                         ids=["single", "multiple"])
def test_set_variables(world: World, variables: list[str]):
    asked = [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": name},
              "attributeValue": "300"} for name in variables]

    async def flow(tool: Tool):
        sent = tool.call("SetVariables", {"setVariableData": asked})
        frame = await tool.expect("SetVariables")
        assert frame[3] == {"setVariableData": asked}
        results = [{"component": item["component"], "variable": item["variable"],
                    "attributeStatus": "Accepted"} for item in asked]
        await tool.reply(frame, {"setVariableResult": results})
        assert (await tool.outcome(sent))["response"] == {"setVariableResult": results}

    world.play(V201, flow)


@octt.case(V201, "TC_B_12_CSMS", "TC_B_13_CSMS", "TC_B_14_CSMS")
@pytest.mark.parametrize("report", ["ConfigurationInventory", "FullInventory",
                                    "SummaryInventory"])
def test_get_base_report(world: World, report: str):
    async def flow(tool: Tool):
        sent = tool.call("GetBaseReport", {"requestId": 7, "reportBase": report})
        frame = await tool.expect("GetBaseReport")
        assert frame[3] == {"requestId": 7, "reportBase": report}
        await tool.reply(frame, {"status": "Accepted"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED
        assert await tool.ok("NotifyReport", {
            "requestId": 7, "generatedAt": utc_now(), "seqNo": 0, "tbc": False,
            "reportData": [{"component": {"name": "OCPPCommCtrlr"},
                            "variable": {"name": "HeartbeatInterval"},
                            "variableAttribute": [{"type": "Actual", "value": "300",
                                                   "mutability": "ReadWrite"}]}]}) == {}

    world.play(V201, flow)
    variable = DeviceVariable.objects.get(station_id=STATION, variable="HeartbeatInterval")
    assert (variable.component, variable.value) == ("OCPPCommCtrlr", "300")


@octt.case(V201, "TC_B_20_CSMS", "TC_B_22_CSMS")
@pytest.mark.parametrize("hard", [False, True], ids=["on-idle", "immediate"])
def test_reset_charging_station(world: World, hard: bool):
    async def flow(tool: Tool):
        if hard:  # with a session running: Immediate ends it, and the charger says so
            await started(tool)
        sent = tool.command("reset", {"hard": hard})
        frame = await tool.expect("Reset")
        assert frame[3] == {"type": "Immediate" if hard else "OnIdle"}
        await tool.reply(frame, {"status": "Accepted"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED
        if hard:
            await tool.ok("TransactionEvent", event(
                "Ended", "ResetCommand", 1, info={"stoppedReason": "ImmediateReset"},
                meterValue=energy(1500, "Transaction.End")))
            assert (await session()).state == Transaction.State.COMPLETED
        assert (await tool.ok("BootNotification", {**boot(), "reason": "RemoteReset"}))[
            "status"] == "Accepted"

    world.play(V201, flow)


@octt.case(V201, "TC_B_21_CSMS")
def test_reset_on_idle_with_a_session_is_scheduled(world: World):
    async def flow(tool: Tool):
        await started(tool)
        sent = tool.command("reset", {"hard": False})
        frame = await tool.expect("Reset")
        await tool.reply(frame, {"status": "Scheduled"})
        call = await tool.outcome(sent)
        assert call["response"] == {"status": "Scheduled"}
        assert (await session()).state == Transaction.State.ACTIVE

    world.play(V201, flow)


@octt.case(V201, "TC_B_58_CSMS")
def test_websocket_subprotocol_validation(world: World):
    async def flow() -> None:
        headers = {"Authorization": basic_auth(STATION)}
        async with serving() as port:
            url = f"ws://127.0.0.1:{port}/ocpp/{STATION}"
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, subprotocols=["ocpp1.5"], additional_headers=headers,
                                   open_timeout=5):
                    pass
            assert refused.value.response.status_code == 400
            async with connect(url, subprotocols=["ocpp1.5", "ocpp2.0.1"],
                               additional_headers=headers, open_timeout=5) as socket:
                assert socket.subprotocol == "ocpp2.0.1"

    asyncio.run(flow())


# --- C: Authorization ----------------------------------------------------------------------------

@octt.case(V201, "TC_C_02_CSMS", "TC_C_06_CSMS", "TC_C_07_CSMS")
@pytest.mark.parametrize(("value", "expected"), [("OCTT-UNKNOWN", {"Invalid", "Unknown"}),
                                                 ("OCTT-BLOCKED", {"Blocked"}),
                                                 ("OCTT-EXPIRED", {"Expired"})])
def test_local_start_with_a_refused_card(world: World, value: str, expected: set[str]):
    async def flow(tool: Tool):
        answer = await tool.ok("Authorize", {"idToken": card(value)})
        assert answer["idTokenInfo"]["status"] in expected

    world.play(V201, flow)
    assert not Transaction.objects.filter(station_id=STATION).exists()


@octt.case(V201, "TC_C_39_CSMS")
def test_authorization_by_group(world: World):
    """A card of a group is told its group, named with its organization (two organizations'
    groups of one name are two groups)."""
    IdToken.objects.filter(pk=world.valid.pk).update(group="DEPOT")
    expected = IdToken.objects.get(pk=world.valid.pk).group_token()

    async def flow(tool: Tool):
        info = (await tool.ok("Authorize", {"idToken": card("OCTT-VALID")}))["idTokenInfo"]
        assert info["status"] == "Accepted"
        assert info["groupIdToken"]["idToken"] == expected and expected.endswith(":DEPOT")

    world.play(V201, flow)


@octt.case(V201, "TC_C_37_CSMS", "TC_C_38_CSMS")
@pytest.mark.parametrize("answer", ["Accepted", "Rejected"])
def test_clear_authorization_cache(world: World, answer: str):
    async def flow(tool: Tool):
        sent = tool.call("ClearCache", {})
        frame = await tool.expect("ClearCache")
        await tool.reply(frame, {"status": answer})
        assert (await tool.outcome(sent))["status"] == answer.lower()

    world.play(V201, flow)


# --- D: Local authorization list ----------------------------------------------------------------

@octt.case(V201, "TC_D_01_CSMS", "TC_D_02_CSMS", "TC_D_03_CSMS", "TC_D_04_CSMS")
@pytest.mark.parametrize(("update", "entries"), [
    ("Full", [{"idToken": card("OCTT-VALID"), "idTokenInfo": {"status": "Accepted"}}]),
    ("Differential", [{"idToken": card("OCTT-VALID"), "idTokenInfo": {"status": "Accepted"}}]),
    ("Differential", [{"idToken": card("OCTT-VALID")}]),
    ("Full", []),
], ids=["full", "differential-update", "differential-remove", "full-empty"])
def test_send_local_list(world: World, update: str, entries: list):
    async def flow(tool: Tool):
        payload = {"versionNumber": 3, "updateType": update}
        if entries:
            payload["localAuthorizationList"] = entries
        sent = tool.call("SendLocalList", payload)
        frame = await tool.expect("SendLocalList")
        assert frame[3] == payload
        await tool.reply(frame, {"status": "Accepted"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED

    world.play(V201, flow)


@octt.case(V201, "TC_D_08_CSMS", "TC_D_09_CSMS")
@pytest.mark.parametrize("version", [5, 0], ids=["success", "no-list"])
def test_get_local_list_version_reads_and_enables_nothing(world: World, version: int):
    async def flow(tool: Tool):
        sent = tool.call("GetLocalListVersion", {})
        frame = await tool.expect("GetLocalListVersion")
        await tool.reply(frame, {"versionNumber": version})
        assert (await tool.outcome(sent))["response"] == {"versionNumber": version}
        with pytest.raises(TimeoutError):
            await tool.charger.receive(wait=1)

    world.play(V201, flow)
    assert not LocalListState.objects.filter(station_id=STATION, enabled=True).exists()


# --- E: Transactions -----------------------------------------------------------------------------

@octt.case(V201, "TC_E_01_CSMS", "TC_E_02_CSMS", "TC_E_03_CSMS", "TC_E_04_CSMS",
           "TC_E_09_CSMS", "TC_E_10_CSMS")
@pytest.mark.parametrize("trigger", ["CablePluggedIn", "ChargingStateChanged", "Authorized",
                                     "EVDetected"])
def test_transaction_started(world: World, trigger: str):
    async def flow(tool: Tool):
        await tool.ok("StatusNotification", status(1, "Occupied"))
        await started(tool, trigger)
        await tool.ok("TransactionEvent", event(
            "Updated", "ChargingStateChanged", 1, info={"chargingState": "Charging"},
            meterValue=energy(1200)))
        tx = await session()
        assert tx.state == Transaction.State.ACTIVE and tx.id_token_id == world.valid.pk

    world.play(V201, flow)


@octt.case(V201, "TC_E_07_CSMS", "TC_E_08_CSMS", "TC_E_14_CSMS", "TC_E_15_CSMS",
           "TC_E_20_CSMS", "TC_E_21_CSMS")
@pytest.mark.parametrize(("trigger", "reason"), [("StopAuthorized", "Local"),
                                                 ("EVCommunicationLost", "EVDisconnected"),
                                                 ("RemoteStop", "Remote")])
def test_transaction_ended(world: World, trigger: str, reason: str):
    async def flow(tool: Tool):
        await started(tool)
        assert await tool.ok("TransactionEvent", event(
            "Ended", trigger, 1, info={"stoppedReason": reason},
            meterValue=energy(3000, "Transaction.End"))) == {}
        tx = await session()
        assert tx.state == Transaction.State.COMPLETED and tx.stop_reason == reason
        assert tx.energy_wh == 2000

    world.play(V201, flow)


@octt.case(V201, "TC_E_16_CSMS", "TC_E_17_CSMS", "TC_E_19_CSMS", "TC_E_39_CSMS")
@pytest.mark.parametrize(("trigger", "reason"), [("Deauthorized", "DeAuthorized"),
                                                 ("EVCommunicationLost", "EVDisconnected"),
                                                 ("EVDeparted", "EVDisconnected"),
                                                 ("EVConnectTimeout", "Timeout")])
def test_transaction_ended_by_the_station(world: World, trigger: str, reason: str):
    async def flow(tool: Tool):
        await started(tool)
        await tool.ok("TransactionEvent", event(
            "Updated", trigger, 1, info={"chargingState": "SuspendedEVSE"}))
        await tool.ok("TransactionEvent", event("Ended", trigger, 2,
                                                info={"stoppedReason": reason},
                                                meterValue=energy(1400, "Transaction.End")))
        tx = await session()
        assert tx.state == Transaction.State.COMPLETED and tx.stop_reason == reason
        assert tx.energy_wh == 400

    world.play(V201, flow)


@octt.case(V201, "TC_E_22_CSMS", "TC_E_26_CSMS", "TC_E_38_CSMS")
@pytest.mark.parametrize("charging_state", ["SuspendedEV", "EVConnected", "Idle"])
def test_transaction_suspended_stays_open(world: World, charging_state: str):
    async def flow(tool: Tool):
        await started(tool, "CablePluggedIn")
        assert await tool.ok("TransactionEvent", event(
            "Updated", "ChargingStateChanged", 1,
            info={"chargingState": charging_state})) == {}
        assert (await session()).state == Transaction.State.ACTIVE

    world.play(V201, flow)


@octt.case(V201, "TC_E_29_CSMS", "TC_E_30_CSMS", "TC_E_31_CSMS", "TC_E_33_CSMS",
           "TC_E_34_CSMS")
@pytest.mark.parametrize(("transaction_id", "answer"), [
    ("OCTT-TX", {"ongoingIndicator": True, "messagesInQueue": True}),
    ("OCTT-TX", {"ongoingIndicator": True, "messagesInQueue": False}),
    ("OCTT-TX", {"ongoingIndicator": False, "messagesInQueue": True}),
    (None, {"messagesInQueue": True}),
    (None, {"messagesInQueue": False}),
])
def test_check_transaction_status(world: World, transaction_id: str | None, answer: dict):
    async def flow(tool: Tool):
        await started(tool)
        asked = {"transactionId": transaction_id} if transaction_id else {}
        sent = tool.call("GetTransactionStatus", asked)
        frame = await tool.expect("GetTransactionStatus")
        assert frame[3] == asked
        await tool.reply(frame, answer)
        call = await tool.outcome(sent)
        assert call["status"] == Call.Status.ACCEPTED and call["response"] == answer

    world.play(V201, flow)


@octt.case(V201, "TC_E_53_CSMS")
def test_sequence_number_restarts_at_zero(world: World):
    async def flow(tool: Tool):
        await started(tool)
        await tool.ok("TransactionEvent", event("Ended", "StopAuthorized", 1,
                                                info={"stoppedReason": "Local"}))
        await tool.ok("TransactionEvent", {**event(
            "Started", "Authorized", 0, "OCTT-TX-2", evse={"id": 1, "connectorId": 1},
            idToken=card("OCTT-VALID"))})
        assert (await session("OCTT-TX-2")).state == Transaction.State.ACTIVE

    world.play(V201, flow)


# --- F: Remote control ---------------------------------------------------------------------------

@octt.case(V201, "TC_F_01_CSMS", "TC_F_02_CSMS", "TC_F_03_CSMS")
def test_remote_start(world: World):
    async def flow(tool: Tool):
        sent = tool.command("remote-start", {"evse": 1, "id_token": "OCTT-VALID"})
        frame = await tool.expect("RequestStartTransaction")
        assert frame[3]["evseId"] == 1 and frame[3]["idToken"]["idToken"] == "OCTT-VALID"
        remote_start_id = frame[3]["remoteStartId"]
        await tool.reply(frame, {"status": "Accepted"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED
        await tool.ok("TransactionEvent", event(
            "Started", "RemoteStart", 0, info={"remoteStartId": remote_start_id},
            evse={"id": 1, "connectorId": 1}, idToken=frame[3]["idToken"]))
        assert (await session()).state == Transaction.State.ACTIVE

    world.play(V201, flow)


@octt.case(V201, "TC_F_06_CSMS")
def test_remote_unlock(world: World):
    async def flow(tool: Tool):
        sent = tool.command("unlock", {"evse": 1})
        frame = await tool.expect("UnlockConnector")
        assert frame[3] == {"evseId": 1, "connectorId": 1}
        await tool.reply(frame, {"status": "Unlocked"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED

    world.play(V201, flow)


@octt.case(V201, "TC_F_11_CSMS", "TC_F_12_CSMS", "TC_F_13_CSMS", "TC_F_14_CSMS",
           "TC_F_15_CSMS", "TC_F_18_CSMS", "TC_F_20_CSMS", "TC_F_23_CSMS", "TC_F_24_CSMS")
@pytest.mark.parametrize(("message", "evse"), [
    ("MeterValues", 1), ("MeterValues", None), ("TransactionEvent", 1),
    ("TransactionEvent", None), ("LogStatusNotification", None),
    ("FirmwareStatusNotification", None), ("Heartbeat", None), ("StatusNotification", 1)])
def test_trigger_message(world: World, message: str, evse: int | None):
    async def flow(tool: Tool):
        sent = tool.command("trigger", {"message": message, "evse": evse})
        frame = await tool.expect("TriggerMessage")
        expected = {"requestedMessage": message}
        if evse is not None:
            expected["evse"] = {"id": evse}
        assert frame[3] == expected
        await tool.reply(frame, {"status": "Accepted"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED

    world.play(V201, flow)


@octt.case(V201, "TC_F_27_CSMS")
def test_trigger_message_not_implemented(world: World):
    async def flow(tool: Tool):
        sent = tool.command("trigger", {"message": "SignChargingStationCertificate"})
        frame = await tool.expect("TriggerMessage")
        await tool.reply(frame, {"status": "NotImplemented"})
        call = await tool.outcome(sent)
        assert call["status"] == Call.Status.REJECTED
        assert call["response"] == {"status": "NotImplemented"}

    world.play(V201, flow)


# --- G: Availability -----------------------------------------------------------------------------

@octt.case(V201, "TC_G_01_CSMS", "TC_G_20_CSMS")
@pytest.mark.parametrize("state", ["Available", "Faulted"])
def test_status_notification(world: World, state: str):
    async def flow(tool: Tool):
        assert await tool.ok("StatusNotification", status(2, state)) == {}

    world.play(V201, flow)
    assert Connector.objects.get(evse__station_id=STATION, evse__number=2).status == state


@octt.case(V201, "TC_G_03_CSMS", "TC_G_04_CSMS", "TC_G_05_CSMS", "TC_G_06_CSMS")
@pytest.mark.parametrize(("evse", "operative"), [(1, False), (1, True), (0, False), (0, True)])
def test_change_availability(world: World, evse: int, operative: bool):
    async def flow(tool: Tool):
        sent = tool.command("availability", {"evse": evse, "operative": operative})
        frame = await tool.expect("ChangeAvailability")
        assert frame[3]["operationalStatus"] == ("Operative" if operative else "Inoperative")
        assert frame[3].get("evse", {}).get("id", 0) == evse
        await tool.reply(frame, {"status": "Accepted"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED
        await tool.ok("StatusNotification",
                      status(evse or 1, "Available" if operative else "Unavailable"))

    world.play(V201, flow)


@octt.case(V201, "TC_G_11_CSMS", "TC_G_14_CSMS")
@pytest.mark.parametrize("evse", [1, 0])
def test_change_availability_during_a_session_is_scheduled(world: World, evse: int):
    async def flow(tool: Tool):
        await started(tool)
        sent = tool.command("availability", {"evse": evse, "operative": False})
        frame = await tool.expect("ChangeAvailability")
        await tool.reply(frame, {"status": "Scheduled"})
        assert (await tool.outcome(sent))["response"] == {"status": "Scheduled"}
        assert (await session()).state == Transaction.State.ACTIVE

    world.play(V201, flow)


# --- J: Meter values -----------------------------------------------------------------------------

@octt.case(V201, "TC_J_01_CSMS")
def test_clock_aligned_meter_values_without_transaction(world: World):
    async def flow(tool: Tool):
        assert await tool.ok("MeterValues", {"evseId": 1, "meterValue": energy(
            4321, "Sample.Clock")}) == {}

    world.play(V201, flow)
    sample = MeterSample.objects.get(station_id=STATION)
    assert (sample.value, sample.context, sample.transaction) == (4321, "Sample.Clock", None)


@octt.case(V201, "TC_J_02_CSMS", "TC_J_03_CSMS", "TC_J_07_CSMS", "TC_J_09_CSMS", "TC_J_10_CSMS")
def test_meter_values_in_transaction_events(world: World):
    async def flow(tool: Tool):
        await started(tool)
        await tool.ok("TransactionEvent", event("Updated", "MeterValuePeriodic", 1,
                                                meterValue=energy(1500)))
        await tool.ok("TransactionEvent", event("Updated", "MeterValueClock", 2,
                                                meterValue=energy(1700, "Sample.Clock")))
        await tool.ok("TransactionEvent", event("Ended", "StopAuthorized", 3,
                                                info={"stoppedReason": "Local"},
                                                meterValue=energy(2000, "Transaction.End")))

    world.play(V201, flow)
    tx = Transaction.objects.get(station_id=STATION, transaction_id="OCTT-TX")
    values = sorted(MeterSample.objects.filter(transaction=tx).values_list("value", flat=True))
    assert values == [1000, 1500, 1700, 2000] and tx.energy_wh == 1000


# --- P: Data transfer ----------------------------------------------------------------------------

@octt.case(V201, "TC_P_02_CSMS")
def test_data_transfer_to_the_csms(world: World):
    async def flow(tool: Tool):
        answer = await tool.ok("DataTransfer", {"vendorId": "OCTT-VENDOR", "messageId": "Test",
                                                "data": "payload"})
        assert answer["status"] in {"Rejected", "UnknownMessageId", "UnknownVendorId"}

    world.play(V201, flow)


@octt.case(V201, "TC_P_03_CSMS")
def test_custom_data_is_accepted(world: World):
    async def flow(tool: Tool):
        answer = await tool.ok("Heartbeat", {"customData": {"vendorId": "OCTT-VENDOR",
                                                            "extra": 1}})
        assert answer["currentTime"].endswith("Z")

    world.play(V201, flow)
