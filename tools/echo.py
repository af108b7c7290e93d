"""The benchmark's baseline: a bare Channels WebSocket consumer that answers every OCPP CALL with
an empty CALLRESULT, on the same server, settings and channel layer as the CSMS, without OCPP,
validation or a database. `make bench` measures the CSMS against it (tools/bench.py)."""

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csms.settings")
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class EchoConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        offered = self.scope.get("subprotocols") or [None]
        await self.accept(subprotocol=offered[0])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data or "[]")
        await self.send(text_data=json.dumps([3, frame[1], {}]))


application = URLRouter([path("ocpp/<path:station_id>", EchoConsumer.as_asgi())])
