"""The core charging flow over a real WebSocket, in both OCPP versions, into one domain."""

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from stations.models import (
    Connector,
    MessageLog,
    MeterSample,
    Station,
    StationEvent,
    Transaction,
)
from tests.support.chargers import T0, ChargerSocket
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db(transaction=True)


def test_ocpp16_session_from_boot_to_stop(tokens):
    make_station("CP16")

    async def flow():
        cp = ChargerSocket("CP16", "1.6")
        assert await cp.connect() and cp.subprotocol == "ocpp1.6"
        boot = await cp.ok("BootNotification", {"chargePointVendor": "ACME",
                                                "chargePointModel": "Wallbox",
                                                "chargePointSerialNumber": "SN1",
                                                "firmwareVersion": "1.2"})
        assert boot["status"] == "Accepted" and boot["currentTime"].endswith("Z")
        await cp.ok("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                           "status": "Preparing", "timestamp": T0})
        assert (await cp.ok("Authorize", {"idTag": "CARD-1"}))["idTagInfo"]["status"] == (
            "Accepted")
        start = await cp.ok("StartTransaction", {"connectorId": 1, "idTag": "CARD-1",
                                                 "meterStart": 12000, "timestamp": T0})
        tx_id = start["transactionId"]
        assert isinstance(tx_id, int) and start["idTagInfo"]["status"] == "Accepted"
        await cp.ok("MeterValues", {"connectorId": 1, "transactionId": tx_id, "meterValue": [
            {"timestamp": "2026-11-24T10:15:00Z", "sampledValue": [
                {"value": "13.5", "unit": "kWh", "measurand": "Energy.Active.Import.Register"},
                {"value": "7.2", "unit": "kW", "measurand": "Power.Active.Import"},
            ]}]})
        stop = await cp.ok("StopTransaction", {
            "transactionId": tx_id, "meterStop": 15250, "timestamp": "2026-11-24T10:30:00Z",
            "idTag": "CARD-1", "reason": "Local",
            "transactionData": [{"timestamp": "2026-11-24T10:30:00Z", "sampledValue": [
                {"value": "15250", "context": "Transaction.End"}]}]})
        assert stop["idTagInfo"]["status"] == "Accepted"
        await cp.close()
        return tx_id

    tx_id = async_to_sync(flow)()
    station = Station.objects.get(pk="CP16")
    assert (station.vendor, station.model, station.serial_number) == ("ACME", "Wallbox", "SN1")
    assert station.ocpp_version == "1.6" and not station.connected
    tx = Transaction.objects.get(station=station, transaction_id=str(tx_id))
    assert tx.state == Transaction.State.COMPLETED
    assert tx.energy_wh == Decimal(3250) == tx.meter_stop_wh - tx.meter_start_wh
    assert tx.id_token.value == "CARD-1" and tx.evse.number == 1 and not tx.needs_review
    power = MeterSample.objects.get(transaction=tx, measurand="Power.Active.Import")
    assert (power.value, power.unit) == (Decimal(7200), "W")
    connector = Connector.objects.get(evse__station=station, evse__number=1, number=1)
    assert (connector.status, connector.status_detail) == ("Occupied", "Preparing")
    assert MessageLog.objects.filter(station=station).count() == 12  # 6 calls, 6 replies


def test_ocpp201_session_from_boot_to_end(tokens):
    make_station("CP201")

    def event(kind, seq, timestamp, **extra):
        payload = {"eventType": kind, "timestamp": timestamp, "seqNo": seq,
                   "triggerReason": {"Started": "Authorized", "Updated": "MeterValuePeriodic",
                                     "Ended": "StopAuthorized"}[kind],
                   "transactionInfo": {"transactionId": "tx-201-a"}}
        payload.update(extra)
        return payload

    def energy(value, context, timestamp):
        return [{"timestamp": timestamp, "sampledValue": [
            {"value": value, "context": context, "measurand": "Energy.Active.Import.Register",
             "unitOfMeasure": {"unit": "kWh"}}]}]

    async def flow():
        cp = ChargerSocket("CP201", "2.0.1", subprotocols=["ocpp1.6", "ocpp2.0.1"])
        assert await cp.connect() and cp.subprotocol == "ocpp2.0.1"  # the newest offered
        boot = await cp.ok("BootNotification", {"reason": "PowerUp", "chargingStation": {
            "vendorName": "ACME", "model": "DC50", "serialNumber": "SN2",
            "firmwareVersion": "2.0"}})
        assert boot["status"] == "Accepted"
        await cp.ok("StatusNotification", {"timestamp": T0, "connectorStatus": "Occupied",
                                           "evseId": 1, "connectorId": 1})
        auth = await cp.ok("Authorize", {"idToken": {"idToken": "CARD-1", "type": "ISO14443"}})
        assert auth["idTokenInfo"]["status"] == "Accepted"
        started = await cp.ok("TransactionEvent", event(
            "Started", 0, T0, idToken={"idToken": "CARD-1", "type": "ISO14443"},
            evse={"id": 1, "connectorId": 1},
            meterValue=energy(20.5, "Transaction.Begin", T0)))
        assert started["idTokenInfo"]["status"] == "Accepted"
        await cp.ok("TransactionEvent", event(
            "Updated", 1, "2026-11-24T10:10:00Z",
            meterValue=energy(21.75, "Sample.Periodic", "2026-11-24T10:10:00Z")))
        await cp.ok("TransactionEvent", event(
            "Ended", 2, "2026-11-24T10:20:00Z",
            transactionInfo={"transactionId": "tx-201-a", "stoppedReason": "EVDisconnected"},
            meterValue=energy(23.125, "Transaction.End", "2026-11-24T10:20:00Z")))
        await cp.close()

    async_to_sync(flow)()
    tx = Transaction.objects.get(station_id="CP201", transaction_id="tx-201-a")
    assert tx.state == Transaction.State.COMPLETED and tx.stop_reason == "EVDisconnected"
    assert (tx.meter_start_wh, tx.meter_stop_wh) == (Decimal(20500), Decimal(23125))
    assert tx.energy_wh == Decimal(2625) and not tx.needs_review
    assert list(tx.messages.values_list("sequence", flat=True)) == [0, 1, 2]


def test_notifications_are_recorded(tokens):
    make_station("NOTE16")
    make_station("NOTE201")

    async def flow():
        cp16, cp201 = ChargerSocket("NOTE16", "1.6"), ChargerSocket("NOTE201", "2.0.1")
        await cp16.connect()
        await cp201.connect()
        await cp16.ok("FirmwareStatusNotification", {"status": "Downloading"})
        await cp16.ok("DiagnosticsStatusNotification", {"status": "Uploaded"})
        await cp16.ok("SecurityEventNotification", {"type": "TamperDetectionActivated",
                                                    "timestamp": T0})
        assert await cp16.ok("DataTransfer", {"vendorId": "acme"}) == {
            "status": "UnknownVendorId"}
        await cp201.ok("FirmwareStatusNotification", {"status": "Installed"})
        await cp201.ok("LogStatusNotification", {"status": "Uploaded"})
        await cp201.ok("SecurityEventNotification", {"type": "FirmwareUpdated",
                                                     "timestamp": T0})
        await cp201.ok("NotifyEvent", {"generatedAt": T0, "seqNo": 0, "eventData": [{
            "eventId": 1, "timestamp": T0, "trigger": "Alerting", "actualValue": "95",
            "eventNotificationType": "HardWiredMonitor",
            "component": {"name": "Connector"}, "variable": {"name": "Temperature"}}]})
        await cp201.ok("NotifyReport", {"requestId": 1, "generatedAt": T0, "seqNo": 0,
                                        "reportData": [{
                                            "component": {"name": "OCPPCommCtrlr"},
                                            "variable": {"name": "HeartbeatInterval"},
                                            "variableAttribute": [{"value": "300",
                                                                   "mutability": "ReadWrite"}]}]})
        assert (await cp201.ok("DataTransfer", {"vendorId": "acme"}))["status"] == (
            "UnknownVendorId")
        await cp16.close()
        await cp201.close()

    async_to_sync(flow)()
    assert Station.objects.get(pk="NOTE16").firmware_status == "Downloading"
    assert Station.objects.get(pk="NOTE201").firmware_status == "Installed"
    kinds = sorted(StationEvent.objects.exclude(name="Boot").values_list("kind", flat=True))
    assert kinds.count("security") == 2 and kinds.count("diagnostics") == 2
    variable = Station.objects.get(pk="NOTE201").variables.get()
    assert (variable.component, variable.variable, variable.value) == (
        "OCPPCommCtrlr", "HeartbeatInterval", "300")
