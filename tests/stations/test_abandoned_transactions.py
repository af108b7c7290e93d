"""Transactions nobody will end (stations/services/transactions.py): one left open by a reboot
is closed after the grace and flagged, the charger's own end arriving late replaces ours, and a
station silent for a day has its session closed while one still heard keeps it. Sessions a
charger abandoned end with what it reports next: a newer session on the EVSE, or (after a
refused card) the connector reported free."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from accounts.models import IdToken
from csms.gateway.frames import utc_timestamp
from stations.models import Station, Transaction, TransactionMessage
from stations.services import transactions
from stations.services.authorization import authorize
from tests.support.chargers import ChargerSocket, RealCharger, serving
from tests.support.personas import make_station, make_transaction

pytestmark = pytest.mark.django_db(transaction=True)


def open_transaction(station_id: str, minutes_ago: int, meter_start: int, meter_last: int,
                     sequence: int | None = None) -> Transaction:
    station = Station.objects.get(pk=station_id)
    at = timezone.now() - timedelta(minutes=minutes_ago)
    tx = Transaction.objects.create(
        station=station, transaction_id="77", started_at=at, meter_start_wh=meter_start,
        meter_last_wh=meter_last, id_token_value="CARD")
    TransactionMessage.objects.create(transaction=tx, kind="start", timestamp=at,
                                      sequence=sequence)
    Transaction.objects.filter(pk=tx.pk).update(updated_at=at)
    return tx


def test_a_transaction_left_open_by_a_reboot_is_closed_after_the_grace_and_flagged(settings):
    settings.OCPP = {**settings.OCPP, "REBOOT_GRACE": 600}
    make_station("REBOOTED")
    tx = open_transaction("REBOOTED", 60, 1000, 4500)
    booted = timezone.now() - timedelta(minutes=5)
    Station.objects.filter(pk="REBOOTED").update(last_boot_at=booted)

    assert transactions.transactions_close_abandoned() == []  # its stop may still be queued
    assert transactions.transactions_close_abandoned(now=timezone.now() + timedelta(minutes=6)) == [
        tx.pk]

    tx.refresh_from_db()
    assert (tx.state, tx.stop_reason, tx.meter_stop_wh, tx.energy_wh) == (
        "completed", transactions.CLOSED_BY_CSMS, Decimal(4500), Decimal(3500))
    assert tx.needs_review and "rebooted" in tx.review_note


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_the_chargers_own_end_arriving_late_replaces_ours(settings, version):
    settings.OCPP = {**settings.OCPP, "REBOOT_GRACE": 0}
    make_station("LATE-END")
    IdToken.objects.create(value="CARD")
    tx = open_transaction("LATE-END", 60, 1000, 4500, sequence=0 if version == "2.0.1" else None)
    Station.objects.filter(pk="LATE-END").update(last_boot_at=timezone.now())
    assert transactions.transactions_close_abandoned(now=timezone.now() + timedelta(seconds=1))
    stopped = utc_timestamp(timezone.now() - timedelta(minutes=30))
    if version == "1.6":
        action, payload = "StopTransaction", {"transactionId": 77, "meterStop": 6000,
                                               "timestamp": stopped, "reason": "Reboot"}
    else:
        action, payload = "TransactionEvent", {
            "eventType": "Ended", "timestamp": stopped, "seqNo": 1, "offline": True,
            "triggerReason": "AbnormalCondition",
            "transactionInfo": {"transactionId": "77", "stoppedReason": "Reboot"},
            "meterValue": [{"timestamp": stopped, "sampledValue": [
                {"value": 6000, "context": "Transaction.End"}]}]}

    async def late() -> list:
        cp = ChargerSocket("LATE-END", version)
        assert await cp.connect()
        reply = await cp.call(action, payload)
        await cp.close()
        return reply

    assert asyncio.run(late())[0] == 3
    tx.refresh_from_db()
    assert (tx.energy_wh, tx.stop_reason) == (Decimal(5000), "Reboot")
    assert tx.needs_review and "own end arrived" in tx.review_note


def test_a_transaction_of_a_station_silent_for_a_day_is_closed_but_not_one_still_heard(settings):
    make_station("GONE", last_seen=timezone.now() - timedelta(hours=30))
    make_station("HERE", last_seen=timezone.now())
    gone = open_transaction("GONE", 30 * 60, 0, 12000)
    here = open_transaction("HERE", 30 * 60, 0, 12000)  # a long session, station online

    assert transactions.transactions_close_abandoned() == [gone.pk]
    gone.refresh_from_db()
    here.refresh_from_db()
    assert gone.state == "completed" and "nothing heard" in gone.review_note
    assert here.state == "active"


# --- sessions their charger abandoned, ended by what it reports next (real sockets) ---------

def start_payload(version: str, transaction_id: str, at: str, wh: int,
                  card: str = "TOKEN-OPERATOR") -> tuple[str, dict]:
    if version == "1.6":
        return "StartTransaction", {"connectorId": 1, "idTag": card, "meterStart": wh,
                                    "timestamp": at}
    return "TransactionEvent", {
        "eventType": "Started", "timestamp": at, "triggerReason": "Authorized", "seqNo": 0,
        "transactionInfo": {"transactionId": transaction_id}, "evse": {"id": 1, "connectorId": 1},
        "idToken": {"idToken": card, "type": "ISO14443"},
        "meterValue": [{"timestamp": at, "sampledValue": [
            {"value": wh, "context": "Transaction.Begin"}]}]}


def boot_payload(version: str) -> dict:
    if version == "1.6":
        return {"chargePointVendor": "V", "chargePointModel": "M"}
    return {"reason": "PowerUp", "chargingStation": {"vendorName": "V", "model": "M"}}


def minutes_ago(minutes: int) -> str:
    return utc_timestamp(timezone.now() - timedelta(minutes=minutes))


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_session_left_open_over_a_server_restart_ends_when_its_connector_starts_a_new_one(
        personas, api, client, version):
    """The charger kept its socket's session when the server restarted, lost its end, and
    started a new session on the same connector with the same card: the old one is over at
    once (not after a grace or a day), and says why on its page and in the API."""
    async def flow() -> dict:
        async with serving() as port, RealCharger.connected(
                port, "STATION-A", version) as charger:
            await charger.ok(*start_payload(version, "BEFORE", minutes_ago(30), 1000))
        async with serving() as port, RealCharger.connected(
                port, "STATION-A", version) as charger:  # the server restarted
            await charger.ok("BootNotification", boot_payload(version))
            return await charger.ok(*start_payload(version, "AFTER", minutes_ago(1), 5000))

    second = asyncio.run(flow())
    if version == "1.6":
        assert second["idTagInfo"]["status"] == "Accepted"
    old, new = Transaction.objects.filter(station_id="STATION-A").order_by("started_at")
    assert (old.state, old.csms_end_reason, old.stop_reason) == (
        "completed", Transaction.CsmsEnd.NEW_SESSION, transactions.CLOSED_BY_CSMS)
    assert new.state == "active" and not new.csms_end_reason
    assert old.needs_review and f"session {new.transaction_id} started" in old.review_note
    shown = api(personas.operator).get(f"/api/v1/transactions/{old.pk}/").json()
    assert shown["csms_end_reason"] == "new_session"
    assert shown["csms_end_reason_text"] == "a newer session started on its EVSE"
    client.force_login(personas.operator)
    page = client.get(f"/sessions/{old.pk}/").content.decode()
    assert "Ended by the CSMS" in page and "a newer session started on its EVSE" in page


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_late_start_of_an_older_session_never_ends_a_newer_one(personas, version):
    async def flow() -> None:
        async with serving() as port, RealCharger.connected(
                port, "STATION-A", version) as charger:
            await charger.ok(*start_payload(version, "NOW", minutes_ago(5), 5000))
            # Sent from the charger's offline queue: an older session, its start late.
            await charger.ok(*start_payload(version, "EARLIER", minutes_ago(60), 1000))

    asyncio.run(flow())
    newest = Transaction.objects.filter(station_id="STATION-A").order_by("-started_at").first()
    assert newest.state == "active" and not newest.csms_end_reason


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_session_left_open_by_a_reboot_is_ended_after_the_grace_the_readme_promises(
        personas, settings, version):
    """README: OCPP_REBOOT_GRACE (900 s) after a boot, a session the station never ended is
    closed by the liveness sweep; its stop, queued over the reboot, still has the time to come."""
    assert settings.OCPP["REBOOT_GRACE"] == 900

    async def flow() -> None:
        async with serving() as port, RealCharger.connected(
                port, "STATION-A", version) as charger:
            await charger.ok(*start_payload(version, "OPEN", minutes_ago(30), 1000))
            await charger.ok("BootNotification", boot_payload(version))

    asyncio.run(flow())
    (tx,) = Transaction.objects.filter(station_id="STATION-A")
    Transaction.objects.filter(pk=tx.pk).update(updated_at=timezone.now() - timedelta(minutes=1))
    assert transactions.transactions_close_abandoned(
        now=timezone.now() + timedelta(minutes=14)) == []
    assert transactions.transactions_close_abandoned(
        now=timezone.now() + timedelta(minutes=15, seconds=1)) == [tx.pk]
    tx.refresh_from_db()
    assert tx.csms_end_reason == Transaction.CsmsEnd.REBOOT


def test_a_refused_start_without_a_stop_ends_when_the_connector_is_reported_free(personas):
    """1.6: a start answered ConcurrentTx (the card charges at another station), and the charger
    sends no StopTransaction: its next Available (or Preparing) ends the session, and the card
    is accepted again everywhere, with no stuck session left."""
    make_transaction(personas.station_b, personas.token)  # the card charges at B

    async def flow() -> dict:
        async with serving() as port, RealCharger.connected(port, "STATION-A", "1.6") as cp:
            refused = await cp.ok(*start_payload("1.6", "", minutes_ago(3), 100))
            await cp.ok("StatusNotification", {"connectorId": 1, "status": "Available",
                                               "errorCode": "NoError"})
            return refused

    refused = asyncio.run(flow())
    assert refused["idTagInfo"]["status"] == "ConcurrentTx"
    tx = Transaction.objects.get(station_id="STATION-A")
    assert (tx.state, tx.csms_end_reason) == ("completed", Transaction.CsmsEnd.CONNECTOR_FREE)
    assert tx.id_token_refused
    Transaction.objects.filter(station=personas.station_b).update(state="completed")
    assert authorize(personas.station_b, "TOKEN-OPERATOR").status == "Accepted"


def test_a_refused_start_is_ended_by_the_next_start_on_its_connector_and_its_preparing(
        personas):
    make_transaction(personas.station_b, personas.token)  # the card charges at B

    async def flow() -> None:
        async with serving() as port, RealCharger.connected(port, "STATION-A", "1.6") as cp:
            # Preparing before the start says nothing about it, whatever the charger's clock.
            await cp.ok("StatusNotification", {"connectorId": 1, "status": "Preparing",
                                               "errorCode": "NoError"})
            await cp.ok(*start_payload("1.6", "", minutes_ago(-5), 100))
            first = Transaction.objects.filter(station_id="STATION-A").values_list(
                "state", flat=True)
            assert list(await sync_to_async(list)(first)) == ["active"]
            await cp.ok(*start_payload("1.6", "", minutes_ago(-6), 100))
            await cp.ok("StatusNotification", {"connectorId": 1, "status": "Preparing",
                                               "errorCode": "NoError",
                                               "timestamp": minutes_ago(-7)})

    asyncio.run(flow())
    states = list(Transaction.objects.filter(station_id="STATION-A").order_by("started_at")
                  .values_list("state", "csms_end_reason"))
    assert states == [("completed", "new_session"), ("completed", "connector_free")]


def test_an_accepted_session_is_not_ended_by_its_connector_reported_free(personas):
    """Some chargers report Available before they send the stop: an accepted session waits
    for its own end."""
    async def flow() -> None:
        async with serving() as port, RealCharger.connected(port, "STATION-A", "2.0.1") as cp:
            await cp.ok(*start_payload("2.0.1", "OK-1", minutes_ago(3), 100))
            await cp.ok("StatusNotification", {"evseId": 1, "connectorId": 1,
                                               "connectorStatus": "Available",
                                               "timestamp": minutes_ago(0)})

    asyncio.run(flow())
    assert Transaction.objects.get(station_id="STATION-A").state == "active"
