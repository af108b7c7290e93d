"""OCPP 1.6 OCTT CSMS cases, played against the project on real sockets (see octt.py).

Each asserts the frames the CSMS sends (and its answers) and what it records: the sessions,
connector states, calls and their outcomes a person then sees."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from csms.gateway.frames import utc_now
from stations.models import Call, Connector, LocalListState, Station, StationEvent, Transaction
from tests.conformance import octt
from tests.conformance.octt import Tool, World
from tests.support.chargers import basic_auth, serving

pytestmark = pytest.mark.django_db(transaction=True)

V16 = "1.6"


def status(connector: int, state: str, error: str = "NoError") -> dict:
    return {"connectorId": connector, "status": state, "errorCode": error, "timestamp": utc_now()}


def boot() -> dict:
    return {"chargePointVendor": "OCTT", "chargePointModel": "Tool"}


async def start(tool: Tool, card: str, connector: int = 1, meter: int = 0) -> dict:
    return await tool.ok("StartTransaction", {"connectorId": connector, "idTag": card,
                                              "meterStart": meter, "timestamp": utc_now()})


async def stop(tool: Tool, transaction_id: int, card: str, meter: int, reason: str) -> dict:
    return await tool.ok("StopTransaction", {"transactionId": transaction_id, "idTag": card,
                                             "meterStop": meter, "timestamp": utc_now(),
                                             "reason": reason})


@sync_to_async
def session(transaction_id: int) -> Transaction:
    return Transaction.objects.get(station_id="OCTT-CS", transaction_id=str(transaction_id))


@sync_to_async
def connector_status(evse: int) -> tuple[str, str]:
    """The connector's state as the domain keeps it, and the charger's own word for it."""
    connector = Connector.objects.get(evse__station_id="OCTT-CS", evse__number=evse)
    return connector.status, connector.status_detail


# --- Core: booting, sessions, authorization ---------------------------------------------------

@octt.case(V16, "TC_001_CSMS")
def test_cold_boot(world: World):
    async def flow(tool: Tool):
        answer = await tool.ok("BootNotification", boot())
        assert answer["status"] == "Accepted" and answer["interval"] > 0
        assert answer["currentTime"].endswith("Z")
        for connector in (0, 1, 2):
            assert await tool.ok("StatusNotification", status(connector, "Available")) == {}
        assert (await tool.ok("Heartbeat", {}))["currentTime"].endswith("Z")

    world.play(V16, flow)
    station = Station.objects.get(pk="OCTT-CS")
    assert (station.vendor, station.model, station.ocpp_version) == ("OCTT", "Tool", V16)
    assert {c.status for c in Connector.objects.filter(evse__station=station)} == {"Available"}


@octt.case(V16, "TC_003_CSMS")
def test_regular_session_plugin_first(world: World):
    async def flow(tool: Tool):
        await tool.ok("StatusNotification", status(1, "Preparing"))
        assert (await tool.ok("Authorize", {"idTag": "OCTT-VALID"}))["idTagInfo"]["status"] \
            == "Accepted"
        started = await start(tool, "OCTT-VALID")
        assert started["idTagInfo"]["status"] == "Accepted" and started["transactionId"] > 0
        await tool.ok("StatusNotification", status(1, "Charging"))
        tx = await session(started["transactionId"])
        assert tx.state == Transaction.State.ACTIVE and tx.id_token_id == world.valid.pk
        assert await connector_status(1) == (Connector.Status.OCCUPIED, "Charging")

    world.play(V16, flow)


@octt.case(V16, "TC_004_1_CSMS", "TC_007_CSMS", "TC_037_1_CSMS")
def test_session_started_with_an_identified_card(world: World):
    """Identification first, a cached id (no Authorize) and an offline start all end in one
    StartTransaction the CSMS must accept and record."""

    async def flow(tool: Tool):
        started = await start(tool, "OCTT-VALID")
        assert started["idTagInfo"]["status"] == "Accepted"
        await tool.ok("StatusNotification", status(1, "Charging"))
        assert (await session(started["transactionId"])).state == Transaction.State.ACTIVE

    world.play(V16, flow)


@octt.case(V16, "TC_004_2_CSMS")
def test_identification_first_connection_timeout(world: World):
    async def flow(tool: Tool):
        await tool.ok("Authorize", {"idTag": "OCTT-VALID"})
        await tool.ok("StatusNotification", status(1, "Preparing"))
        await tool.ok("StatusNotification", status(1, "Available"))

    world.play(V16, flow)
    assert not Transaction.objects.filter(station_id="OCTT-CS").exists()
    assert Connector.objects.get(evse__station_id="OCTT-CS", evse__number=1).status == "Available"


@octt.case(V16, "TC_005_1_CSMS")
def test_ev_side_disconnected(world: World):
    async def flow(tool: Tool):
        await tool.ok("StatusNotification", status(1, "Preparing"))
        started = await start(tool, "OCTT-VALID", meter=100)
        await tool.ok("StatusNotification", status(1, "Charging"))
        await tool.ok("StatusNotification", status(1, "SuspendedEV"))
        stopped = await stop(tool, started["transactionId"], "OCTT-VALID", 1100, "EVDisconnected")
        assert stopped["idTagInfo"]["status"] == "Accepted"
        await tool.ok("StatusNotification", status(1, "Finishing"))
        await tool.ok("StatusNotification", status(1, "Available"))
        tx = await session(started["transactionId"])
        assert tx.state == Transaction.State.COMPLETED and tx.stop_reason == "EVDisconnected"
        assert tx.energy_wh == 1000

    world.play(V16, flow)


@octt.case(V16, "TC_023_1_CSMS", "TC_023_2_CSMS", "TC_023_3_CSMS")
@pytest.mark.parametrize(("card", "expected"), [("OCTT-UNKNOWN", "Invalid"),
                                                ("OCTT-EXPIRED", "Expired"),
                                                ("OCTT-BLOCKED", "Blocked")])
def test_authorize_refused(world: World, card: str, expected: str):
    async def flow(tool: Tool):
        answer = await tool.ok("Authorize", {"idTag": card})
        assert answer["idTagInfo"]["status"] == expected

    world.play(V16, flow)


@octt.case(V16, "TC_024_CSMS")
def test_lock_failure_is_recorded(world: World):
    async def flow(tool: Tool):
        await tool.ok("StatusNotification", status(1, "Preparing"))
        await tool.ok("StatusNotification", status(1, "Faulted", "ConnectorLockFailure"))

    world.play(V16, flow)
    connector = Connector.objects.get(evse__station_id="OCTT-CS", evse__number=1)
    assert (connector.status, connector.error_code) == ("Faulted", "ConnectorLockFailure")


@octt.case(V16, "TC_032_1_CSMS")
def test_power_failure_boot_then_stop(world: World):
    async def flow(tool: Tool):
        started = await start(tool, "OCTT-VALID", meter=0)
        await tool.ok("StatusNotification", status(1, "Charging"))
        assert (await tool.ok("BootNotification", boot()))["status"] == "Accepted"
        await tool.ok("StatusNotification", status(0, "Available"))
        await tool.ok("StatusNotification", status(1, "Finishing"))
        await tool.ok("StatusNotification", status(2, "Available"))
        await stop(tool, started["transactionId"], "OCTT-VALID", 10, "PowerLoss")
        tx = await session(started["transactionId"])
        assert tx.state == Transaction.State.COMPLETED and tx.stop_reason == "PowerLoss"

    world.play(V16, flow)


@octt.case(V16, "TC_037_3_CSMS")
def test_offline_start_with_an_invalid_card(world: World):
    async def flow(tool: Tool):
        started = await start(tool, "OCTT-UNKNOWN")
        # The charger started offline: the CSMS records the session and says the card is invalid.
        assert started["idTagInfo"]["status"] == "Invalid" and started["transactionId"] > 0
        await tool.ok("StatusNotification", status(1, "Charging"))
        await stop(tool, started["transactionId"], "OCTT-UNKNOWN", 10, "DeAuthorized")
        await tool.ok("StatusNotification", status(1, "Finishing"))
        tx = await session(started["transactionId"])
        assert tx.state == Transaction.State.COMPLETED and tx.id_token_value == "OCTT-UNKNOWN"

    world.play(V16, flow)


@octt.case(V16, "TC_039_CSMS")
def test_offline_transaction(world: World):
    async def flow(tool: Tool):
        started = await start(tool, "OCTT-VALID", meter=0)
        await stop(tool, started["transactionId"], "OCTT-VALID", 2500, "Local")
        tx = await session(started["transactionId"])
        assert tx.state == Transaction.State.COMPLETED and tx.energy_wh == 2500

    world.play(V16, flow)


@octt.case(V16, "TC_064_CSMS")
def test_data_transfer_to_the_csms(world: World):
    async def flow(tool: Tool):
        answer = await tool.ok("DataTransfer", {"vendorId": "OCTT-VENDOR", "messageId": "Test",
                                                "data": "payload"})
        assert answer["status"] in {"Rejected", "UnknownMessageId", "UnknownVendorId"}

    world.play(V16, flow)


# --- Core and Remote Trigger: what a person sends ---------------------------------------------

@octt.case(V16, "TC_010_CSMS")
def test_remote_start_cable_plugged_in_first(world: World):
    async def flow(tool: Tool):
        await tool.ok("StatusNotification", status(1, "Preparing"))
        sent = tool.command("remote-start", {"evse": 1, "id_token": "OCTT-VALID"})
        frame = await tool.expect("RemoteStartTransaction")
        assert frame[3] == {"connectorId": 1, "idTag": "OCTT-VALID"}
        await tool.reply(frame, {"status": "Accepted"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED
        await tool.ok("Authorize", {"idTag": "OCTT-VALID"})
        started = await start(tool, "OCTT-VALID")
        assert started["idTagInfo"]["status"] == "Accepted"
        await tool.ok("StatusNotification", status(1, "Charging"))

    world.play(V16, flow)


@octt.case(V16, "TC_011_1_CSMS", "TC_011_2_CSMS")
@pytest.mark.parametrize("plugged_in", [True, False], ids=["started", "timed-out"])
def test_remote_start_first(world: World, plugged_in: bool):
    async def flow(tool: Tool):
        sent = tool.command("remote-start", {"evse": 1, "id_token": "OCTT-VALID"})
        frame = await tool.expect("RemoteStartTransaction")
        await tool.reply(frame, {"status": "Accepted"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED
        await tool.ok("Authorize", {"idTag": "OCTT-VALID"})
        await tool.ok("StatusNotification", status(1, "Preparing"))
        if plugged_in:
            started = await start(tool, "OCTT-VALID")
            assert started["idTagInfo"]["status"] == "Accepted"
            await tool.ok("StatusNotification", status(1, "Charging"))
        else:  # the driver never plugged in: the charger gives up and says so
            await tool.ok("StatusNotification", status(1, "Available"))

    world.play(V16, flow)
    assert Transaction.objects.filter(station_id="OCTT-CS").exists() is plugged_in


@octt.case(V16, "TC_026_CSMS")
def test_remote_start_rejected(world: World):
    async def flow(tool: Tool):
        sent = tool.command("remote-start", {"evse": 1, "id_token": "OCTT-VALID"})
        frame = await tool.expect("RemoteStartTransaction")
        await tool.reply(frame, {"status": "Rejected"})
        assert (await tool.outcome(sent))["status"] == Call.Status.REJECTED

    world.play(V16, flow)
    assert not Transaction.objects.filter(station_id="OCTT-CS").exists()


@octt.case(V16, "TC_012_CSMS", "TC_028_CSMS")
@pytest.mark.parametrize("answer", ["Accepted", "Rejected"])
def test_remote_stop(world: World, answer: str):
    async def flow(tool: Tool):
        started = await start(tool, "OCTT-VALID")
        await tool.ok("StatusNotification", status(1, "Charging"))
        tx = await session(started["transactionId"])
        sent = tool.command("remote-stop", on=f"transactions/{tx.pk}")
        frame = await tool.expect("RemoteStopTransaction")
        assert frame[3] == {"transactionId": started["transactionId"]}
        await tool.reply(frame, {"status": answer})
        assert (await tool.outcome(sent))["status"] == answer.lower()
        if answer == "Accepted":
            await stop(tool, started["transactionId"], "OCTT-VALID", 10, "Remote")
            await tool.ok("StatusNotification", status(1, "Finishing"))
            await tool.ok("StatusNotification", status(1, "Available"))
            assert (await session(started["transactionId"])).state == Transaction.State.COMPLETED

    world.play(V16, flow)


@octt.case(V16, "TC_013_CSMS", "TC_014_CSMS")
@pytest.mark.parametrize("hard", [True, False], ids=["hard", "soft"])
def test_reset_without_transaction(world: World, hard: bool):
    async def flow(tool: Tool):
        sent = tool.command("reset", {"hard": hard})
        frame = await tool.expect("Reset")
        assert frame[3] == {"type": "Hard" if hard else "Soft"}
        await tool.reply(frame, {"status": "Accepted"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED
        assert (await tool.ok("BootNotification", boot()))["status"] == "Accepted"
        for connector in (0, 1, 2):
            await tool.ok("StatusNotification", status(connector, "Available"))

    world.play(V16, flow)
    assert Station.objects.get(pk="OCTT-CS").last_boot_at is not None


@octt.case(V16, "TC_017_1_CSMS", "TC_017_2_CSMS", "TC_030_CSMS", "TC_031_CSMS")
@pytest.mark.parametrize("answer", ["Unlocked", "NotSupported", "UnlockFailed"])
def test_unlock_connector_without_session(world: World, answer: str):
    async def flow(tool: Tool):
        sent = tool.command("unlock", {"evse": 1})
        frame = await tool.expect("UnlockConnector")
        assert frame[3] == {"connectorId": 1}
        await tool.reply(frame, {"status": answer})
        call = await tool.outcome(sent)
        assert call["response"] == {"status": answer}
        assert call["status"] == (Call.Status.ACCEPTED if answer == "Unlocked"
                                  else Call.Status.REJECTED)

    world.play(V16, flow)


@octt.case(V16, "TC_018_1_CSMS")
def test_unlock_connector_with_session(world: World):
    async def flow(tool: Tool):
        started = await start(tool, "OCTT-VALID")
        await tool.ok("StatusNotification", status(1, "Charging"))
        sent = tool.command("unlock", {"evse": 1})
        frame = await tool.expect("UnlockConnector")
        await tool.reply(frame, {"status": "Unlocked"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED
        await tool.ok("StatusNotification", status(1, "Finishing"))
        await stop(tool, started["transactionId"], "OCTT-VALID", 10, "UnlockCommand")
        await tool.ok("StatusNotification", status(1, "Available"))
        tx = await session(started["transactionId"])
        assert tx.state == Transaction.State.COMPLETED and tx.stop_reason == "UnlockCommand"

    world.play(V16, flow)


@octt.case(V16, "TC_054_CSMS", "TC_055_CSMS")
@pytest.mark.parametrize("answer", ["Accepted", "Rejected"])
def test_trigger_message(world: World, answer: str):
    async def flow(tool: Tool):
        sent = tool.command("trigger", {"message": "MeterValues", "evse": 1})
        frame = await tool.expect("TriggerMessage")
        assert frame[3] == {"requestedMessage": "MeterValues", "connectorId": 1}
        await tool.reply(frame, {"status": answer})
        assert (await tool.outcome(sent))["status"] == answer.lower()
        if answer == "Accepted":
            assert await tool.ok("MeterValues", {"connectorId": 1, "meterValue": [
                {"timestamp": utc_now(), "sampledValue": [{"value": "1234"}]}]}) == {}

    world.play(V16, flow)


# --- Core configuration, through the API's raw calls --------------------------------------------

@octt.case(V16, "TC_019_1_CSMS", "TC_019_2_CSMS")
@pytest.mark.parametrize("keys", [[], ["SupportedFeatureProfiles"]], ids=["all", "one"])
def test_retrieve_configuration(world: World, keys: list[str]):
    async def flow(tool: Tool):
        sent = tool.call("GetConfiguration", {"key": keys} if keys else {})
        frame = await tool.expect("GetConfiguration")
        assert frame[3].get("key", []) == keys
        values = [{"key": "SupportedFeatureProfiles", "readonly": True,
                   "value": "Core,LocalAuthListManagement,RemoteTrigger"}]
        if not keys:
            values.append({"key": "MeterValueSampleInterval", "readonly": False, "value": "60"})
        await tool.reply(frame, {"configurationKey": values})
        call = await tool.outcome(sent)
        assert call["status"] == Call.Status.ACCEPTED
        assert call["response"]["configurationKey"] == values

    world.play(V16, flow)


@octt.case(V16, "TC_021_CSMS", "TC_040_1_CSMS", "TC_040_2_CSMS")
@pytest.mark.parametrize(("key", "value", "answer"), [
    ("MeterValueSampleInterval", "60", "Accepted"),
    ("UnknownConfigKey", "123", "NotSupported"),
    ("MeterValueSampleInterval", "INVALID_VALUE", "Rejected"),
])
def test_change_configuration(world: World, key: str, value: str, answer: str):
    async def flow(tool: Tool):
        sent = tool.call("ChangeConfiguration", {"key": key, "value": value})
        frame = await tool.expect("ChangeConfiguration")
        assert frame[3] == {"key": key, "value": value}
        await tool.reply(frame, {"status": answer})
        call = await tool.outcome(sent)
        assert call["response"] == {"status": answer}
        assert call["status"] == (Call.Status.ACCEPTED if answer == "Accepted"
                                  else Call.Status.REJECTED)

    world.play(V16, flow)


@octt.case(V16, "TC_061_CSMS")
def test_clear_authorization_cache(world: World):
    async def flow(tool: Tool):
        sent = tool.call("ClearCache", {})
        frame = await tool.expect("ClearCache")
        await tool.reply(frame, {"status": "Accepted"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED

    world.play(V16, flow)


# --- Local Auth List Management -----------------------------------------------------------------

@octt.case(V16, "TC_042_1_CSMS", "TC_042_2_CSMS")
@pytest.mark.parametrize("version", [-1, 0], ids=["not-supported", "empty"])
def test_get_local_list_version_reads_and_enables_nothing(world: World, version: int):
    async def flow(tool: Tool):
        sent = tool.call("GetLocalListVersion", {})
        frame = await tool.expect("GetLocalListVersion")
        await tool.reply(frame, {"listVersion": version})
        assert (await tool.outcome(sent))["response"] == {"listVersion": version}
        # Asking is not enabling: no SendLocalList follows.
        with pytest.raises(TimeoutError):
            await tool.charger.receive(wait=1)

    world.play(V16, flow)
    assert not LocalListState.objects.filter(station_id="OCTT-CS", enabled=True).exists()


@octt.case(V16, "TC_043_1_CSMS", "TC_043_3_CSMS", "TC_043_4_CSMS", "TC_043_5_CSMS")
@pytest.mark.parametrize(("update", "answer"), [("Full", "NotSupported"), ("Full", "Failed"),
                                                ("Full", "Accepted"),
                                                ("Differential", "Accepted")])
def test_send_local_list(world: World, update: str, answer: str):
    entries = [{"idTag": "OCTT-VALID", "idTagInfo": {"status": "Accepted"}}]

    async def flow(tool: Tool):
        sent = tool.call("SendLocalList", {"listVersion": 1, "updateType": update,
                                           "localAuthorizationList": entries})
        frame = await tool.expect("SendLocalList")
        assert frame[3]["updateType"] == update
        assert frame[3]["localAuthorizationList"] == entries
        await tool.reply(frame, {"status": answer})
        call = await tool.outcome(sent)
        assert call["response"] == {"status": answer}
        assert call["status"] == (Call.Status.ACCEPTED if answer == "Accepted"
                                  else Call.Status.REJECTED)

    world.play(V16, flow)


# --- Firmware Management --------------------------------------------------------------------------

@octt.case(V16, "TC_044_1_CSMS", "TC_044_2_CSMS", "TC_044_3_CSMS")
@pytest.mark.parametrize("statuses", [
    ["Downloading", "Downloaded", "Installing", "Installed"],
    ["Downloading", "DownloadFailed"],
    ["Downloading", "Downloaded", "Installing", "InstallationFailed"],
], ids=["installed", "download-failed", "installation-failed"])
def test_firmware_update(world: World, statuses: list[str]):
    async def flow(tool: Tool):
        sent = tool.call("UpdateFirmware", {"location": "https://example.org/fw.bin",
                                            "retrieveDate": utc_now(), "retries": 1,
                                            "retryInterval": 1})
        frame = await tool.expect("UpdateFirmware")
        assert frame[3]["location"] == "https://example.org/fw.bin"
        await tool.reply(frame, {})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED
        for state in statuses:
            if state == "Installing":
                await tool.ok("StatusNotification", status(1, "Unavailable"))
            assert await tool.ok("FirmwareStatusNotification", {"status": state}) == {}

    world.play(V16, flow)
    assert Station.objects.get(pk="OCTT-CS").firmware_status == statuses[-1]


@octt.case(V16, "TC_045_1_CSMS", "TC_045_2_CSMS")
@pytest.mark.parametrize("outcome", ["Uploaded", "UploadFailed"])
def test_get_diagnostics(world: World, outcome: str):
    async def flow(tool: Tool):
        sent = tool.call("GetDiagnostics", {"location": "ftp://127.0.0.1/logs", "retries": 1,
                                            "retryInterval": 1})
        frame = await tool.expect("GetDiagnostics")
        await tool.reply(frame, {"fileName": "diag.log"})
        assert (await tool.outcome(sent))["response"] == {"fileName": "diag.log"}
        for state in ("Uploading", outcome):
            assert await tool.ok("DiagnosticsStatusNotification", {"status": state}) == {}

    world.play(V16, flow)
    assert StationEvent.objects.filter(station_id="OCTT-CS", name__contains=outcome).exists()


# --- Security: authentication and the WebSocket handshake -----------------------------------------

@octt.case(V16, "TC_073_CSMS")
def test_update_the_charge_point_password(world: World):
    """The new AuthorizationKey (hex of the password) is adopted once the charger accepts it:
    the charger then logs in with it."""
    new_password = "octt-new-password-42"

    async def flow(tool: Tool):
        key = {"key": "AuthorizationKey", "value": new_password.encode().hex()}
        sent = tool.call("ChangeConfiguration", key)
        frame = await tool.expect("ChangeConfiguration")
        assert frame[3] == key
        await tool.reply(frame, {"status": "Accepted"})
        assert (await tool.outcome(sent))["status"] == Call.Status.ACCEPTED

    async def with_the_new_password(tool: Tool):
        assert (await tool.ok("BootNotification", boot()))["status"] == "Accepted"

    world.play(V16, flow)
    world.play(V16, with_the_new_password, password=new_password)


@octt.case(V16, "TC_085_CSMS")
def test_basic_authentication_valid(world: World):
    async def flow(tool: Tool):
        assert (await tool.ok("BootNotification", boot()))["status"] == "Accepted"
        await tool.ok("StatusNotification", status(0, "Available"))

    world.play(V16, flow)


@octt.case(V16, "TC_088_CSMS")
def test_websocket_subprotocol_validation(world: World):
    """No supported subprotocol offered: the upgrade is refused. ocpp1.6 among others: chosen."""

    async def flow() -> None:
        headers = {"Authorization": basic_auth("OCTT-CS")}
        async with serving() as port:
            url = f"ws://127.0.0.1:{port}/ocpp/OCTT-CS"
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, subprotocols=["ocpp0.1"], additional_headers=headers,
                                   open_timeout=5):
                    pass
            assert refused.value.response.status_code == 400
            async with connect(url, subprotocols=["ocpp0.1", "ocpp1.6"],
                               additional_headers=headers, open_timeout=5) as socket:
                assert socket.subprotocol == "ocpp1.6"

    asyncio.run(flow())
