"""How a charger's socket ends, on each server the project runs as a real process: daphne
(`make run`) and uvicorn as the Procfile starts it. The in-process test client takes any close
code and any handshake answer; daphne sends no standard close code but 1000 (1001, 1002 and 1008
fail there: the socket stays open and the log fills with tracebacks), so each end is checked on
both servers: the code the charger sees, and a server log with no traceback."""

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from stations.models import Station
from stations.services.registration import station_registration_decide
from tests.support import ROOT
from tests.support.chargers import basic_auth, connected
from tests.support.personas import make_station
from tests.support.servers import daphne, procfile_webs, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]

# Liveness every half second, a charger silent for more than a second is closed.
QUICK_LIVENESS = {"OCPP_PRESENCE_INTERVAL": "0.5", "OCPP_SILENCE_LIMIT": "1"}


@contextmanager
def server(kind: str) -> Iterator[tuple[int, Callable[[], str]]]:
    """A server process of `kind` with quick liveness: its port and a reader of its log."""
    started = daphne(**QUICK_LIVENESS) if kind == "daphne" else procfile_webs(1, **QUICK_LIVENESS)
    with started as process_or_list:
        port, _ = process_or_list if kind == "daphne" else process_or_list[0]
        name = "daphne" if kind == "daphne" else "web"
        log = ROOT / f"test-artifacts/{name}-{port}.log"
        yield port, log.read_text


async def handshake_status(port: int, path: str, subprotocol: str = "ocpp1.6") -> int:
    """The HTTP status a refused handshake gets (101 if it is accepted)."""
    station_id = path.rsplit("/", 1)[-1]
    try:
        async with connect(f"ws://127.0.0.1:{port}{path}", subprotocols=[subprotocol],
                           additional_headers={"Authorization": basic_auth(station_id)},
                           open_timeout=5):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_a_silent_charger_is_closed_normally_and_offline(kind):
    """Closed, not left open: daphne refused the close code once, and the socket stayed."""
    make_station("SILENT")
    with server(kind) as (port, log):
        async def silent() -> tuple[int | None, float]:
            async with connect(f"ws://127.0.0.1:{port}/ocpp/SILENT", subprotocols=["ocpp1.6"],
                               additional_headers={"Authorization": basic_auth("SILENT")},
                               ping_interval=None) as charger:
                started = time.monotonic()
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(charger.recv(), 10)
                return charger.close_code, time.monotonic() - started

        code, took = asyncio.run(silent())
        wait_until(lambda: not connected("SILENT"), 5, "marked offline")
        text = log()
    assert code == 1000 and took < 8
    assert "Traceback" not in text and "invalid close code" not in text.lower()


@pytest.mark.skipif(not settings.REDIS_URL, reason="the decision reaches another process "
                    "through Redis only")
@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_a_rejected_station_is_closed_normally(kind, personas):
    make_station("TURNED-AWAY")

    def reject() -> None:
        station_registration_decide(Station.objects.get(pk="TURNED-AWAY"),
                                    Station.Registration.REJECTED, user=personas.operator)

    with server(kind) as (port, log):
        async def rejected() -> int | None:
            async with connect(f"ws://127.0.0.1:{port}/ocpp/TURNED-AWAY",
                               subprotocols=["ocpp1.6"],
                               additional_headers={"Authorization": basic_auth("TURNED-AWAY")},
                               ping_interval=None) as charger:
                await asyncio.to_thread(wait_until, lambda: connected("TURNED-AWAY"), 5)
                await asyncio.to_thread(reject)
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(charger.recv(), 10)
                return charger.close_code

        code = asyncio.run(rejected())
        text = log()
    assert code == 1000
    assert "Traceback" not in text


@pytest.mark.parametrize(("kind", "status"), [("daphne", 403), ("uvicorn", 400)])
def test_no_common_subprotocol_is_refused_before_the_upgrade(kind, status):
    """400 where the server can answer an ASGI denial response (uvicorn); daphne has only 403."""
    make_station("OLDPROTO")
    with server(kind) as (port, log):
        answers = [asyncio.run(handshake_status(port, "/ocpp/OLDPROTO", "ocpp1.5"))
                   for _ in range(3)]
        assert asyncio.run(handshake_status(port, "/ocpp/OLDPROTO")) == 101  # the server lives
        text = log()
    assert answers == [status] * 3
    assert "Traceback" not in text


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
def test_a_path_no_station_can_have_is_refused_not_an_error(kind):
    make_station("CP-1")
    paths = ["/ocpp/CP-1%0A", "/ocpp/%0A", "/ocpp/CP-1%0D%0A", "/ocpp/", "/ocpp", "/elsewhere"]
    with server(kind) as (port, log):
        answers = {path: asyncio.run(handshake_status(port, path)) for path in paths}
        assert asyncio.run(handshake_status(port, "/ocpp/CP-1")) == 101  # the server lives
        text = log()
    assert answers == dict.fromkeys(paths, 403)
    assert "Traceback" not in text
