"""Nothing lost under faults: a server process killed mid-session, Redis restarted, PostgreSQL
away for 30 s, and a charger's hours-long offline backlog.

Real processes, a real Redis and PostgreSQL, the project's simulator as the charger; all on
127.0.0.1, each bounded in time. Faults come from tests/support/servers.py: SIGKILL, a private
redis-server, and a TCP proxy (load balancer, or a cable to PostgreSQL the test cuts).
"""

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.models import IdToken
from csms.gateway.frames import utc_timestamp
from stations.models import MessageLog, MeterSample, Transaction, TransactionMessage
from tests.support import servers
from tests.support.chargers import ChargerSocket
from tests.support.personas import CHARGER_PASSWORD, make_station
from tests.support.servers import Proxy, daphne, daphnes, kill, post, redis_server
from tools.simulator import CallError, ChargerConfig, VirtualCharger

pytestmark = pytest.mark.django_db(transaction=True)

CARD = "FAULT-CARD"
VERSIONS = ["1.6", "2.0.1"]
POSTGRESQL = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
needs_postgresql = pytest.mark.skipif(
    not POSTGRESQL, reason="needs PostgreSQL (row locks, a connection to cut): CI's PG pass")
needs_redis = pytest.mark.skipif(
    not settings.REDIS_URL, reason="processes share a channel layer only through Redis")


def charger(station_id: str, version: str, url: str, **config) -> VirtualCharger:
    return VirtualCharger(ChargerConfig(
        station_id=station_id, version=version, url=url, password=CHARGER_PASSWORD,
        id_tokens=[CARD], meter_interval=3600, session_length=3600, reconnect_min=0.2,
        reconnect_max=1.0, call_timeout=10, **config))


async def until(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {seconds} s")
        await asyncio.sleep(0.05)


async def db(function: Callable, *args, **kwargs):
    """ORM work from a scenario, in a thread whose connection is closed afterwards."""
    def run():
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    return await asyncio.to_thread(run)


async def until_db(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not await db(condition):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not stored within {seconds} s")
        await asyncio.sleep(0.1)


def conninfo() -> str:
    db_settings = connection.settings_dict
    return (f"host={db_settings['HOST'] or '127.0.0.1'} port={db_settings['PORT'] or 5432} "
            f"user={db_settings['USER'] or 'postgres'} dbname={db_settings['NAME']}")


def reachable(port: int) -> bool:
    """The process's /health finds the channel layer (Redis) again."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return json.loads(response.read())["checks"]["channel_layer"]["ok"]
    except OSError:  # 503 (HTTPError) while it is still away
        return False


def api_token() -> str:
    return Token.objects.create(user=User.objects.create_superuser("faults", password="x")).key


def assert_one_complete_transaction(station_id: str, energy_wh: int) -> Transaction:
    (tx,) = Transaction.objects.filter(station_id=station_id)
    assert tx.state == Transaction.State.COMPLETED
    assert tx.energy_wh == energy_wh, (tx.energy_wh, energy_wh)
    kinds = list(tx.messages.values_list("kind", flat=True))
    assert kinds.count("start") == 1 and kinds.count("end") == 1, kinds
    return tx


# --- a server process killed ------------------------------------------------------------------

@needs_postgresql
@needs_redis
@pytest.mark.multiprocess
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("moment", ["before_commit", "after_commit"])
def test_a_server_killed_mid_stop_loses_nothing_and_counts_nothing_twice(version, moment):
    """The stop reaches process A, which is SIGKILLed while storing it (before its commit) or
    after its commit but before its answer got out. The charger reconnects through the load
    balancer to B and sends the stop again (2.0.1: a new message id): one transaction, the
    charger's energy, one end."""
    station_id = f"KILL-{moment[0]}-{version}"
    make_station(station_id)
    IdToken.objects.create(value=CARD)
    stop_action = "StopTransaction" if version == "1.6" else "TransactionEvent"

    with daphnes(2) as [(port_a, process_a), (port_b, _)], Proxy(port_a, port_b) as lb:
        async def scenario() -> int:
            cp = charger(station_id, version, f"ws://127.0.0.1:{lb.port}/ocpp/")
            stop = asyncio.Event()
            running = asyncio.create_task(cp.run(stop))
            await until(lambda: cp.online)
            session = await cp.start_session(1, CARD)
            await cp.send_meter_values(1)
            tx = await db(Transaction.objects.get, station_id=station_id)
            if moment == "before_commit":
                # Hold the transaction's row: A's handler blocks inside its database
                # transaction, and dies there.
                with psycopg.connect(conninfo()) as lock, psycopg.connect(
                        conninfo(), autocommit=True) as watch:
                    lock.execute("SELECT 1 FROM stations_transaction WHERE id = %s FOR UPDATE",
                                 [tx.pk])
                    stopping = asyncio.create_task(cp.stop_session(1))
                    await until(lambda: watch.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock'").fetchone()[0] > 0)
                    kill(process_a)
                    lock.commit()
            else:
                lb.hold_replies()  # A's answers are lost on the way
                stopping = asyncio.create_task(cp.stop_session(1))
                await until_db(lambda: Transaction.objects.get(pk=tx.pk).state == "completed")
                kill(process_a)
            await asyncio.wait_for(stopping, 30)
            await until(lambda: cp.online and not cp.queued, 30)  # sent again, to B, answered
            expected = int(cp.energy_wh[1]) - session.meter_start
            stop.set()
            await asyncio.wait_for(running, 15)
            return expected

        expected = asyncio.run(scenario())

    tx = assert_one_complete_transaction(station_id, expected)
    assert not tx.needs_review, tx.review_note
    stops = MessageLog.objects.filter(station_id=station_id, direction="in", message_type=2,
                                      action=stop_action)
    if version == "2.0.1":
        stops = stops.filter(payload__eventType="Ended")
    # Before the commit A's log entry died with its transaction; after it, both attempts are in.
    assert stops.count() == (1 if moment == "before_commit" else 2)


# --- Redis restarted --------------------------------------------------------------------------

@needs_redis
@pytest.mark.multiprocess
@pytest.mark.parametrize("version", VERSIONS)
def test_redis_restarted_sessions_go_on_and_a_command_in_flight_times_out(version):
    station_id = f"REDIS-{version}"
    make_station(station_id)
    IdToken.objects.create(value=CARD)
    token = api_token()

    with redis_server() as (redis_port, redis_process):
        env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "OCPP_PRESENCE_INTERVAL": "0.5",
               "OCPP_CALL_TIMEOUT": "5"}
        with daphnes(2, **env) as [(port_a, _), (port_b, _)]:
            async def scenario() -> tuple[list[str], int]:
                cp = charger(station_id, version, f"ws://127.0.0.1:{port_b}/ocpp/")
                stop = asyncio.Event()
                running = asyncio.create_task(cp.run(stop))
                await until(lambda: cp.online)
                session = await cp.start_session(1, CARD)
                tx = await db(Transaction.objects.get, station_id=station_id)
                path = f"/api/v1/transactions/{tx.pk}/remote-stop/"

                kill(redis_process)
                outcomes = [(await asyncio.to_thread(post, port_a, path, token, {}))["status"]]
                await cp.send_meter_values(1)  # the socket and the session go on meanwhile
                with redis_server(redis_port):
                    # Both processes find Redis again, then re-join their groups (0.5 s ticks).
                    await until(lambda: all(reachable(port) for port in (port_a, port_b)), 20)
                    await asyncio.sleep(2)
                    outcomes.append((await asyncio.to_thread(post, port_a, path, token, {}))[
                        "status"])
                    await until(lambda: 1 not in cp.sessions and not cp.queued, 20)
                    disconnects = cp.metrics.disconnects
                    expected = int(cp.energy_wh[1]) - session.meter_start
                    stop.set()
                    await asyncio.wait_for(running, 15)
                assert disconnects == 0  # one socket throughout
                return outcomes, expected

            outcomes, expected = asyncio.run(scenario())

    assert outcomes == ["timeout", "accepted"]
    tx = assert_one_complete_transaction(station_id, expected)
    assert tx.stop_reason == "Remote"


# --- PostgreSQL away for 30 s -----------------------------------------------------------------

@needs_postgresql
@pytest.mark.multiprocess
@pytest.mark.timeout(150)
def test_postgresql_away_for_30_seconds_errors_are_retried_and_everything_is_stored():
    """Both versions at once. While the database is unreachable every message is answered with
    InternalError, never a CALLRESULT; the chargers retry their transaction messages and all of
    them are stored once it is back."""
    for version in VERSIONS:
        make_station(f"PG-{version}")
        IdToken.objects.create(value=f"{CARD}-{version}")  # one card charges at one place
    pg_port = int(connection.settings_dict["PORT"] or 5432)

    with Proxy(pg_port) as cable, daphne(DATABASE_URL=servers.test_database_url(cable.port),
                                         OCPP_PRESENCE_INTERVAL="1") as (port, _):
        async def scenario() -> dict:
            outage: list[float] = []
            answered: list[tuple[float, str]] = []
            chargers = {}
            for version in VERSIONS:
                cp = charger(f"PG-{version}", version, f"ws://127.0.0.1:{port}/ocpp/",
                             tx_attempts=20, tx_retry_interval=1.0)
                record_answers(cp, answered)
                chargers[version] = cp
            stop = asyncio.Event()
            running = [asyncio.create_task(cp.run(stop)) for cp in chargers.values()]
            await until(lambda: all(cp.online for cp in chargers.values()))
            sessions = {v: await cp.start_session(1, f"{CARD}-{v}") for v, cp in chargers.items()}

            outage.append(time.monotonic())
            cable.cut()
            heartbeat_errors = []
            for cp in chargers.values():
                try:
                    await cp.heartbeat()
                except CallError as error:
                    heartbeat_errors.append(error.code)
            # Meter values and the stop, sent while the database is away: retried until stored.
            work = [asyncio.create_task(flow(cp)) for cp in chargers.values()]
            await asyncio.sleep(30 - (time.monotonic() - outage[0]))
            cable.restore()
            outage.append(time.monotonic())
            await asyncio.wait_for(asyncio.gather(*work), 60)
            await until(lambda: not any(cp.queued for cp in chargers.values()), 30)
            expected = {v: int(cp.energy_wh[1]) - sessions[v].meter_start
                        for v, cp in chargers.items()}
            stop.set()
            await asyncio.wait_for(asyncio.gather(*running), 15)
            during = [action for at, action in answered if outage[0] < at < outage[1]]
            return {"expected": expected, "heartbeat_errors": heartbeat_errors,
                    "answered_during_outage": during,
                    "errors": sum(cp.metrics.call_errors for cp in chargers.values())}

        outcome = asyncio.run(scenario())

    assert outcome["heartbeat_errors"] == ["InternalError", "InternalError"]
    assert outcome["answered_during_outage"] == []  # no CALLRESULT for anything unstored
    assert outcome["errors"] > 4  # the transaction messages were refused, and retried
    for version in VERSIONS:
        tx = assert_one_complete_transaction(f"PG-{version}", outcome["expected"][version])
        assert not tx.needs_review, tx.review_note
        # Start, two meter readings and the end: every energy reading the charger took is in.
        energy = tx.samples.filter(measurand="Energy.Active.Import.Register")
        assert energy.values("timestamp").distinct().count() == 4


async def flow(cp: VirtualCharger) -> None:
    await cp.send_meter_values(1)
    await asyncio.sleep(0.5)
    await cp.send_meter_values(1)
    await cp.stop_session(1)


def record_answers(cp: VirtualCharger, answered: list[tuple[float, str]]) -> None:
    """Note when each CALLRESULT arrived (a CALLERROR raises and is not noted)."""
    call = cp.call

    async def recording(action: str, payload: dict) -> dict:
        result = await call(action, payload)
        answered.append((time.monotonic(), action))
        return result

    cp.call = recording


# --- offline replay ---------------------------------------------------------------------------

HOURS = 3


def test_an_offline_backlog_of_hours_2_0_1_is_one_transaction_with_the_gap_flagged():
    """Three hours offline: Started, 180 Updated a minute apart (seqNo 57 lost), two of them
    sent twice with new message ids, Ended; all offline=true with their old timestamps."""
    make_station("REPLAY-201")
    IdToken.objects.create(value=CARD)
    began = timezone.now().replace(microsecond=0) - timedelta(hours=HOURS)

    def event(seq: int, kind: str, wh: int, context: str) -> dict:
        at = utc_timestamp(began + timedelta(minutes=seq))
        payload = {
            "eventType": kind, "timestamp": at, "seqNo": seq, "offline": True,
            "triggerReason": {"Started": "Authorized", "Updated": "MeterValuePeriodic",
                              "Ended": "StopAuthorized"}[kind],
            "transactionInfo": {"transactionId": "OFFLINE-1", "chargingState": "Charging"},
            "meterValue": [{"timestamp": at, "sampledValue": [
                {"value": wh, "context": context, "measurand": "Energy.Active.Import.Register",
                 "unitOfMeasure": {"unit": "Wh"}}]}],
        }
        if kind == "Started":
            payload["idToken"] = {"idToken": CARD, "type": "ISO14443"}
            payload["evse"] = {"id": 1, "connectorId": 1}
        if kind == "Ended":
            payload["transactionInfo"]["stoppedReason"] = "Local"
        return payload

    minutes = HOURS * 60
    backlog = [event(0, "Started", 10_000, "Transaction.Begin")]
    for seq in range(1, minutes):
        if seq != 57:  # lost in the charger
            backlog.append(event(seq, "Updated", 10_000 + 120 * seq, "Sample.Periodic"))
        if seq in (10, 100):  # its answer was lost: sent again, new message id
            backlog.append(event(seq, "Updated", 10_000 + 120 * seq, "Sample.Periodic"))
    backlog.append(event(minutes, "Ended", 10_000 + 120 * minutes, "Transaction.End"))

    async def replay() -> list[list]:
        cp = ChargerSocket("REPLAY-201", "2.0.1")
        assert await cp.connect()
        replies = [await cp.call("TransactionEvent", payload) for payload in backlog]
        await cp.close()
        return replies

    replies = asyncio.run(replay())

    assert all(reply[0] == 3 for reply in replies)
    (tx,) = Transaction.objects.filter(station_id="REPLAY-201")
    assert (tx.state, tx.offline, tx.energy_wh) == ("completed", True, Decimal(120 * minutes))
    assert (tx.started_at, tx.stopped_at) == (began, began + timedelta(minutes=minutes))
    assert tx.needs_review and "57" in tx.review_note
    assert TransactionMessage.objects.filter(transaction=tx).count() == minutes  # 181 - 1 lost
    assert MeterSample.objects.filter(transaction=tx).count() == minutes


def test_an_offline_backlog_of_hours_1_6_is_one_transaction_counted_once():
    """1.6 has no offline flag: old timestamps, the start sent twice (its answer lost), meter
    values of three hours, the stop sent twice."""
    make_station("REPLAY-16")
    IdToken.objects.create(value=CARD)
    began = timezone.now().replace(microsecond=0) - timedelta(hours=HOURS)
    minutes = HOURS * 60
    start = {"connectorId": 1, "idTag": CARD, "meterStart": 5_000,
             "timestamp": utc_timestamp(began)}

    async def replay() -> list[list]:
        cp = ChargerSocket("REPLAY-16", "1.6")
        assert await cp.connect()
        first = await cp.call("StartTransaction", start)
        again = await cp.call("StartTransaction", start)
        tx_id = first[2]["transactionId"]
        replies = [first, again]
        for minute in range(1, minutes):
            at = utc_timestamp(began + timedelta(minutes=minute))
            replies.append(await cp.call("MeterValues", {
                "connectorId": 1, "transactionId": tx_id, "meterValue": [{"timestamp": at,
                "sampledValue": [{"value": str(5_000 + 100 * minute), "unit": "Wh"}]}]}))
        stop = {"transactionId": tx_id, "meterStop": 5_000 + 100 * minutes, "reason": "Local",
                "timestamp": utc_timestamp(began + timedelta(minutes=minutes))}
        replies += [await cp.call("StopTransaction", stop) for _ in range(2)]
        await cp.close()
        return replies

    replies = asyncio.run(replay())

    assert all(reply[0] == 3 for reply in replies)
    assert replies[0][2]["transactionId"] == replies[1][2]["transactionId"]
    (tx,) = Transaction.objects.filter(station_id="REPLAY-16")
    assert (tx.state, tx.energy_wh) == ("completed", Decimal(100 * minutes))
    assert (tx.started_at, tx.stopped_at) == (began, began + timedelta(minutes=minutes))
    assert list(tx.messages.values_list("kind", flat=True)) == ["start", "end"]
    assert MeterSample.objects.filter(transaction=tx).count() == minutes - 1
    assert not tx.needs_review

