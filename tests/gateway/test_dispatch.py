"""How a charger's consumer takes its messages: the socket's frames and the channel layer's
messages (commands, decisions) one at a time, the station named in every log line, and a
failure of either ending the consumer as it would in Channels (csms/gateway/consumer.py)."""

import logging

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from csms import logs
from stations import events
from tests.support.chargers import ChargerSocket
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db(transaction=True)


def to_consumer(station_id: str, message: dict):
    return get_channel_layer().group_send(events.charger_group(station_id), message)


def test_the_channel_layers_messages_are_logged_with_the_station(caplog):
    """The layer's messages are read in a task of their own: it must carry the station that the
    handshake named, as the socket's frames do."""
    make_station("LOGGED-LAYER")
    caplog.handler.addFilter(logs.StationFilter())
    caplog.set_level(logging.INFO, logger="csms.gateway.consumer")

    async def flow():
        charger = ChargerSocket("LOGGED-LAYER")
        assert await charger.connect()
        await charger.ok("Heartbeat", {})
        await to_consumer("LOGGED-LAYER", {"type": "ocpp.registration",
                                           "registration": "Rejected"})
        closed = await charger.communicator.receive_output(timeout=5)
        await charger.close()
        return closed

    assert async_to_sync(flow)() == {"type": "websocket.close", "code": 1000}
    closing = [r for r in caplog.records if r.getMessage().startswith("closing LOGGED-LAYER")]
    assert [r.station for r in closing] == ["LOGGED-LAYER"]


def test_a_channel_layer_message_that_fails_ends_the_consumer():
    """As in Channels: the failure is the application's, and the server closes the socket."""
    make_station("FAILING-LAYER")

    async def flow():
        charger = ChargerSocket("FAILING-LAYER")
        assert await charger.connect()
        await charger.ok("Heartbeat", {})
        await to_consumer("FAILING-LAYER", {"type": "ocpp.no.such.handler"})
        with pytest.raises(ValueError, match=r"No handler for message type ocpp\.no\.such"):
            await charger.communicator.receive_output(timeout=5)

    async_to_sync(flow)()


def test_frames_and_the_layers_messages_are_handled_in_turn():
    """A command arriving while a frame is handled waits for it (one message at a time): the
    charger gets the answer to its CALL first, then the command, whatever the order they came."""
    make_station("IN-TURN")

    async def flow():
        charger = ChargerSocket("IN-TURN")
        assert await charger.connect()
        await charger.ok("Heartbeat", {})
        await charger.communicator.send_to(text_data='[2, "hb-1", "Heartbeat", {}]')
        await to_consumer("IN-TURN", {"type": "ocpp.displace", "by": "someone else"})
        first = await charger.receive()
        closed = await charger.communicator.receive_output(timeout=5)
        await charger.close()
        return first, closed

    first, closed = async_to_sync(flow)()
    assert first[:2] == [3, "hb-1"]
    assert closed == {"type": "websocket.close", "code": 1000}
