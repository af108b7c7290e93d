"""The gateway on a real socket, in the test's own process: uvicorn serving the project's ASGI
application on a free 127.0.0.1 port, in the test's event loop, and chargers speaking raw OCPP-J
frames to it over TCP with the `websockets` client (subprotocol negotiation, HTTP Basic auth).

Being in the test's process and loop, the server shares the test database and the in-memory
channel layer: a command sent by the test (commands.send, in a worker thread as a web request
would) reaches the charger through the same consumer a production process runs.

    async def flow():
        async with serving() as port, RealCharger.connected(port, "CP-1", "2.0.1") as charger:
            reply = await charger.call("Heartbeat", {})
"""

import asyncio
import base64
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from asgiref.sync import sync_to_async
from websockets.asyncio.client import ClientConnection, connect

from csms.asgi import application
from tests.support.chargers import PASSWORD
from tools.bench import free_port


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


class RealCharger:
    def __init__(self, socket: ClientConnection):
        self.socket = socket
        self.ids = itertools.count(1)

    @classmethod
    @asynccontextmanager
    async def connected(cls, port: int, station_id: str, version: str,
                        password: str = PASSWORD) -> AsyncIterator["RealCharger"]:
        token = base64.b64encode(f"{station_id}:{password}".encode()).decode()
        async with connect(f"ws://127.0.0.1:{port}/ocpp/{station_id}",
                           subprotocols=[f"ocpp{version}"],
                           additional_headers={"Authorization": f"Basic {token}"},
                           open_timeout=5) as socket:
            assert socket.subprotocol == f"ocpp{version}"
            yield cls(socket)

    async def receive(self, wait: float = 5) -> list:
        return json.loads(await asyncio.wait_for(self.socket.recv(), wait))

    async def call(self, action: str, payload: dict) -> list:
        """Send a CALL; returns the reply frame ([3, id, {...}] or [4, id, code, ...])."""
        message_id = str(next(self.ids))
        await self.socket.send(json.dumps([2, message_id, action, payload]))
        reply = await self.receive()
        assert reply[1] == message_id, reply
        return reply

    async def answer(self, frame: list, payload: dict) -> None:
        await self.socket.send(json.dumps([3, frame[1], payload]))


def in_thread(function: Callable, *args: Any, **kwargs: Any) -> asyncio.Future:
    """Run blocking domain code the way a web request does: in a worker thread."""
    return asyncio.ensure_future(
        sync_to_async(function, thread_sensitive=False)(*args, **kwargs))
