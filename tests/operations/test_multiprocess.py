"""Two server processes on Redis: a command asked of one reaches a charger held by the other."""

import asyncio

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from stations.models import Call
from tests.support.personas import CHARGER_PASSWORD, make_station
from tests.support.servers import daphne, post_with_status
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
