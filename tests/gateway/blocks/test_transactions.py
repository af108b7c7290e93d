"""Transactions: 1.6 start and stop, 2.0.1 transaction events; a retry counted once, a card
nobody knows, and a session's messages arriving late from offline with gaps."""

from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from stations.models import Transaction, TransactionMessage
from tests.support.chargers import T0, ChargerSocket
from tests.support.examples import Examples
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = Examples(
    received={
        ("1.6", "StartTransaction"): {"connectorId": 1, "idTag": "CARD-1", "meterStart": 1000,
                                      "timestamp": T0},
        ("1.6", "StopTransaction"): {"transactionId": 7, "meterStop": 2000, "timestamp": T0,
                                     "reason": "Local"},
        ("2.0.1", "TransactionEvent"): {
            "eventType": "Started", "timestamp": T0, "triggerReason": "Authorized",
            "seqNo": 0, "transactionInfo": {"transactionId": "TX-1"},
            "evse": {"id": 1, "connectorId": 1},
            "idToken": {"idToken": "CARD-1", "type": "ISO14443"}},
    },
)


def test_retried_transaction_messages_count_once(tokens):
    make_station("DUP16")
    make_station("DUP201")
    start16 = {"connectorId": 1, "idTag": "CARD-1", "meterStart": 100, "timestamp": T0}
    stop16 = {"transactionId": None, "meterStop": 600, "timestamp": "2026-11-24T11:00:00Z"}
    ended = {"eventType": "Ended", "timestamp": "2026-11-24T11:00:00Z", "seqNo": 1,
             "triggerReason": "StopAuthorized",
             "transactionInfo": {"transactionId": "T-1", "stoppedReason": "Local"},
             "meterValue": [{"timestamp": "2026-11-24T11:00:00Z", "sampledValue": [
                 {"value": 600, "context": "Transaction.End"}]}]}
    started = {"eventType": "Started", "timestamp": T0, "seqNo": 0,
               "triggerReason": "Authorized", "transactionInfo": {"transactionId": "T-1"},
               "evse": {"id": 1, "connectorId": 1},
               "meterValue": [{"timestamp": T0, "sampledValue": [
                   {"value": 100, "context": "Transaction.Begin"}]}]}

    async def flow():
        cp16, cp201 = ChargerSocket("DUP16", "1.6"), ChargerSocket("DUP201", "2.0.1")
        await cp16.connect()
        await cp201.connect()
        # Each retry has a new message id, as a charger's retry after a lost answer would.
        first = await cp16.ok("StartTransaction", start16)
        again = await cp16.ok("StartTransaction", start16)
        assert first["transactionId"] == again["transactionId"]
        stop16["transactionId"] = first["transactionId"]
        assert await cp16.ok("StopTransaction", stop16) == {}
        assert await cp16.ok("StopTransaction", stop16) == {}
        for payload in (started, started, ended, ended):
            assert await cp201.ok("TransactionEvent", payload) == {}
        await cp16.close()
        await cp201.close()

    async_to_sync(flow)()
    for station in ("DUP16", "DUP201"):
        (tx,) = Transaction.objects.filter(station_id=station)
        assert tx.energy_wh == Decimal(500) and tx.state == Transaction.State.COMPLETED
    assert TransactionMessage.objects.filter(transaction__station_id="DUP201").count() == 2
    assert TransactionMessage.objects.filter(transaction__station_id="DUP16").count() == 2


def test_unknown_token_transaction_is_stored_and_answered_invalid():
    make_station("UNK")

    async def flow():
        cp = ChargerSocket("UNK", "1.6")
        await cp.connect()
        start = await cp.ok("StartTransaction", {"connectorId": 2, "idTag": "STRANGER",
                                                 "meterStart": 0, "timestamp": T0})
        await cp.close()
        return start

    start = async_to_sync(flow)()
    assert start["idTagInfo"]["status"] == "Invalid"
    tx = Transaction.objects.get(station_id="UNK")
    assert tx.id_token is None and tx.id_token_value == "STRANGER"
    assert tx.transaction_id == str(start["transactionId"])


def test_late_offline_messages_with_gaps_are_accepted_and_flagged(tokens):
    make_station("OFF")
    base = {"transactionInfo": {"transactionId": "OFF-1"}, "offline": True}

    async def flow():
        cp = ChargerSocket("OFF", "2.0.1")
        await cp.connect()
        # Hours old, the start lost for good, one update missing (seqNo 2).
        for seq, kind, trigger, minute in ((1, "Updated", "MeterValuePeriodic", 10),
                                           (3, "Updated", "MeterValuePeriodic", 30),
                                           (4, "Ended", "EVDeparted", 40)):
            timestamp = f"2026-11-23T03:{minute:02d}:00Z"
            assert await cp.ok("TransactionEvent", {
                **base, "eventType": kind, "seqNo": seq, "triggerReason": trigger,
                "timestamp": timestamp, "evse": {"id": 1},
                "meterValue": [{"timestamp": timestamp, "sampledValue": [
                    {"value": 1000 * minute}]}]}) == {}
        await cp.close()

    async_to_sync(flow)()
    tx = Transaction.objects.get(station_id="OFF")
    assert tx.offline and tx.needs_review and tx.state == Transaction.State.COMPLETED
    assert "2" in tx.review_note
    assert tx.energy_wh == Decimal(30000)  # first register seen (10 kWh) to last (40 kWh)
