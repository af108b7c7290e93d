"""Dead and zombie detection: a charger silent too long or not answering pings is closed and
marked offline, and so are the stations of a process that died; the beat's sweep does the
same without any server, and presence revives a swept station that still talks."""

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from stations import tasks
from stations.services import presence
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
    assert closed["type"] == "websocket.close" and closed["code"] == 1000
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
    held, newer = uuid.uuid4(), uuid.uuid4()
    make_station("SWEPT", connected=False, last_seen=old, connection=held)
    make_station("JUST-LEFT", connected=False, last_seen=timezone.now(), connection=held)
    # Its newest connection is held elsewhere (or gone): this process's old socket says nothing.
    make_station("RECONNECTED", connected=False, last_seen=old, connection=newer)
    presence.stations_present({"SWEPT": held, "JUST-LEFT": held, "RECONNECTED": held},
                              stale_after=90)
    assert connected("SWEPT") and not connected("JUST-LEFT") and not connected("RECONNECTED")
