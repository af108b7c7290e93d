"""A charger on a real (in-process) WebSocket to the gateway, for the gateway's own tests.

It speaks raw OCPP-J frames so tests can also send what no well-behaved charger would.
"""

import asyncio
import base64
import itertools
import json
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from csms.asgi import application
from stations.models import Station

PASSWORD = "test-password-0123456789"


def basic(user: str, password: str) -> tuple[bytes, bytes]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return (b"authorization", f"Basic {token}".encode())


def make_station(station_id: str, profile: int = 1, **fields: Any) -> Station:
    station = Station(id=station_id, security_profile=profile, **fields)
    if profile:
        station.set_password(PASSWORD)
    station.save()
    return station


class ChargerSocket:
    def __init__(self, station_id: str, version: str = "1.6", password: str | None = PASSWORD,
                 subprotocols: list[str] | None = None, headers: list | None = None,
                 client: tuple[str, int] = ("127.0.0.1", 50000)):
        headers = list(headers or [])
        if password is not None:
            headers.append(basic(station_id, password))
        self.communicator = WebsocketCommunicator(
            application, f"/ocpp/{station_id}", headers=headers,
            subprotocols=subprotocols if subprotocols is not None else [f"ocpp{version}"],
        )
        self.communicator.scope["client"] = client
        self.ids = itertools.count(1)
        self.subprotocol: str | None = None

    async def connect(self) -> bool:
        connected, self.subprotocol = await self.communicator.connect(timeout=5)
        return connected

    async def send_raw(self, text: str) -> list:
        await self.communicator.send_to(text_data=text)
        return await self.receive()

    async def receive(self, wait: float = 5) -> list:
        return json.loads(await self.communicator.receive_from(timeout=wait))

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
        await self.communicator.send_to(text_data=json.dumps([3, frame[1], payload]))

    async def close(self) -> None:
        await self.communicator.disconnect()


def answered(station_id: str, request: Callable[[], Any], answer: Callable[[list], dict], *,
             version: str = "1.6", password: str = PASSWORD) -> tuple[list, Any]:
    """Connect a charger, make `request` (a web or API request sending it a command, which
    blocks until the charger answers) in a worker thread, and answer the command's frame with
    answer(frame). Returns the frame and the request's response."""

    async def flow() -> tuple[list, Any]:
        charger = ChargerSocket(station_id, version, password=password)
        assert await charger.connect()
        response = asyncio.ensure_future(sync_to_async(request, thread_sensitive=False)())
        frame = await charger.receive()
        await charger.answer(frame, answer(frame))
        done = await response
        await charger.close()
        return frame, done

    return async_to_sync(flow)()
