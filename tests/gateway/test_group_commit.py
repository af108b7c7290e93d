"""Group commit (csms/gateway/writer.py): many chargers' messages stored in one database
transaction, set-based (stations/persistence.py), and one bad message never costs the others."""

import asyncio
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.test.utils import CaptureQueriesContext
from prometheus_client import REGISTRY
from psycopg import pq

from csms.gateway import writer
from csms.gateway.frames import FrameError
from stations import events
from stations.models import (
    Connector,
    MessageLog,
    MeterSample,
    Station,
    StatusChange,
    Transaction,
    TransactionMessage,
)
from tests.support.billing_cast import billing_cast
from tests.support.chargers import T0, ChargerSocket, job, meter_value
from tests.support.personas import make_station, make_transaction


def day_of_traffic(stations: list[Station], txs: list[Transaction], at: str) -> list:
    """Per station a heartbeat, a status report and meter readings of its session."""
    jobs = []
    for n, (station, tx) in enumerate(zip(stations, txs, strict=True)):
        jobs.append(job(station, "1.6", "Heartbeat", {}, 3 * n))
        jobs.append(job(station, "1.6", "StatusNotification", {
            "connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": at},
            3 * n + 1))
        jobs.append(job(station, "1.6", "MeterValues", {
            "connectorId": 1, "transactionId": int(tx.transaction_id),
            "meterValue": [meter_value(at, 2000 + n)]}, 3 * n + 2))
    return jobs


@contextmanager
def protocol_trace() -> Iterator[list[str]]:
    """The messages this process sends to PostgreSQL in the block (libpq's protocol trace),
    raw cursors and pipelines included, which Django's query capture does not see."""
    connection.ensure_connection()
    sent: list[str] = []
    with tempfile.TemporaryFile("w+") as trace:
        pgconn = connection.connection.pgconn
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield sent
        finally:
            pgconn.untrace()
            trace.seek(0)
            sent += [line.split("\t")[2] for line in trace.read().splitlines()
                     if line.startswith("F\t")]


@pytest.mark.django_db
@pytest.mark.parametrize("chargers", [5, 40])
def test_a_batch_costs_the_same_statements_for_5_or_40_chargers(
        chargers, django_capture_on_commit_callbacks):
    stations = [make_station(f"GC-{n}") for n in range(chargers)]
    txs = [make_transaction(station) for station in stations]
    jobs = day_of_traffic(stations, txs, T0)
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(
            execute=True):
        replies, published = writer.store(jobs)
    assert all(isinstance(reply, str) and reply.startswith("[3,") for reply in replies)
    # Statements per batch, not per message. On SQLite Django sees them all (an executemany
    # is one); on PostgreSQL only its own (the transaction, billing's look at the sessions'
    # costs), not stations/persistence.py's raw cursors: the round-trip test below counts those.
    bound = 4 if connection.vendor == "postgresql" else 14
    assert len(queries) <= bound, [q["sql"][:40] for q in queries]
    assert MessageLog.objects.count() == 2 * len(jobs)
    assert StatusChange.objects.filter(status="Occupied").count() == chargers
    assert set(Connector.objects.values_list("status", flat=True)) == {"Occupied"}
    assert sorted(Transaction.objects.values_list("meter_last_wh", flat=True)) == [
        Decimal(2000 + n) for n in range(chargers)]
    assert MeterSample.objects.filter(transaction__isnull=False).count() == 2 * chargers
    assert Station.objects.filter(last_seen__isnull=False).count() == chargers
    assert {event["event"] for event in published} == {"connector.status",
                                                       "transaction.update", events.FRAMES_LOGGED}
    # Every frame is logged; the station pages showing the log hear of it once per station.
    logged = [event["station_id"] for event in published
              if event["event"] == events.FRAMES_LOGGED]
    assert sorted(logged) == sorted(station.pk for station in stations)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="round trips are PostgreSQL's")
@pytest.mark.django_db(transaction=True)  # the writer's transaction is a real one (BEGIN)
@pytest.mark.parametrize("chargers", [5, 40])
def test_a_batch_on_postgresql_is_four_round_trips(chargers):
    """Reads together, writes together (pipeline mode), billing's look, COMMIT: each round
    trip costs the ORM thread a wait for the GIL beside a busy thread (stations/persistence.py)."""
    stations = [make_station(f"GC-RT-{n}") for n in range(chargers)]
    txs = [make_transaction(station) for station in stations]
    jobs = day_of_traffic(stations, txs, T0)
    with protocol_trace() as sent:
        replies, _ = writer.store(jobs)
    assert all(isinstance(reply, str) for reply in replies)
    statements = sent.count("Execute") + sent.count("Query")
    # A statement outside a pipeline ends in a Sync (or is a Query) and waits for its answer;
    # a pipeline sends its statements and one Sync (psycopg adds one after BEGIN): reads,
    # writes, billing's look and COMMIT are five, where one statement at a time were eleven.
    exchanges = sent.count("Sync") + sent.count("Query")
    # Rows go in chunks of powers of two (stations/persistence.py's _chunks): a table's statements
    # grow with the logarithm of its rows, not with them.
    assert statements <= 6 + 8 * (2 * len(jobs)).bit_length(), sent
    assert exchanges <= 5, [message for message in sent if message in ("Query", "Sync")]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements: psycopg's")
@pytest.mark.django_db(transaction=True)
def test_a_batch_of_a_shape_seen_before_is_not_parsed_again():
    """psycopg prepares a statement that ran five times on the connection (DB_PREPARED_STATEMENTS,
    csms/settings.py): the batches' statements are then bound and run, not parsed and planned
    again, 40 % of PostgreSQL's CPU per batch."""
    stations = [make_station(f"GC-PREP-{n}") for n in range(7)]
    txs = [make_transaction(station) for station in stations]
    parses = []
    for minute in range(7):
        jobs = day_of_traffic(stations, txs, f"2026-11-24T10:{minute:02d}:00Z")
        with protocol_trace() as sent:
            replies, _ = writer.store(jobs)
        assert all(isinstance(reply, str) and reply.startswith("[3,") for reply in replies)
        parses.append(sent.count("Parse"))
    # Seven stations: 21 log rows, 16 + 4 + 1 of them, and so on. Only billing's look, which
    # Django binds on the client, is parsed every time.
    assert parses[0] >= 10, parses
    assert parses[-1] <= 1, parses
    assert MeterSample.objects.filter(transaction__isnull=False).count() == 2 * 7 * 7


@pytest.mark.django_db
def test_one_bad_message_costs_only_itself():
    stations = [make_station(f"GC-{n}") for n in range(3)]
    txs = [make_transaction(station) for station in stations]
    jobs = day_of_traffic(stations, txs, T0)
    # A status the schema allows but the domain cannot read: its timestamp.
    jobs.insert(4, job(stations[1], "1.6", "StatusNotification", {
        "connectorId": 1, "errorCode": "NoError", "status": "Faulted",
        "timestamp": "not a time"}, 99))
    replies, _ = writer.store(jobs)
    assert isinstance(replies[4], FrameError)
    assert all(isinstance(reply, str) for n, reply in enumerate(replies) if n != 4), replies
    assert not StatusChange.objects.filter(status="Faulted").exists()
    assert MessageLog.objects.filter(direction="in").count() == len(jobs) - 1
    assert Transaction.objects.filter(meter_last_wh__isnull=False).count() == 3


@pytest.mark.django_db
def test_a_retried_update_is_stored_once_and_an_unknown_one_as_a_first_message():
    station = make_station("GC-201", ocpp_version="2.0.1")

    def update(seq: int, transaction_id: str, n: int) -> writer.Job:
        return job(station, "2.0.1", "TransactionEvent", {
            "eventType": "Updated", "timestamp": T0, "triggerReason": "MeterValuePeriodic",
            "seqNo": seq, "transactionInfo": {"transactionId": transaction_id},
            "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 3000 + seq}]}]}, n)

    tx = make_transaction(station)
    TransactionMessage.objects.filter(transaction=tx).update(sequence=0)
    writer.store([update(1, tx.transaction_id, 1), update(2, tx.transaction_id, 2)])
    writer.store([update(2, tx.transaction_id, 3)])  # the charger did not hear our answer
    assert sorted(tx.messages.values_list("sequence", flat=True)) == [0, 1, 2]
    tx.refresh_from_db()
    assert tx.meter_last_wh == Decimal(3002)
    # An update of a transaction we never heard of (its start lost offline): it opens the
    # transaction, not dropped; its numbers tell at its end whether anything is missing.
    writer.store([update(5, "unknown-tx", 4)])
    unknown = Transaction.objects.get(transaction_id="unknown-tx")
    assert unknown.state == "active" and unknown.meter_last_wh == Decimal(3005)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's row counters")
@pytest.mark.django_db
def test_a_batch_reads_the_transactions_it_names_not_their_stations_history():
    """Sessions pile up (four a day is 1,500 a year per station): a batch's look for the
    transactions its messages name (1.6 meter values, 2.0.1 updates and their seqNo) goes pair
    by pair. `station IN (…) AND id IN (…)` read every session of the stations named (40 keys
    at 100 sessions a station: 2.2 to 2.9 ms, pair by pair 0.3 to 0.45). A test database is
    small enough for PostgreSQL to read a table whole, so index scans are forced, as a large
    table gets them."""
    stations = [make_station(f"GC-PAIR-{n}", ocpp_version="2.0.1") for n in range(30)]
    txs = [make_transaction(station) for station in stations]
    Transaction.objects.bulk_create(
        Transaction(station=station, transaction_id=f"past-{n}", state="completed",
                    started_at=txs[0].started_at, id_token_value="")
        for station in stations for n in range(100))
    jobs = day_of_traffic(stations[:15], txs[:15], T0) + [
        job(station, "2.0.1", "TransactionEvent", {
            "eventType": "Updated", "timestamp": T0, "triggerReason": "MeterValuePeriodic",
            "seqNo": 1, "transactionInfo": {"transactionId": tx.transaction_id},
            "meterValue": [meter_value(T0, 4000)]}, 100 + n)
        for n, (station, tx) in enumerate(zip(stations[15:], txs[15:], strict=True))]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")

        def rows_read() -> int:
            cursor.execute("SELECT idx_tup_fetch FROM pg_stat_xact_user_tables"
                           " WHERE relname = 'stations_transaction'")
            return cursor.fetchone()[0]

        before = rows_read()
        replies, _ = writer.store(jobs)
        read = rows_read() - before
    assert all(isinstance(reply, str) and reply.startswith("[3,") for reply in replies)
    assert sorted(Transaction.objects.filter(meter_last_wh__isnull=False).values_list(
        "meter_last_wh", flat=True)) == [Decimal(2000 + n) for n in range(15)] + [
        Decimal(4000)] * 15
    # A few reads of each of the 30 sessions named (found, seqNo, updated, priced), not of the
    # 3,000 past ones.
    assert read <= 5 * len(txs), read


@pytest.mark.django_db
def test_a_late_status_in_a_batch_does_not_overwrite_a_newer_one():
    station = make_station("GC-LATE")
    writer.store([job(station, "1.6", "StatusNotification", {
        "connectorId": 1, "errorCode": "NoError", "status": "Available",
        "timestamp": "2026-11-24T10:05:00Z"}, 1)])
    writer.store([job(station, "1.6", "StatusNotification", {
        "connectorId": 1, "errorCode": "NoError", "status": "Faulted",
        "timestamp": "2026-11-24T10:00:00Z"}, 2)])
    assert Connector.objects.get(evse__station=station).status == "Available"
    assert StatusChange.objects.filter(station=station, status="Faulted").exists()


def batch_sizes() -> tuple[float, float]:
    """(messages, batches) the writer has stored in this process so far."""
    return (REGISTRY.get_sample_value("csms_ocpp_batch_messages_sum") or 0,
            REGISTRY.get_sample_value("csms_ocpp_batch_messages_count") or 0)


@pytest.mark.django_db(transaction=True)
def test_chargers_talking_at_once_share_transactions_and_all_are_stored():
    stations = [make_station(f"GC-WS-{n}") for n in range(30)]
    for station in stations:
        make_transaction(station)
    messages_before, batches_before = batch_sizes()

    async def fleet() -> None:
        sockets = [ChargerSocket(station.pk) for station in stations]
        assert all(await asyncio.gather(*(s.connect() for s in sockets)))

        async def talk(n: int, socket: ChargerSocket) -> None:
            tx = await Transaction.objects.aget(station_id=stations[n].pk)
            for minute in range(10):
                at = f"2026-11-24T10:{minute:02d}:00Z"
                await socket.ok("Heartbeat", {})
                await socket.ok("MeterValues", {
                    "connectorId": 1, "transactionId": int(tx.transaction_id),
                    "meterValue": [meter_value(at, 1000 + 100 * minute)]})

        await asyncio.gather(*(talk(n, s) for n, s in enumerate(sockets)))
        await asyncio.gather(*(s.close() for s in sockets))

    async_to_sync(fleet)()
    messages, batches = (now - before for now, before in zip(batch_sizes(), (
        messages_before, batches_before), strict=True))
    assert messages == 30 * 20
    assert batches < messages / 2, "messages arriving together were stored together"
    assert MessageLog.objects.filter(direction="in", action="MeterValues").count() == 300
    assert set(Transaction.objects.values_list("meter_last_wh", flat=True)) == {Decimal(1900)}
    assert MeterSample.objects.filter(measurand="Energy.Active.Import.Register").count() == 300


@pytest.mark.django_db(transaction=True)
def test_events_of_batches_stored_within_the_interval_travel_as_one_message(settings):
    settings.OCPP = {**settings.OCPP, "EVENTS_INTERVAL": 1.0}
    station = make_station("GC-EVENTS")

    async def three_batches() -> tuple[dict, dict]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(events.FEED, channel)
        for n, status in enumerate(["Available", "Preparing", "Charging"]):
            stored = job(station, "1.6", "StatusNotification", {
                "connectorId": 1, "errorCode": "NoError", "status": status,
                "timestamp": f"2026-11-24T10:0{n}:00Z"}, n)
            await writer.writer().store(station, "1.6", stored.handler, stored.call)
        first = await asyncio.wait_for(layer.receive(channel), 5)
        second = await asyncio.wait_for(layer.receive(channel), 5)
        await layer.group_discard(events.FEED, channel)
        return first, second

    first, second = async_to_sync(three_batches)()
    # The first batch's event at once; the next two batches', stored within the interval,
    # together in one message.
    def statuses(message: dict) -> list[str]:
        return [e["data"]["status"] for e in message["events"] if e["event"] == "connector.status"]

    assert statuses(first) == ["Available"]
    assert statuses(second) == ["Occupied", "Occupied"]


def session_messages(personas, version: str) -> tuple[writer.Job, Callable[[str], writer.Job]]:
    """A session's start, and its end given the start's reply, as a card-holder's charger sends
    them in either version."""
    station, card = personas.station_a, personas.token.value
    if version == "1.6":
        start = job(station, "1.6", "StartTransaction", {
            "connectorId": 1, "idTag": card, "meterStart": 1000, "timestamp": T0}, 1)
        return start, lambda reply: job(station, "1.6", "StopTransaction", {
            "transactionId": json.loads(reply)[2]["transactionId"], "idTag": card,
            "meterStop": 5000, "timestamp": "2026-11-24T11:00:00Z", "reason": "Local"}, 2)
    token = {"idToken": card, "type": "ISO14443"}
    start = job(station, "2.0.1", "TransactionEvent", {
        "eventType": "Started", "timestamp": T0, "triggerReason": "Authorized", "seqNo": 0,
        "transactionInfo": {"transactionId": "T-1"}, "idToken": token,
        "evse": {"id": 1, "connectorId": 1}, "meterValue": [meter_value(T0, 1000)]}, 1)
    return start, lambda reply: job(station, "2.0.1", "TransactionEvent", {
        "eventType": "Ended", "timestamp": "2026-11-24T11:00:00Z", "seqNo": 1,
        "triggerReason": "StopAuthorized", "idToken": token,
        "transactionInfo": {"transactionId": "T-1", "stoppedReason": "Local"},
        "meterValue": [meter_value("2026-11-24T11:00:00Z", 5000)]}, 2)


@contextmanager
def round_trips() -> Iterator[list[str]]:
    """What the block sends the database and waits for: on PostgreSQL each Query and each
    Sync of libpq's protocol trace (a pipeline's statements share one; raw cursors counted),
    elsewhere each statement Django runs."""
    if connection.vendor == "postgresql":
        with protocol_trace() as sent:
            waits: list[str] = []
            yield waits
        waits += [message for message in sent if message in ("Query", "Sync")]
    else:
        with CaptureQueriesContext(connection) as queries:
            waits = []
            yield waits
        waits += [query["sql"][:90] for query in queries]


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("tariff", [False, True], ids=["no tariff", "tariff"])
def test_a_session_start_and_end_cost_a_bounded_number_of_round_trips(personas, version,
                                                                        tariff):
    """Each round trip of a session's start or end is a wait of the ORM thread, after which
    it may wait for the event loop's GIL (csms/asgi.py): authorization is one query, the
    transaction comes with its station, site and card and with whether the message was seen
    already, the session's end looks at its connector in one query, the cost with its tariff,
    and a new session's cost is not looked for."""
    if tariff:
        billing_cast(personas)
    start, end_of = session_messages(personas, version)
    with round_trips() as at_start, CaptureQueriesContext(connection) as built_at_start:
        [reply], _ = writer.store([start])
    with round_trips() as at_end, CaptureQueriesContext(connection) as built_at_end:
        [ended], _ = writer.store([end_of(reply)])
    assert '"Accepted"' in reply and '"Accepted"' in ended
    tx = Transaction.objects.get()
    assert tx.state == Transaction.State.COMPLETED and tx.energy_wh == 4000
    assert tx.cost.state == ("final" if tariff else "no_tariff")
    # Four are savepoints: the test's own transaction around the writer's, and pricing's.
    # Before the reads were written out, a 2.0.1 end with a tariff was 20 round trips.
    start_bound, end_bound = {
        ("1.6", False): (13, 13), ("2.0.1", False): (13, 15),
        ("1.6", True): (15, 14), ("2.0.1", True): (15, 16),
    }[version, tariff]
    assert len(at_start) <= start_bound, "\n".join(at_start)
    assert len(at_end) <= end_bound, "\n".join(at_end)
    if connection.vendor == "postgresql":
        # What Django itself builds, which costs the ORM thread about a millisecond each;
        # stations/persistence.py's raw cursors bypass it. Before: 12-16 at a start, 12-18 at an
        # end.
        built = {("1.6", False): (7, 7), ("2.0.1", False): (6, 8),
                 ("1.6", True): (8, 7), ("2.0.1", True): (7, 8)}[version, tariff]
        for queries, bound in zip((built_at_start, built_at_end), built, strict=True):
            assert len(queries) <= bound, [query["sql"][:90] for query in queries]
