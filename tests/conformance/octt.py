"""What the conformance tests share: the case registry and the test tool's world.

A test plays one OCTT CSMS case (or a few that differ only in a value) and says so:

    @octt.case("1.6", "TC_013_CSMS")
    def test_hard_reset(world):
        async def flow(tool):
            sent = tool.command("reset", {"hard": True})   # the operator, at the REST API
            frame = await tool.expect("Reset")             # what the CSMS must send
            assert frame[3] == {"type": "Hard"}
            await tool.reply(frame, {"status": "Accepted"})
            assert (await tool.outcome(sent))["status"] == "accepted"   # what it records
        world.play("1.6", flow)

The tool is a charger on a real socket to uvicorn serving the project (tests/support/chargers.py)
and the operator admin at the REST API, as the OCA's test tool drives a CSMS through its own
API. `world` (tests/conformance/conftest.py) holds the station under test and its cards.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from accounts.models import IdToken
from stations.models import Station
from tests.conformance.catalogue import CASES
from tests.support.chargers import RealCharger, in_thread, serving
from tests.support.personas import CHARGER_PASSWORD

# version → case id → the tests that play it ("module::test"), filled as test modules import.
COVERED: dict[str, dict[str, list[str]]] = {version: {} for version in CASES}


def case(version: str, *case_ids: str) -> Callable[[Callable], Callable]:
    """Name the OCTT case(s) a test plays; an id that is not in the catalogue is a typo."""

    def register(test: Callable) -> Callable:
        where = f"{test.__module__.rsplit('.', 1)[-1]}::{test.__name__}"
        for case_id in case_ids:
            assert case_id in CASES[version], f"{case_id} is not an OCTT CSMS case of {version}"
            COVERED[version].setdefault(case_id, []).append(where)
        return test

    return register


@dataclass
class Tool:
    """The test tool in one case: the charger it plays, and the operator it acts as."""

    charger: RealCharger
    station_id: str
    operator: User

    def command(self, path: str, body: dict | None = None, *,
                on: str = "stations") -> asyncio.Future:
        """POST the operator's command to /api/v1/<on>/<id>/<path>/ (a session's commands:
        on="transactions/<pk>"); the request blocks until the charger answers, so it runs in a
        worker thread while the test plays the charger."""
        subject = on if "/" in on else f"{on}/{quote(self.station_id, safe='')}"

        def post() -> Any:
            client = APIClient()
            client.force_authenticate(self.operator)
            return client.post(f"/api/v1/{subject}/{path}/", body or {}, format="json")

        return in_thread(post)

    def call(self, action: str, payload: dict) -> asyncio.Future:
        """Any OCPP action through the API's raw call endpoint."""
        return self.command("calls", {"action": action, "payload": payload})

    async def expect(self, action: str, wait: float = 5) -> list:
        """The next frame the CSMS sends, which must be a CALL of `action`."""
        frame = await self.charger.receive(wait)
        assert frame[0] == 2 and frame[2] == action, frame
        return frame

    async def reply(self, frame: list, payload: dict) -> None:
        await self.charger.answer(frame, payload)

    async def outcome(self, sent: asyncio.Future) -> dict:
        """The API's answer to a command: the Call as it ended."""
        response = await sent
        assert response.status_code == 201, response.content
        return response.json()

    async def ok(self, action: str, payload: dict) -> dict:
        return await self.charger.ok(action, payload)


@dataclass
class World:
    """The station under test (2 EVSEs, connector 1 each, security profile 1) of org_a's site,
    the operator admin, and cards of org_a: valid, blocked, expired."""

    station: Station
    operator: User
    valid: IdToken
    blocked: IdToken
    expired: IdToken
    unknown: str = "OCTT-UNKNOWN"

    def play(self, version: str, flow: Callable[[Tool], Awaitable[None]], *,
             password: str = CHARGER_PASSWORD) -> None:
        """Serve the project, connect the tool's charger in `version` and play `flow`."""

        async def run() -> None:
            async with serving() as port, RealCharger.connected(
                    port, self.station.pk, version, password=password) as charger:
                await flow(Tool(charger, self.station.pk, self.operator))

        async_to_sync(run)()
