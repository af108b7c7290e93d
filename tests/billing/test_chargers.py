"""Costs between the CSMS and real (in-process) chargers: a 2.0.1 charger hears its running
cost (CostUpdated) and gets the total with the end of the session; a 1.6 charger, which has no
such messages, is priced all the same."""

from datetime import datetime
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from billing.models import SessionCost
from stations.models import Call, Transaction
from tests.support.billing_cast import billing_cast
from tests.support.chargers import T0, ChargerSocket
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db(transaction=True)



def energy(value: float, context: str, timestamp: str) -> list[dict]:
    return [{"timestamp": timestamp, "sampledValue": [
        {"value": value, "context": context, "measurand": "Energy.Active.Import.Register",
         "unitOfMeasure": {"unit": "kWh"}}]}]


def event(kind: str, seq: int, timestamp: str, **extra) -> dict:
    return {"eventType": kind, "timestamp": timestamp, "seqNo": seq,
            "triggerReason": {"Started": "Authorized", "Updated": "MeterValuePeriodic",
                              "Ended": "EVCommunicationLost"}[kind],
            "transactionInfo": {"transactionId": "tx-cost"}, **extra}


def test_a_201_charger_hears_the_running_cost_and_gets_the_total(personas, settings):
    settings.BILLING = {**settings.BILLING, "COST_UPDATE_INTERVAL": 0}
    billing_cast(personas)  # site A: 0.40 EUR/kWh + 19 % VAT
    make_station("CP-COST", site=personas.site_a)

    async def flow() -> tuple[list, dict]:
        cp = ChargerSocket("CP-COST", "2.0.1")
        assert await cp.connect()
        await cp.ok("BootNotification", {"reason": "PowerUp", "chargingStation": {
            "vendorName": "ACME", "model": "AC22"}})
        await cp.ok("TransactionEvent", event(
            "Started", 0, T0, idToken={"idToken": "TOKEN-FLEET", "type": "ISO14443"},
            evse={"id": 1, "connectorId": 1},
            meterValue=energy(20.5, "Transaction.Begin", T0)))
        await cp.ok("TransactionEvent", event(
            "Updated", 1, "2026-11-24T10:10:00Z",
            meterValue=energy(21.75, "Sample.Periodic", "2026-11-24T10:10:00Z")))
        cost_call = await cp.receive()  # the CSMS's CALL, after its answer
        await cp.answer(cost_call, {})
        ended = await cp.ok("TransactionEvent", event(
            "Ended", 2, "2026-11-24T10:20:00Z",
            transactionInfo={"transactionId": "tx-cost", "stoppedReason": "EVDisconnected"},
            meterValue=energy(23.125, "Transaction.End", "2026-11-24T10:20:00Z")))
        await cp.close()
        return cost_call, ended

    cost_call, ended = async_to_sync(flow)()
    # 1.25 kWh x 0.40 = 0.50 net + 0.10 VAT.
    assert cost_call[2:] == ["CostUpdated", {"totalCost": 0.6, "transactionId": "tx-cost"}]
    assert Call.objects.get(action="CostUpdated").status == Call.Status.ACCEPTED
    # 2.625 kWh x 0.40 = 1.05 net; VAT 0.1995 -> 0.20; the total is stored before the answer.
    assert ended["totalCost"] == 1.25
    cost = SessionCost.objects.get(transaction__transaction_id="tx-cost")
    assert (cost.state, cost.net, cost.gross) == ("final", Decimal("1.05"), Decimal("1.25"))


def test_a_16_charger_is_priced_without_cost_messages(personas, settings):
    settings.BILLING = {**settings.BILLING, "COST_UPDATE_INTERVAL": 0}
    billing_cast(personas)
    make_station("CP-OLD", site=personas.site_a)

    async def flow() -> dict:
        cp = ChargerSocket("CP-OLD", "1.6")
        assert await cp.connect()
        await cp.ok("BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "X"})
        started = await cp.ok("StartTransaction", {
            "connectorId": 1, "idTag": "TOKEN-FLEET", "meterStart": 1000, "timestamp": T0})
        await cp.ok("MeterValues", {"connectorId": 1, "transactionId": started["transactionId"],
                                    "meterValue": [{"timestamp": "2026-11-24T10:30:00Z",
                                                    "sampledValue": [{"value": "6000"}]}]})
        stopped = await cp.ok("StopTransaction", {
            "transactionId": started["transactionId"], "meterStop": 11000,
            "timestamp": "2026-11-24T11:00:00Z", "reason": "EVDisconnected"})
        await cp.close()
        return stopped

    stopped = async_to_sync(flow)()
    assert "totalCost" not in stopped  # 1.6 has no such field
    assert not Call.objects.filter(action="CostUpdated").exists()
    tx = Transaction.objects.get(station_id="CP-OLD")
    assert (tx.cost.state, tx.cost.net, tx.cost.gross) == ("final", Decimal("4.00"),
                                                           Decimal("4.76"))
    assert datetime.fromisoformat("2026-11-24T11:00:00+00:00") == tx.stopped_at


def test_a_201_charger_is_not_told_a_total_while_the_idle_fee_still_runs(personas, settings):
    """Stopped with the car still plugged in: the cost is provisional (the idle fee runs until
    the car leaves), so the end's answer carries no totalCost; the charger hears the cost so
    far as a running cost (CostUpdated) instead."""
    from tests.support.billing_cast import make_tariff

    issuer, _ = billing_cast(personas)
    station = make_station("CP-IDLE", site=personas.site_a)
    make_tariff(issuer, name="Idle", station=station, idle_price_minute=Decimal("0.10"))

    async def flow() -> tuple[dict, list]:
        cp = ChargerSocket("CP-IDLE", "2.0.1")
        assert await cp.connect()
        await cp.ok("BootNotification", {"reason": "PowerUp", "chargingStation": {
            "vendorName": "ACME", "model": "AC22"}})
        await cp.ok("StatusNotification", {"timestamp": T0, "connectorStatus": "Occupied",
                                           "evseId": 1, "connectorId": 1})
        await cp.ok("TransactionEvent", event(
            "Started", 0, T0, idToken={"idToken": "TOKEN-FLEET", "type": "ISO14443"},
            evse={"id": 1, "connectorId": 1},
            meterValue=energy(20.5, "Transaction.Begin", T0)))
        ended = await cp.ok("TransactionEvent", event(
            "Ended", 1, "2026-11-24T10:20:00Z",
            transactionInfo={"transactionId": "tx-cost", "stoppedReason": "Local"},
            meterValue=energy(23.125, "Transaction.End", "2026-11-24T10:20:00Z")))
        cost_call = await cp.receive()
        await cp.answer(cost_call, {})
        await cp.close()
        return ended, cost_call

    ended, cost_call = async_to_sync(flow)()
    cost = SessionCost.objects.get(transaction__transaction_id="tx-cost")
    assert cost.state == "idle" and cost.provisional
    assert "totalCost" not in ended
    assert cost_call[2:] == ["CostUpdated", {"totalCost": float(cost.gross),
                                             "transactionId": "tx-cost"}]
