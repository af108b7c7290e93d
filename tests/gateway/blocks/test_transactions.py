"""Transactions: 1.6 start and stop, 2.0.1 transaction events; a retry counted once, a card
nobody knows, and a session's messages arriving late from offline with gaps: the station asked
for them (E14) and the bill waiting; a transaction opened by a later event; a remote start's
card linked by its remoteStartId."""

import asyncio
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.utils import timezone

from billing.models import SessionCost
from stations.models import Call, Station, Transaction, TransactionMessage
from stations.services import commands, transactions
from stations.services.transactions import TransactionStatusQuery
from tests.support.chargers import T0, ChargerSocket, RealCharger, in_thread, serving
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
    sent={
        ("2.0.1", TransactionStatusQuery): (TransactionStatusQuery("TX-1"),
                                            {"messagesInQueue": False}),
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


# The gap tests' sessions start within the last two hours: a running session is priced up to
# now, and pricing refuses sessions longer than a month.
GAP_START = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)


def event(kind: str, seq: int, minute: int, wh: int, transaction_id: str = "GAP-1",
          **extra) -> dict:
    at = (GAP_START + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
    context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(
        kind, "Sample.Periodic")
    return {"eventType": kind, "timestamp": at, "seqNo": seq,
            "triggerReason": {"Started": "Authorized", "Ended": "StopAuthorized"}.get(
                kind, "MeterValuePeriodic"),
            "transactionInfo": {"transactionId": transaction_id,
                                **({"stoppedReason": "Local"} if kind == "Ended" else {})},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": at, "sampledValue": [
                {"value": wh, "context": context}]}], **extra}


FLEET_CARD = {"idToken": {"idToken": "TOKEN-FLEET", "type": "ISO14443"}}


async def exchange(charger: RealCharger, payload: dict, calls: list[list]) -> dict:
    """Send a TransactionEvent and return its answer; the CSMS's calls that come meanwhile
    are kept in `calls` (a running cost is answered at once, as a charger does)."""
    message_id = str(next(charger.ids))
    await charger.send_text(json.dumps([2, message_id, "TransactionEvent", payload]))
    while (frame := await charger.receive())[0] == 2:
        calls.append(frame)
        if frame[2] == "CostUpdated":
            await charger.answer(frame, {})
    assert frame[:2] == [3, message_id], frame
    return frame[2]


async def settled() -> None:
    """Until the station's answer to GetTransactionStatus is stored (its reader's commit)."""
    still_open = Call.objects.filter(action="GetTransactionStatus", status__in=Call.OPEN)
    async with asyncio.timeout(5):
        while await sync_to_async(still_open.exists)():  # noqa: ASYNC110 (the server commits)
            await asyncio.sleep(0.05)


async def ended_and_asked(charger: RealCharger, *events: dict) -> list:
    """Send the events; the last (Ended) is answered first (commit, then answer), then the
    CSMS asks whether the station holds more (E14)."""
    calls: list[list] = []
    for payload in events:
        await exchange(charger, payload, calls)
    assert not [c for c in calls if c[2] == "GetTransactionStatus"]  # not before the answer
    asked = await charger.receive()
    assert asked[:3] == [2, asked[1], "GetTransactionStatus"], asked
    assert asked[3] == {"transactionId": "GAP-1"}
    return asked


def test_a_session_ended_with_a_gap_waits_for_the_queued_messages_before_its_bill(
        personas, cast):
    """E14: the station is asked whether it still holds messages; while it does, the session is
    not final (no invoice takes it); the missing message completes it and it is billed."""
    async def flow() -> None:
        async with serving() as port, RealCharger.connected(port, "STATION-A", "2.0.1") as cp:
            asked = await ended_and_asked(
                cp, event("Started", 0, 0, 1000, **FLEET_CARD), event("Updated", 2, 30, 6000),
                event("Ended", 3, 59, 13500))
            await cp.answer(asked, {"messagesInQueue": True})
            await settled()
            waiting = await sync_to_async(Transaction.objects.get)(station_id="STATION-A")
            assert waiting.messages_awaited_since is not None and waiting.needs_review
            cost = await sync_to_async(SessionCost.objects.get)(transaction=waiting)
            assert cost.state != SessionCost.State.FINAL
            await cp.ok("TransactionEvent", event("Updated", 1, 15, 3000, offline=True))

    asyncio.run(flow())
    tx = Transaction.objects.get(station_id="STATION-A")
    assert tx.messages_awaited_since is None and not tx.needs_review
    assert tx.cost.state == SessionCost.State.FINAL and tx.cost.gross == Decimal("5.95")
    assert Call.objects.get(action="GetTransactionStatus").status == Call.Status.ACCEPTED


def test_a_gap_the_station_does_not_hold_is_recorded_at_once(personas, cast):
    async def flow() -> None:
        async with serving() as port, RealCharger.connected(port, "STATION-A", "2.0.1") as cp:
            asked = await ended_and_asked(
                cp, event("Started", 0, 0, 1000, **FLEET_CARD), event("Updated", 2, 30, 6000),
                event("Ended", 3, 59, 13500))
            await cp.answer(asked, {"messagesInQueue": False})
            await settled()
            tx = await sync_to_async(Transaction.objects.select_related("cost").get)(
                station_id="STATION-A")
            assert tx.messages_awaited_since is None
            assert tx.needs_review and tx.review_note == "messages missing: sequence numbers 1"
            assert tx.cost.state == SessionCost.State.REVIEW
            # It turns up after all (a station's lost queue found again): complete, billed.
            await cp.ok("TransactionEvent", event("Updated", 1, 15, 3000, offline=True))

    asyncio.run(flow())
    tx = Transaction.objects.get(station_id="STATION-A")
    assert not tx.needs_review and tx.cost.state == SessionCost.State.FINAL


def test_a_gap_nobody_answers_for_is_recorded_after_the_wait(personas, cast, settings):
    async def flow() -> None:
        async with serving() as port, RealCharger.connected(port, "STATION-A", "2.0.1") as cp:
            await ended_and_asked(  # never answered
                cp, event("Started", 0, 0, 1000, **FLEET_CARD), event("Updated", 2, 30, 6000),
                event("Ended", 3, 59, 13500))

    asyncio.run(flow())
    wait = timedelta(seconds=settings.OCPP["MESSAGES_WAIT"])
    assert transactions.transactions_close_abandoned(now=timezone.now() + wait / 2) == []
    assert Transaction.objects.get(station_id="STATION-A").messages_awaited_since is not None
    transactions.transactions_close_abandoned(now=timezone.now() + wait + timedelta(seconds=1))
    tx = Transaction.objects.get(station_id="STATION-A")
    assert tx.messages_awaited_since is None
    assert tx.review_note == "messages missing: sequence numbers 1"


def test_a_transaction_first_heard_of_by_an_update_is_priced_like_any(personas, cast):
    """A station that lost a transaction's Started opens it with any later event: it is created
    from it, priced while it runs, and billed at its end when its readings suffice."""
    async def flow() -> None:
        async with serving() as port, RealCharger.connected(port, "STATION-A", "2.0.1") as cp:
            calls: list[list] = []
            await exchange(cp, event("Updated", 1, 0, 1000, **FLEET_CARD), calls)
            running = await sync_to_async(Transaction.objects.get)(station_id="STATION-A")
            assert not running.needs_review
            cost = await sync_to_async(SessionCost.objects.get)(transaction=running)
            assert cost.state == SessionCost.State.RUNNING
            await exchange(cp, event("Updated", 2, 30, 6000), calls)
            if not calls:  # the running cost goes out after the answer
                calls.append(await cp.receive())
                await cp.answer(calls[-1], {})
            assert calls[0][2:] == ["CostUpdated", {"totalCost": 0, "transactionId": "GAP-1"}]
            asked = await ended_and_asked(cp, event("Ended", 3, 59, 13500))
            await cp.answer(asked, {"messagesInQueue": False})
            await settled()

    asyncio.run(flow())
    tx = Transaction.objects.get(station_id="STATION-A")
    assert (tx.meter_start_wh, tx.energy_wh, tx.needs_review) == (
        Decimal(1000), Decimal(12500), False)
    assert tx.cost.state == SessionCost.State.FINAL and tx.cost.gross == Decimal("5.95")


def test_a_remotely_started_session_without_its_card_in_the_events_is_the_cards_asked_for(
        personas):
    """E02: the Started event of a RequestStartTransaction may omit the idToken; its
    remoteStartId links it to the card the CSMS asked for."""
    async def flow() -> None:
        async with serving() as port, RealCharger.connected(port, "STATION-A", "2.0.1") as cp:
            station = await sync_to_async(Station.objects.get)(pk="STATION-A")
            sent = in_thread(commands.send, station,
                             commands.RemoteStart(evse=1, id_token="TOKEN-OPERATOR"))
            request = await cp.receive()
            await cp.answer(request, {"status": "Accepted"})
            assert (await sent).status == Call.Status.ACCEPTED
            started = event("Started", 0, 0, 1000, transaction_id="REMOTE-1")
            started["triggerReason"] = "RemoteStart"
            started["transactionInfo"]["remoteStartId"] = request[3]["remoteStartId"]
            assert await cp.ok("TransactionEvent", started) == {}  # no idToken, no idTokenInfo

    asyncio.run(flow())
    tx = Transaction.objects.get(station_id="STATION-A")
    assert tx.id_token_value == "TOKEN-OPERATOR" and tx.id_token == personas.token
