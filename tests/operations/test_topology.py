"""The production topology of the Procfile: two uvicorn web processes on PostgreSQL and Redis.
Any process may hold any charger: a command asked of one reaches a charger held by the other,
and the other's domain events reach listeners everywhere (a dashboard on any process)."""

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from accounts.models import IdToken
from stations import events
from stations.models import Call
from tests.support.personas import CHARGER_PASSWORD, make_station
from tests.support.servers import post, procfile_webs
from tools.simulator import ChargerConfig, VirtualCharger

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.multiprocess,
    pytest.mark.skipif(not settings.REDIS_URL or "sqlite" in settings.DATABASES["default"][
        "ENGINE"], reason="the production topology: PostgreSQL and Redis (CI's PG pass)"),
]


def get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_procfile_web_processes_share_commands_and_events():
    make_station("TOPO-1")
    IdToken.objects.create(value="TOPO-CARD")
    token = Token.objects.create(user=User.objects.create_superuser("topo", password="x")).key

    with procfile_webs(2) as [(port_a, _), (port_b, _)]:
        health = [get(port, "/health") for port in (port_a, port_b)]

        async def scenario() -> tuple[dict, list[str], list]:
            layer = get_channel_layer()
            listener = await layer.new_channel()  # a dashboard socket, in a third process
            await layer.group_add(events.FEED, listener)
            charger = VirtualCharger(ChargerConfig(
                station_id="TOPO-1", version="2.0.1", url=f"ws://127.0.0.1:{port_b}/ocpp/",
                password=CHARGER_PASSWORD, id_tokens=["TOPO-CARD"], meter_interval=3600))
            stop = asyncio.Event()
            running = asyncio.create_task(charger.run(stop))
            seen: list[str] = []
            async with asyncio.timeout(20):
                while "connector.status" not in seen:  # B's events, heard here
                    seen += [e["event"] for e in (await layer.receive(listener))["events"]]
            body = await asyncio.to_thread(post, port_a, "/api/v1/stations/TOPO-1/remote-start/",
                                           token, {"evse": 1, "id_token": "TOPO-CARD"})
            async with asyncio.timeout(20):
                while "transaction.start" not in seen:
                    seen += [e["event"] for e in (await layer.receive(listener))["events"]]
            stop.set()
            await asyncio.wait_for(running, 15)
            await layer.group_discard(events.FEED, listener)
            return body, seen, charger.received_calls

        body, seen, received = asyncio.run(scenario())

    assert [status for status, _ in health] == [200, 200]
    assert set(health[0][1]["checks"]) == {"database", "channel_layer", "broker"}
    assert body["status"] == "accepted" and [a for a, _ in received] == [
        "RequestStartTransaction"]
    assert Call.objects.get(pk=body["id"]).status == Call.Status.ACCEPTED
    assert {"station.connected", "connector.status", "transaction.start"} <= set(seen)
