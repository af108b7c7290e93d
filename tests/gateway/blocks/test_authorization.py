"""Authorization: Authorize in both versions' words, the authorization cache; what a charger is
told for each state a card can be in."""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from accounts import card_use
from accounts.models import IdToken
from stations.models import Transaction
from stations.services.authorization import authorize
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


def _answers(station_id: str, version: str, cards: list[str]) -> dict[str, str]:
    """What the station's charger is told for each card (Authorize), over a real socket."""
    async def ask() -> dict[str, str]:
        charger = ChargerSocket(station_id, version)
        assert await charger.connect()
        answers = {}
        for card in cards:
            if version == "1.6":
                reply = await charger.ok("Authorize", {"idTag": card})
                answers[card] = reply["idTagInfo"]["status"]
            else:
                reply = await charger.ok("Authorize",
                                         {"idToken": {"idToken": card, "type": "ISO14443"}})
                answers[card] = reply["idTokenInfo"]["status"]
        await charger.close()
        return answers

    return async_to_sync(ask)()


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_card_charges_only_where_its_organization_may(personas, version):
    """Site A's station takes its owner's cards and the operator's; the fleet's only once the
    site agreed to them; another property owner's only while it roams, with its consent."""
    station = make_station(f"RULE-{version}", site=personas.site_a)
    IdToken.objects.create(value="OWNER-A", organization=personas.org_a)
    IdToken.objects.create(value="OWNER-B", organization=personas.org_b)
    cards = ["OWNER-A", "TOKEN-OPERATOR", "TOKEN-FLEET", "OWNER-B"]
    refused = "Invalid" if version == "1.6" else "NotAtThisLocation"
    assert _answers(station.pk, version, cards) == {
        "OWNER-A": "Accepted", "TOKEN-OPERATOR": "Accepted", "TOKEN-FLEET": refused,
        "OWNER-B": refused}

    card_use.access_grant(personas.manager, personas.fleet_org, personas.site_a)
    card_use.policy_set(personas.operator, personas.org_b, roaming=True)  # offered, no consent
    assert _answers(station.pk, version, cards)["TOKEN-FLEET"] == "Accepted"
    assert _answers(station.pk, version, cards)["OWNER-B"] == refused
    card_use.policy_set(personas.outsider, personas.org_b, roaming_consent=True)
    assert _answers(station.pk, version, ["OWNER-B"]) == {"OWNER-B": "Accepted"}
    # A card limited to other sites stays refused here, agreement or not.
    IdToken.objects.create(value="FLEET-DEPOT", organization=personas.fleet_org
                           ).allowed_sites.set([personas.site_b])
    assert _answers(station.pk, version, ["FLEET-DEPOT"]) == {"FLEET-DEPOT": refused}


def test_a_start_with_a_card_that_may_not_charge_here_is_refused_and_still_recorded(personas):
    """The session a charger reports is kept (it may have charged); the card is told Invalid."""
    station = make_station("RULE-START", site=personas.site_b)

    async def start() -> dict:
        charger = ChargerSocket(station.pk, "1.6")
        assert await charger.connect()
        reply = await charger.ok("StartTransaction", {
            "connectorId": 1, "idTag": "TOKEN-FLEET", "meterStart": 0,
            "timestamp": timezone.now().isoformat()})
        await charger.close()
        return reply

    assert async_to_sync(start)()["idTagInfo"]["status"] == "Invalid"
    assert Transaction.objects.get(station=station).id_token == personas.fleet_token


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_groups_of_the_same_name_in_two_organizations_are_two_groups(personas, version):
    """Each organization's DEPOT is its own: chargers are told groups that differ, and a card
    of one is never held back by the other's sessions."""
    station = make_station(f"GROUPS-{version}", site=personas.site_a)
    card_use.access_grant(personas.manager, personas.fleet_org, personas.site_a)
    theirs = IdToken.objects.create(value="B-DEPOT-1", group="DEPOT",
                                    organization=personas.org_b)
    make_transaction(personas.station_b, theirs)
    mine = IdToken.objects.create(value="FLEET-DEPOT-1", group="DEPOT",
                                  organization=personas.fleet_org)
    own = IdToken.objects.create(value="A-DEPOT-1", group="DEPOT", organization=personas.org_a)
    assert _answers(station.pk, version, [mine.value, own.value]) == {
        mine.value: "Accepted", own.value: "Accepted"}
    told = {authorize(station, card.value).group for card in (theirs, mine, own)}
    assert len(told) == 3 and all(len(group) <= 20 for group in told)
    # Long group names are told by a digest: two that share their first 20 characters differ.
    first = IdToken(group="A-VERY-LONG-GROUP-NAME-1", organization=personas.fleet_org)
    second = IdToken(group="A-VERY-LONG-GROUP-NAME-2", organization=personas.fleet_org)
    assert first.group_token() != second.group_token()
    assert max(len(first.group_token()), len(second.group_token())) == 20


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_concurrent_tx_is_the_same_card_and_only_where_its_organization_says(personas,
                                                                             version):
    station = make_station(f"CONCURRENT-{version}", site=personas.site_a)
    busy = IdToken.objects.create(value="A-BUSY", group="VANS", organization=personas.org_a)
    IdToken.objects.create(value="A-VAN-2", group="VANS", organization=personas.org_a)
    card_use.access_grant(personas.operator, personas.org_a, personas.site_b)
    make_transaction(personas.station_b, busy)
    assert _answers(station.pk, version, ["A-BUSY", "A-VAN-2"]) == {
        "A-BUSY": "ConcurrentTx", "A-VAN-2": "Accepted"}
    card_use.policy_set(personas.manager, personas.org_a, one_session_per_card=False)
    assert _answers(station.pk, version, ["A-BUSY"]) == {"A-BUSY": "Accepted"}
