"""A live daphne on a free port, and chargers we did not write: the `ocpp` library's own
charge point classes over a real TCP WebSocket."""

import asyncio
import urllib.request
from decimal import Decimal

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201

from accounts.models import IdToken
from stations.models import Transaction
from tests.support.chargers import basic_auth
from tests.support.personas import make_station
from tests.support.servers import daphne

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


def auth_header(station_id: str) -> dict:
    return {"Authorization": basic_auth(station_id)}


class Charger16(ChargePoint16):
    @on("RemoteStartTransaction")
    async def remote_start(self, connector_id, id_tag, **kwargs):
        return {"status": "Accepted"}


class Charger201(ChargePoint201):
    pass


async def run_16(port: int) -> int:
    url = f"ws://127.0.0.1:{port}/ocpp/LIB16"
    async with websockets.connect(url, subprotocols=["ocpp1.6"],
                                  additional_headers=auth_header("LIB16")) as ws:
        cp = Charger16("LIB16", ws)
        listener = asyncio.ensure_future(cp.start())
        boot = await cp.call(call16.BootNotification(charge_point_vendor="LibVendor",
                                                     charge_point_model="LibModel"))
        assert boot.status == "Accepted"
        assert (await cp.call(call16.Authorize(id_tag="LIVE-1"))).id_tag_info["status"] == (
            "Accepted")
        start = await cp.call(call16.StartTransaction(
            connector_id=1, id_tag="LIVE-1", meter_start=5000,
            timestamp="2026-11-24T08:00:00Z"))
        await cp.call(call16.MeterValues(connector_id=1, transaction_id=start.transaction_id,
                                         meter_value=[{"timestamp": "2026-11-24T08:30:00Z",
                                                       "sampledValue": [{"value": "6000"}]}]))
        await cp.call(call16.StopTransaction(meter_stop=7500, timestamp="2026-11-24T09:00:00Z",
                                             transaction_id=start.transaction_id))
        listener.cancel()
        return start.transaction_id


async def run_201(port: int) -> None:
    url = f"ws://127.0.0.1:{port}/ocpp/LIB201"
    async with websockets.connect(url, subprotocols=["ocpp2.0.1"],
                                  additional_headers=auth_header("LIB201")) as ws:
        cp = Charger201("LIB201", ws)
        listener = asyncio.ensure_future(cp.start())
        boot = await cp.call(call201.BootNotification(
            charging_station={"model": "LibModel", "vendor_name": "LibVendor"},
            reason="PowerUp"))
        assert boot.status == "Accepted"
        auth = await cp.call(call201.Authorize(id_token={"id_token": "LIVE-1",
                                                         "type": "ISO14443"}))
        assert auth.id_token_info["status"] == "Accepted"

        def energy(wh: float, context: str, at: str) -> list:
            return [{"timestamp": at, "sampled_value": [{"value": wh, "context": context}]}]

        for seq, kind, trigger, wh, context, at in (
            (0, "Started", "Authorized", 1000.0, "Transaction.Begin", "2026-11-24T08:00:00Z"),
            (1, "Updated", "MeterValuePeriodic", 1500.0, "Sample.Periodic",
             "2026-11-24T08:30:00Z"),
            (2, "Ended", "StopAuthorized", 2234.5, "Transaction.End", "2026-11-24T09:00:00Z"),
        ):
            await cp.call(call201.TransactionEvent(
                event_type=kind, timestamp=at, trigger_reason=trigger, seq_no=seq,
                transaction_info={"transaction_id": "lib-tx-1"},
                id_token={"id_token": "LIVE-1", "type": "ISO14443"} if seq == 0 else None,
                evse={"id": 1, "connector_id": 1} if seq == 0 else None,
                meter_value=energy(wh, context, at)))
        listener.cancel()


def test_ocpp_library_chargers_run_sessions_against_live_daphne():
    make_station("LIB16")
    make_station("LIB201")
    IdToken.objects.create(value="LIVE-1")
    with daphne() as (port, _):
        tx_id = asyncio.run(run_16(port))
        asyncio.run(run_201(port))
        # The same port serves the dashboard's own static files (no proxy in `make run`).
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/css/dashboard.css") as css:
            assert css.status == 200 and b"{" in css.read()
    tx16 = Transaction.objects.get(station_id="LIB16", transaction_id=str(tx_id))
    tx201 = Transaction.objects.get(station_id="LIB201", transaction_id="lib-tx-1")
    assert tx16.energy_wh == Decimal(2500) and tx16.state == "completed"
    assert tx201.energy_wh == Decimal("1234.5") and tx201.state == "completed"
