"""A fleet admin's day, end to end, over real sockets: a live daphne, a real Celery worker when
the production path (Redis) is on, the project's simulated chargers of both OCPP versions, and
the HTTP API as the person uses it.

The fleet admin imports a CSV of cards; the stations' local lists take them; the admin blocks
one card, and within seconds both chargers refuse it (online at Authorize, and in the local list
they would use offline) while another card charges; the stations show their lists in sync; a
property manager of another organization sees none of it; the audit log shows it all.
"""

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
from rest_framework.authtoken.models import Token

from accounts.models import AuditEntry, IdToken, Membership, Organization, Site, SiteAccess
from stations.models import LocalListState, Transaction
from tests.support.personas import CHARGER_PASSWORD, make_station, make_user
from tests.support.servers import celery_worker, daphne
from tools.simulator import ChargerConfig, VirtualCharger

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]

CARDS = [f"FLEET-{n:03d}" for n in range(1, 21)]
STATIONS = {"1.6": "E2E-16", "2.0.1": "E2E-201"}
SECONDS = 20  # every wait below is bounded by this


class Api:
    """The HTTP API as an integration (or a person's script) calls it."""

    def __init__(self, port: int, user) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1/"
        self.token = Token.objects.get_or_create(user=user)[0].key

    def request(self, method: str, path: str, data: dict | None = None,
                files: dict[str, tuple[str, bytes]] | None = None) -> tuple[int, object]:
        headers = {"Authorization": f"Token {self.token}"}
        body = None
        if files is not None:
            boundary = uuid.uuid4().hex
            parts = []
            for name, value in (data or {}).items():
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                             f"\r\n\r\n{value}\r\n".encode())
            for name, (filename, content) in files.items():
                parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                             f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
                             + content + b"\r\n")
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif data is not None:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, body, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=SECONDS) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    async def __call__(self, method: str, path: str, data: dict | None = None,
                       **kwargs) -> tuple[int, object]:
        return await asyncio.to_thread(self.request, method, path, data, **kwargs)


async def until(check, what: str) -> float:
    """Wait (bounded) until check() is true; returns the seconds it took."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < SECONDS, f"not within {SECONDS} s: {what}"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def test_fleet_admin_imports_blocks_and_the_charger_refuses_within_seconds():
    operator_org = Organization.objects.create(name="Operator", kind="operator")
    owner = Organization.objects.create(name="Harbour")
    other_owner = Organization.objects.create(name="Elsewhere")
    fleet_org = Organization.objects.create(name="Blue Fleet", kind="fleet")
    operator = make_user("op", operator_org, Membership.Role.OPERATOR_ADMIN)
    fleet = make_user("fleetadmin", fleet_org, Membership.Role.FLEET_ADMIN)
    outsider = make_user("othermanager", other_owner, Membership.Role.PROPERTY_MANAGER)
    site = Site.objects.create(name="Harbour car park", organization=owner)
    SiteAccess.objects.create(organization=fleet_org, site=site)  # the fleet charges there
    for station_id in STATIONS.values():
        make_station(station_id, site=site)

    with daphne() as (port, _), celery_worker(SECONDS):
        as_operator, as_fleet, as_outsider = (Api(port, u) for u in (operator, fleet, outsider))

        async def day() -> dict[str, float]:
            for station_id in STATIONS.values():
                status, _ = await as_operator("POST", "local-lists/", {"station": station_id})
                assert status == 201
            chargers = {version: VirtualCharger(ChargerConfig(
                station_id=station_id, version=version, url=f"ws://127.0.0.1:{port}/ocpp/",
                password=CHARGER_PASSWORD, call_timeout=SECONDS)) for version, station_id in
                STATIONS.items()}
            for charger in chargers.values():
                await charger.connect()
                await charger.boot()

            # 1. The fleet admin imports the cards (one line is wrong and is reported).
            csv_text = "card_number,holder,group\n" + "".join(
                f"{card},Driver {card[-3:]},\n" for card in CARDS) + "FLEET 999,Bad,\n"
            status, job = await as_fleet("POST", "id-tokens/import/",
                                         data={"organization": fleet_org.pk},
                                         files={"file": ("drivers.csv", csv_text.encode())})
            assert status == 202, job

            async def imported() -> bool:
                _, progress = await as_fleet("GET", f"card-imports/{job['id']}/")
                return progress["state"] == "done"

            await until(imported, "the import finished")
            _, progress = await as_fleet("GET", f"card-imports/{job['id']}/")
            assert (progress["created"], progress["rejected"]) == (len(CARDS), 1)

            # 2. Both chargers hold the cards in their local lists.
            async def lists_hold(card: str, status: str) -> bool:
                return all(
                    charger.local_list.get(card, {}).get("status") == status
                    for charger in chargers.values())

            await until(lambda: lists_hold(CARDS[-1], "Accepted"), "the lists got the cards")

            # 3. One card is blocked; the chargers refuse it within seconds.
            _, page = await as_fleet("GET", "id-tokens/")
            ids = {row["value"]: row["id"] for row in page["results"]}
            blocked = CARDS[4]
            started = time.monotonic()
            status, result = await as_fleet("POST", "id-tokens/bulk/",
                                            {"action": "block", "ids": [ids[blocked]]})
            assert (status, result) == (200, {"changed": 1})
            timings = {}
            for version, charger in chargers.items():
                assert await charger.authorize(blocked) == "Blocked"
                timings[f"online {version}"] = time.monotonic() - started
            await until(lambda: lists_hold(blocked, "Blocked"), "the lists refuse the card")
            timings["local lists"] = time.monotonic() - started

            # 4. The others charge.
            for charger in chargers.values():
                assert await charger.authorize(CARDS[0]) == "Accepted"
                await charger.start_session(1, CARDS[0] if charger.v16 else CARDS[1])
                await charger.stop_session(1)

            # 5. The stations show their lists in sync, at the version the charger holds.
            async def in_sync() -> bool:
                states = [(await as_operator("GET", f"local-lists/{s}/"))[1]
                          for s in STATIONS.values()]
                return all(state["sync"] == "in_sync" for state in states)

            await until(in_sync, "the stations are in sync")
            for version, station_id in STATIONS.items():
                _, state = await as_operator("GET", f"local-lists/{station_id}/")
                assert state["version"] == chargers[version].local_list_version
                assert state["entries"] == len(CARDS)

            # 6. A property manager of another organization sees none of it.
            for path in ("id-tokens/", "transactions/", "local-lists/", "card-imports/"):
                status, listing = await as_outsider("GET", path)
                assert status == 200 and listing["results"] == [], path
            assert (await as_outsider("GET", f"card-imports/{job['id']}/"))[0] == 404
            assert (await as_outsider("GET", "audit/"))[0] == 403

            for charger in chargers.values():
                await charger.close()
            return timings

        timings = asyncio.run(day())

    print(f"\nblocked card refused after: {timings}")
    assert all(seconds < 5 for seconds in timings.values()), timings
    assert Transaction.objects.filter(state="completed").count() == 2
    assert IdToken.objects.get(value=CARDS[4]).status == "Blocked"
    # The audit log shows it all: the import, the block, the local lists turned on.
    log = list(AuditEntry.objects.order_by("id").values_list("actor_name", "action"))
    assert ("fleetadmin", "cards.imported") in log and ("fleetadmin", "card.blocked") in log
    assert log.count(("op", "local_list.push")) == 2
    assert LocalListState.objects.filter(sync="in_sync").count() == 2
