"""Two server processes on Redis: a command asked of one reaches a charger held by the other."""

import asyncio
from contextlib import AsyncExitStack

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from redis import asyncio as aioredis
from rest_framework.authtoken.models import Token

from accounts.models import IdToken
from stations import events
from stations.models import Call
from tests.support import ROOT
from tests.support.chargers import RealCharger, connected
from tests.support.personas import CHARGER_PASSWORD, make_station
from tests.support.servers import daphne, daphnes, post_with_status, wait_until
from tools.simulator import ChargerConfig, VirtualCharger

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.multiprocess,
    pytest.mark.skipif(not settings.REDIS_URL,
                       reason="processes share a channel layer only through Redis"),
]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_remote_start_via_one_process_reaches_charger_on_another(version):
    station_id = f"MP-{version}"
    make_station(station_id)
    IdToken.objects.create(value="MP-CARD")  # the operator's card: it charges everywhere
    admin = User.objects.create_superuser("mp-admin", password="x")
    token = Token.objects.create(user=admin).key

    with daphne() as (port_a, _), daphne() as (port_b, _):
        async def scenario():
            charger = VirtualCharger(ChargerConfig(
                station_id=station_id, version=version, url=f"ws://127.0.0.1:{port_b}/ocpp/",
                password=CHARGER_PASSWORD, id_tokens=["MP-CARD"], meter_interval=60,
                session_every=None, session_length=600))
            stop = asyncio.Event()
            running = asyncio.ensure_future(charger.run(stop))
            for _ in range(100):  # booted and idle, bounded wait
                if charger.online:
                    break
                await asyncio.sleep(0.1)
            status, body = await asyncio.to_thread(
                post_with_status, port_a, f"/api/v1/stations/{station_id}/remote-start/", token,
                {"evse": 1, "id_token": "MP-CARD"})
            stop.set()
            await asyncio.wait_for(running, 10)
            return status, body, charger.received_calls

        status, body, received = asyncio.run(scenario())

    assert status == 201 and body["status"] == "accepted", body
    actions = [action for action, _ in received]
    assert actions == [{"1.6": "RemoteStartTransaction",
                        "2.0.1": "RequestStartTransaction"}[version]]
    assert Call.objects.get(pk=body["id"]).status == Call.Status.ACCEPTED


def test_a_reconnect_to_another_process_keeps_the_station_online_when_the_old_socket_closes():
    """The charger reconnects to process B while its old socket on process A is still open and
    never hears that it was displaced (Redis forgot the station's group, as a restarted Redis
    does); then the old socket closes. The station stays online, and a command reaches it."""
    station_id = "MP-RECONNECT"
    make_station(station_id)
    admin = User.objects.create_superuser("mp-reconnect", password="x")
    token = Token.objects.create(user=admin).key
    group_key = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}:group:" \
                f"{events.charger_group(station_id)}"

    with daphnes(2) as [(port_a, _), (port_b, _)]:
        log_a = ROOT / f"test-artifacts/daphne-{port_a}.log"

        async def scenario():
            async with AsyncExitStack() as sockets:
                async with RealCharger.connected(port_a, station_id, "1.6") as old:
                    await asyncio.to_thread(wait_until, lambda: connected(station_id), 5)
                    redis = aioredis.from_url(settings.REDIS_URL)
                    assert await redis.delete(group_key) == 1
                    await redis.aclose()
                    new = await sockets.enter_async_context(
                        RealCharger.connected(port_b, station_id, "1.6"))
                    await old.ok("Heartbeat", {})  # A still holds it: nobody displaced it
                await asyncio.to_thread(
                    wait_until, lambda: f"disconnected {station_id}" in log_a.read_text(), 10,
                    "process A ran the old socket's disconnect")
                online = await asyncio.to_thread(connected, station_id)
                asked = asyncio.ensure_future(asyncio.to_thread(
                    post_with_status, port_a, f"/api/v1/stations/{station_id}/reset/", token,
                    {"hard": False}))
                if online:
                    reset = await new.receive(wait=10)
                    assert reset[2] == "Reset", reset
                    await new.answer(reset, {"status": "Accepted"})
                status, body = await asked
                return online, status, body

        online, status, body = asyncio.run(scenario())

    assert online
    assert status == 201 and body["status"] == "accepted", body
