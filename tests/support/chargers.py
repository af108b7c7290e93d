"""Chargers for the tests, speaking raw OCPP-J frames so tests can also send what no
well-behaved charger would:

- ChargerSocket: in-process, over the consumer (a channels communicator), for the gateway's
  own tests and whatever a charger's messages reach;
- RealCharger: over a real TCP socket (the `websockets` client: subprotocol negotiation, HTTP
  Basic auth) to uvicorn serving the project's ASGI application in the test's own loop
  (`serving()`);
- open_raw_socket: a charger that completes the handshake and then never reads again.

The first two share what a charger says and hears (Frames: call, ok, receive, answer) and
differ only in how the text travels. Being in the test's process and loop, `serving()`'s server
shares the test database and the in-memory channel layer: a command sent by the test
(commands.send, in a worker thread as a web request would: `in_thread`) reaches the charger
through the same consumer a production process runs.

    async def flow():
        async with serving() as port, RealCharger.connected(port, "CP-1", "2.0.1") as charger:
            reply = await charger.call("Heartbeat", {})

Their stations come from personas.make_station, with personas.CHARGER_PASSWORD.
"""

import asyncio
import base64
import itertools
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from websockets.asyncio.client import ClientConnection, connect

from csms.asgi import application
from csms.gateway import frames, writer
from csms.gateway.table import TABLE
from stations.models import Station
from tests.support.personas import CHARGER_PASSWORD
from tools.bench import free_port

T0 = "2026-11-24T10:00:00Z"  # when the tests' chargers say their messages happen


def basic_auth(user: str, password: str = CHARGER_PASSWORD) -> str:
    """The HTTP Basic `Authorization` header's value a charger of profile 1 or 2 sends."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def basic(user: str, password: str) -> tuple[bytes, bytes]:
    """The same as an ASGI header, for ChargerSocket's `headers`."""
    return (b"authorization", basic_auth(user, password).encode())


class Frames:
    """What a charger says and hears, a frame at a time; a subclass moves the text."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)

    async def send_text(self, text: str) -> None:
        raise NotImplementedError

    async def receive_text(self, wait: float) -> str:
        raise NotImplementedError

    async def receive(self, wait: float = 5) -> list:
        return json.loads(await self.receive_text(wait))

    async def send_raw(self, text: str) -> list:
        await self.send_text(text)
        return await self.receive()

    async def call(self, action: str, payload: dict, message_id: str | None = None) -> list:
        """Send a CALL; returns the whole reply frame ([3, id, {...}] or [4, id, code, ...])."""
        message_id = message_id or str(next(self.ids))
        reply = await self.send_raw(json.dumps([2, message_id, action, payload]))
        assert reply[1] == message_id, reply
        return reply

    async def ok(self, action: str, payload: dict) -> dict:
        reply = await self.call(action, payload)
        assert reply[0] == 3, reply
        return reply[2]

    async def answer(self, frame: list, payload: dict) -> None:
        await self.send_text(json.dumps([3, frame[1], payload]))


class ChargerSocket(Frames):
    """A charger on an in-process WebSocket to the gateway's consumer."""

    def __init__(self, station_id: str, version: str = "1.6",
                 password: str | None = CHARGER_PASSWORD, subprotocols: list[str] | None = None,
                 headers: list | None = None, client: tuple[str, int] = ("127.0.0.1", 50000)):
        super().__init__()
        headers = list(headers or [])
        if password is not None:
            headers.append(basic(station_id, password))
        self.communicator = WebsocketCommunicator(
            application, f"/ocpp/{station_id}", headers=headers,
            subprotocols=subprotocols if subprotocols is not None else [f"ocpp{version}"],
        )
        self.communicator.scope["client"] = client
        self.subprotocol: str | None = None

    async def connect(self) -> bool:
        connected, self.subprotocol = await self.communicator.connect(timeout=5)
        return connected

    async def send_text(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def receive_text(self, wait: float) -> str:
        return await self.communicator.receive_from(timeout=wait)

    async def close(self) -> None:
        await self.communicator.disconnect()


class RealCharger(Frames):
    """A charger on a real TCP socket to a server (`serving()`'s, or a process's)."""

    def __init__(self, socket: ClientConnection):
        super().__init__()
        self.socket = socket

    @classmethod
    @asynccontextmanager
    async def connected(cls, port: int, station_id: str, version: str,
                        password: str = CHARGER_PASSWORD) -> AsyncIterator["RealCharger"]:
        async with connect(f"ws://127.0.0.1:{port}/ocpp/{station_id}",
                           subprotocols=[f"ocpp{version}"],
                           additional_headers={"Authorization": basic_auth(station_id, password)},
                           open_timeout=5) as socket:
            assert socket.subprotocol == f"ocpp{version}"
            yield cls(socket)

    async def send_text(self, text: str) -> None:
        await self.socket.send(text)

    async def receive_text(self, wait: float) -> str:
        return await asyncio.wait_for(self.socket.recv(), wait)


@asynccontextmanager
async def serving() -> AsyncIterator[int]:
    """uvicorn with the Procfile's WebSocket options, in this loop; yields its port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        application, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
        ws="websockets-sansio", ws_per_message_deflate=False, proxy_headers=False,
        access_log=False))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 (uvicorn says it by this flag only)
            await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


def in_thread(function: Callable, *args: Any, **kwargs: Any) -> asyncio.Future:
    """Run blocking domain code the way a web request does: in a worker thread."""
    return asyncio.ensure_future(
        sync_to_async(function, thread_sensitive=False)(*args, **kwargs))


def answered(station_id: str, request: Callable[[], Any], answer: Callable[[list], dict], *,
             version: str = "1.6", password: str = CHARGER_PASSWORD) -> tuple[list, Any]:
    """Connect a charger, make `request` (a web or API request sending it a command, which
    blocks until the charger answers) in a worker thread, and answer the command's frame with
    answer(frame). Returns the frame and the request's response."""

    async def flow() -> tuple[list, Any]:
        charger = ChargerSocket(station_id, version, password=password)
        assert await charger.connect()
        response = in_thread(request)
        frame = await charger.receive()
        await charger.answer(frame, answer(frame))
        done = await response
        await charger.close()
        return frame, done

    return async_to_sync(flow)()


def open_raw_socket(port: int, station_id: str) -> socket.socket:
    """A charger that completes the WebSocket handshake and then never reads again: it will not
    answer the server's pings, like a charger whose network dropped without a FIN."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall((
        f"GET /ocpp/{station_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n"
        f"Authorization: {basic_auth(station_id)}\r\n\r\n").encode())
    assert b" 101 " in sock.recv(4096).split(b"\r\n")[0]
    return sock


def connected(station_id: str) -> bool:
    """Whether the station is marked connected (by whichever process holds its socket)."""
    return Station.objects.get(pk=station_id).connected


def meter_value(at: str, wh: int) -> dict:
    """A 1.6 meter value: the energy register in Wh and 7.4 kW of power."""
    return {"timestamp": at, "sampledValue": [
        {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"}]}


def job(station: Station, version: str, action: str, payload: dict, n: int) -> writer.Job:
    """A charger's message as the writer takes it (writer.store), without a socket."""
    # Parsed from its text, as the consumer does: with the payload's JSON for the log.
    call = frames.parse(json.dumps([2, str(n), action, payload]))
    return writer.Job(station, version, TABLE.inbound(version)[action].handler, call,
                      future=None)
