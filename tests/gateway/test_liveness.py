"""Dead and zombie detection, abandoned transactions, and what an operator watches: /health,
/metrics, structured logs, the message log's retention."""

import asyncio
import json
import logging
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import IdToken
from csms import logs, metrics
from csms.gateway.frames import utc_timestamp
from stations import tasks
from stations.models import MessageLog, Station, Transaction, TransactionMessage
from stations.services import presence, retention, transactions
from tests.support.chargers import ChargerSocket, connected, open_raw_socket
from tests.support.personas import make_station
from tests.support.servers import daphnes, kill, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


# --- silent chargers --------------------------------------------------------------------------

@pytest.fixture
def quick_liveness(settings):
    settings.OCPP = {**settings.OCPP, "PRESENCE_INTERVAL": 0.2, "SILENCE_LIMIT": 0.6}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_silent_charger_is_closed_and_marked_offline_within_two_intervals(quick_liveness,
                                                                            version):
    """Silence limit 0.6 s (two heartbeat intervals of 0.3 s), checked every 0.2 s."""
    make_station("QUIET")
    make_station("TALKER")

    async def scenario() -> tuple[dict, float, bool]:
        quiet, talker = ChargerSocket("QUIET", version), ChargerSocket("TALKER", version)
        assert await quiet.connect() and await talker.connect()
        started = time.monotonic()
        for _ in range(8):  # the talker beats every 0.15 s for 1.2 s; the quiet one says nothing
            await talker.ok("Heartbeat", {})
            await asyncio.sleep(0.15)
        closed = await quiet.communicator.receive_output(timeout=1)
        took = time.monotonic() - started
        talker_open = await talker.communicator.receive_nothing(timeout=0.1)
        await talker.close()
        return closed, took, talker_open

    closed, took, talker_open = asyncio.run(scenario())
    assert closed["type"] == "websocket.close" and closed["code"] == 1001
    # Two intervals of silence, one check, the close handshake; slack for a busy machine.
    assert took < 2
    assert talker_open
    assert not connected("QUIET")


@pytest.mark.multiprocess
def test_a_charger_that_stops_answering_pings_is_marked_offline_within_two_intervals():
    make_station("DEAD-PEER")
    with daphnes(1, "--ping-interval", "1", "--ping-timeout", "1") as [(port, _)]:
        sock = open_raw_socket(port, "DEAD-PEER")
        try:
            wait_until(lambda: connected("DEAD-PEER"), 5)
            took = wait_until(lambda: not connected("DEAD-PEER"), 6)
        finally:
            sock.close()
    # A ping after 1 s, no pong within 1 s: closed, with daphne's 1 s checks and a busy machine.
    assert took < 5


@pytest.mark.multiprocess
def test_stations_of_a_killed_process_are_marked_offline_by_the_others():
    """No disconnect handler runs in a SIGKILLed process; the live ones sweep its stations."""
    make_station("ON-A")
    make_station("ON-B")
    with daphnes(2, OCPP_PRESENCE_INTERVAL="0.5") as [(port_a, process_a), (port_b, _)]:
        socks = [open_raw_socket(port_a, "ON-A"), open_raw_socket(port_b, "ON-B")]
        try:
            wait_until(lambda: connected("ON-A") and connected("ON-B"), 5)
            kill(process_a)
            took = wait_until(lambda: not connected("ON-A"), 5)
            assert connected("ON-B")  # B keeps refreshing its own
        finally:
            for sock in socks:
                sock.close()
    assert took < 4  # three intervals without a refresh, seen at B's next tick (plus slack)


def test_the_beat_sweep_does_the_same_without_any_server(settings):
    make_station("ORPHAN", connected=True, last_seen=timezone.now() - timedelta(minutes=5))
    make_station("FRESH", connected=True, last_seen=timezone.now())
    assert tasks.sweep_liveness() == {"offline": 1, "closed": 0}
    assert not connected("ORPHAN") and connected("FRESH")


def test_presence_revives_a_swept_station_but_not_one_that_just_disconnected():
    old = timezone.now() - timedelta(minutes=5)
    make_station("SWEPT", connected=False, last_seen=old)
    make_station("JUST-LEFT", connected=False, last_seen=timezone.now())
    presence.stations_present(["SWEPT", "JUST-LEFT"], stale_after=90)
    assert connected("SWEPT") and not connected("JUST-LEFT")


# --- transactions nobody will end -------------------------------------------------------------

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


# --- health, metrics, logs --------------------------------------------------------------------

def test_health_reports_each_dependency(client):
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok"
    assert body["checks"]["database"]["ok"] and body["checks"]["channel_layer"]["ok"]
    assert client.get("/health/live").status_code == 200


def test_health_is_503_naming_what_is_down(client, settings):
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {"default": {
        "BACKEND": "csms.layers.ResilientRedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]}}}  # nothing listens on port 9
    channel_layers.backends.clear()
    try:
        response = client.get("/health")
    finally:
        channel_layers.backends.clear()
    body = response.json()
    assert response.status_code == 503 and body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] and not body["checks"]["channel_layer"]["ok"]
    assert body["checks"]["channel_layer"]["error"]  # its name only: no hosts, no secrets


def test_metrics_count_messages_errors_and_connections(client):
    make_station("METERED")
    held_before = metrics.CHARGERS.labels("2.0.1")._value.get()

    async def traffic() -> None:
        cp = ChargerSocket("METERED", "2.0.1")
        assert await cp.connect()
        await cp.ok("Heartbeat", {})
        await cp.call("Heartbeat", {"unexpected": 1})
        await cp.close()

    asyncio.run(traffic())
    text = client.get("/metrics").content.decode()
    assert 'csms_ocpp_messages_total{action="Heartbeat",outcome="result",version="2.0.1"}' in text
    assert 'csms_ocpp_errors_total{code="FormatViolation",version="2.0.1"}' in text
    assert 'csms_ocpp_message_seconds_bucket{action="Heartbeat",le="0.05"}' in text
    assert 'csms_chargers_connected{version="2.0.1"}' in text
    assert metrics.CHARGERS.labels("2.0.1")._value.get() == held_before  # closed: not held
    assert 'csms_charger_connections_total{outcome="admitted"}' in text


def test_metrics_are_refused_to_addresses_not_allowed(client):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403


def test_json_log_lines_carry_the_station_id():
    formatter = logs.JsonFormatter()
    record = logging.LogRecord("csms.gateway", logging.INFO, "", 0, "stored %s", ("x",), None)
    token = logs.station.set("CP-7")
    try:
        logs.StationFilter().filter(record)
    finally:
        logs.station.reset(token)
    line = json.loads(formatter.format(record))
    assert (line["station"], line["message"], line["level"]) == ("CP-7", "stored x", "INFO")


# --- message-log retention --------------------------------------------------------------------

def test_retention_deletes_old_frames_in_batches_and_keeps_the_rest():
    station = make_station("LOGGED")
    old, new = timezone.now() - timedelta(days=100), timezone.now()
    MessageLog.objects.bulk_create(
        [MessageLog(station=station, direction="in", message_type=2, created_at=old)
         for _ in range(25)]
        + [MessageLog(station=station, direction="in", message_type=2, created_at=new)
           for _ in range(5)])
    with CaptureQueriesContext(connection) as queries:
        assert retention.message_log_prune(90, batch=10) == 25
    assert MessageLog.objects.count() == 5
    # Per batch of 10: one read of the oldest ids, one DELETE; the third batch finds new frames.
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert (statements.count("SELECT"), statements.count("DELETE")) == (3, 3)
