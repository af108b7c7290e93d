"""Authorization: Authorize in both versions' words, the authorization cache; what a charger is
told for each state a card can be in."""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from accounts.models import IdToken
from stations.models import Transaction
from stations.services.local_lists import CacheClear
from tests.support.chargers import ChargerSocket
from tests.support.examples import Examples
from tests.support.personas import make_station, make_transaction

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = Examples(
    received={
        ("1.6", "Authorize"): {"idTag": "CARD-1"},
        ("2.0.1", "Authorize"): {"idToken": {"idToken": "CARD-1", "type": "ISO14443"}},
    },
    sent={
        ("1.6", CacheClear): (CacheClear(), {"status": "Accepted"}),
        ("2.0.1", CacheClear): (CacheClear(), {"status": "Accepted"}),
    },
)


def test_authorize_answers_from_token_state_in_both_versions(tokens):
    make_station("A16")
    make_station("A201")
    group_token = IdToken.objects.create(value="FLEET-2", group="FLEET")
    other = make_station("ELSEWHERE")
    Transaction.objects.create(station=other, transaction_id="9", started_at="2026-11-24T09:00Z",
                               id_token=IdToken.objects.create(value="FLEET-1", group="FLEET"))
    # ConcurrentTx is the card's own session elsewhere; another card of its group charges.
    expected = {"CARD-1": "Accepted", "CARD-BLOCKED": "Blocked", "CARD-OLD": "Expired",
                "NOBODY": "Invalid", group_token.value: "Accepted", "FLEET-1": "ConcurrentTx"}

    async def flow():
        results = {}
        cp16, cp201 = ChargerSocket("A16", "1.6"), ChargerSocket("A201", "2.0.1")
        await cp16.connect()
        await cp201.connect()
        for value in expected:
            info16 = (await cp16.ok("Authorize", {"idTag": value}))["idTagInfo"]
            info201 = (await cp201.ok("Authorize", {"idToken": {"idToken": value,
                                                                "type": "ISO14443"}}))
            results[value] = (info16["status"], info201["idTokenInfo"]["status"])
        await cp16.close()
        await cp201.close()
        return results

    results = async_to_sync(flow)()
    assert results == {value: (status, status) for value, status in expected.items()}


EXPECTED = {
    # card: (1.6 answer, 2.0.1 answer)
    "CARD-OK": ("Accepted", "Accepted"),
    "CARD-BLOCKED": ("Blocked", "Blocked"),
    "CARD-RAN-OUT": ("Expired", "Expired"),
    "CARD-EXPIRED": ("Expired", "Expired"),
    "CARD-UNKNOWN": ("Invalid", "Invalid"),
    "CARD-ELSEWHERE": ("Invalid", "NotAtThisLocation"),
    "CARD-HERE": ("Accepted", "Accepted"),
    "CARD-GROUP-2": ("Accepted", "Accepted"),  # another card of its group charges elsewhere
    "CARD-BUSY": ("ConcurrentTx", "ConcurrentTx"),
    "CARD-BUSY-HERE": ("Accepted", "Accepted"),  # its session is at this very station
}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_authorize_answers_each_card_state(personas, version):
    station = make_station(f"AUTH-{version}", site=personas.site_a)
    past = timezone.now() - timedelta(days=1)
    IdToken.objects.create(value="CARD-OK")
    IdToken.objects.create(value="CARD-BLOCKED", status=IdToken.Status.BLOCKED)
    IdToken.objects.create(value="CARD-RAN-OUT", expires_at=past)
    IdToken.objects.create(value="CARD-EXPIRED", status=IdToken.Status.EXPIRED)
    IdToken.objects.create(value="CARD-ELSEWHERE").allowed_sites.set([personas.site_b])
    IdToken.objects.create(value="CARD-HERE").allowed_sites.set([personas.site_a, personas.site_b])
    first = IdToken.objects.create(value="CARD-GROUP-1", group="FAMILY")
    IdToken.objects.create(value="CARD-GROUP-2", group="FAMILY")
    make_transaction(personas.station_b, first)  # its group charges at another station
    # Cards without a group ("") charging elsewhere: CARD-OK and CARD-HERE stay accepted.
    make_transaction(personas.station_b, IdToken.objects.create(value="CARD-BUSY"), evse=2)
    make_transaction(station, IdToken.objects.create(value="CARD-BUSY-HERE"))

    async def ask() -> dict[str, str]:
        charger = ChargerSocket(station.pk, version)
        assert await charger.connect()
        answers = {}
        for card in EXPECTED:
            if version == "1.6":
                reply = await charger.ok("Authorize", {"idTag": card})
                answers[card] = reply["idTagInfo"]["status"]
            else:
                reply = await charger.ok("Authorize",
                                         {"idToken": {"idToken": card, "type": "ISO14443"}})
                answers[card] = reply["idTokenInfo"]["status"]
        await charger.close()
        return answers

    column = 0 if version == "1.6" else 1
    assert async_to_sync(ask)() == {card: both[column] for card, both in EXPECTED.items()}
