"""Transactions nobody will end (stations/services/transactions.py): one left open by a reboot
is closed after the grace and flagged, the charger's own end arriving late replaces ours, and a
station silent for a day has its session closed while one still heard keeps it."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import IdToken
from csms.gateway.frames import utc_timestamp
from stations.models import Station, Transaction, TransactionMessage
from stations.services import transactions
from tests.support.chargers import ChargerSocket
from tests.support.personas import make_station

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
