"""The Procfile's web process notices a dead peer by its WebSocket pings (README, Liveness), with
whatever `--ws` implementation the Procfile names: a charger that stops answering is closed and
marked offline within the ping interval plus the ping timeout; one that answers stays."""

import asyncio
import time

import pytest
from websockets.asyncio.client import connect

from tests.support.chargers import basic_auth, connected, open_raw_socket
from tests.support.personas import make_station
from tests.support.servers import _servers, wait_until
from tools.bench import procfile_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


def quick_pings(port: int) -> list[str]:
    """The Procfile's web command, its pings every second with a one-second timeout."""
    words = procfile_web(port)
    for flag in ("--ws-ping-interval", "--ws-ping-timeout"):
        words[words.index(flag) + 1] = "1"
    return words


def test_the_procfile_server_closes_a_charger_that_stops_answering_pings():
    make_station("PING-DEAD")
    make_station("PING-ALIVE")

    with _servers(1, "web-pings", quick_pings, {}) as [(port, _)]:
        async def scenario() -> tuple[float, bool]:
            # A charger whose client answers pings (websockets does), silent otherwise.
            async with connect(f"ws://127.0.0.1:{port}/ocpp/PING-ALIVE", subprotocols=["ocpp1.6"],
                               additional_headers={"Authorization": basic_auth("PING-ALIVE")},
                               ping_interval=None) as alive:
                started = time.monotonic()
                took = await asyncio.to_thread(wait_until, lambda: not connected("PING-DEAD"), 8)
                await asyncio.sleep(max(0.0, 4 - (time.monotonic() - started)))
                return took, alive.state.name == "OPEN" and await asyncio.to_thread(
                    connected, "PING-ALIVE")

        dead = open_raw_socket(port, "PING-DEAD")  # handshake done, then never reads again
        try:
            wait_until(lambda: connected("PING-DEAD"), 5)
            took, answering_still_open = asyncio.run(scenario())
        finally:
            dead.close()
    # A ping after 1 s, no pong within 1 s, then the close; slack for a busy machine.
    assert took < 5
    assert answering_still_open  # four pings answered: not closed
