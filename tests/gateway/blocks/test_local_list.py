"""Local lists: updates, the list's version and limits, in each version's words. Over the
gateway's WebSocket, on chargers of both versions: the charger's limits asked for, a full list
split by its per-message maximum, a differential update after a card is blocked, the version
acknowledged and read back, ClearCache, a list too large for the charger reported and never
truncated, and an offline station caught up on reconnect."""

import importlib

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.apps import apps as django_apps
from django.db import transaction

from accounts import card_use, cards
from accounts.models import AuditEntry, IdToken
from stations.models import Call, LocalListEntry, LocalListState, Station
from stations.services import local_lists
from stations.services.local_lists import LocalListLimitsQuery, LocalListSend, LocalListVersionQuery
from tests.support.chargers import ChargerSocket
from tests.support.examples import Examples
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db(transaction=True)
LISTS = "/api/v1/local-lists/"

ENTRY = {"status": "Accepted", "expires_at": None, "group": "", "type": "ISO14443"}

EXAMPLES = Examples(
    sent={
        ("1.6", LocalListSend): (LocalListSend(version=1, full=True, entries={"CARD-1": ENTRY}),
                                 {"status": "Accepted"}),
        ("2.0.1", LocalListSend): (LocalListSend(version=2, full=False,
                                                 entries={"CARD-1": ENTRY, "OLD": None}),
                                   {"status": "Accepted"}),
        ("1.6", LocalListVersionQuery): (LocalListVersionQuery(), {"listVersion": 0}),
        ("2.0.1", LocalListVersionQuery): (LocalListVersionQuery(), {"versionNumber": 0}),
        ("1.6", LocalListLimitsQuery): (LocalListLimitsQuery(), {"configurationKey": [
            {"key": "LocalAuthListMaxLength", "readonly": True, "value": "100"},
            {"key": "SendLocalListMaxLength", "readonly": True, "value": "20"}]}),
        ("2.0.1", LocalListLimitsQuery): (LocalListLimitsQuery(), {"getVariableResult": [
            {"attributeStatus": "Accepted", "component": {"name": "LocalAuthListCtrlr"},
             "variable": {"name": "ItemsPerMessage"}, "attributeValue": "20"}]}),
    },
)


# The words of each version: the limits query and its answer, and the list's fields.
WORDS = {
    "1.6": {
        "limits": ("GetConfiguration", {"configurationKey": [
            {"key": "LocalAuthListMaxLength", "readonly": True, "value": "100"},
            {"key": "SendLocalListMaxLength", "readonly": True, "value": "2"}]}),
        "version": "listVersion",
        "token": lambda item: item["idTag"],
        "info": "idTagInfo",
    },
    "2.0.1": {
        "limits": ("GetVariables", {"getVariableResult": [
            {"attributeStatus": "Accepted", "attributeType": "Actual", "attributeValue": "2",
             "component": {"name": "LocalAuthListCtrlr"},
             "variable": {"name": "ItemsPerMessage"}}]}),
        "version": "versionNumber",
        "token": lambda item: item["idToken"]["idToken"],
        "info": "idTokenInfo",
    },
}


def _cards(site) -> None:
    """Three cards valid everywhere and one valid only at `site` (the personas' are left out)."""
    IdToken.objects.all().delete()
    IdToken.objects.create(value="LL-A")
    IdToken.objects.create(value="LL-B", group="G1",
                           expires_at="2031-01-01T00:00:00Z")
    IdToken.objects.create(value="LL-C", token_type="KeyCode")
    IdToken.objects.create(value="LL-ELSEWHERE").allowed_sites.set([site])


async def _expect(charger: ChargerSocket, action: str) -> list:
    frame = await charger.receive()
    assert frame[0] == 2 and frame[2] == action, frame
    return frame


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_full_then_differential_list_acknowledged(personas, api, operator, version, eager):
    words = WORDS[version]
    station = make_station(f"LL-{version}", site=personas.site_a, ocpp_version=version)
    _cards(personas.site_b)
    local_lists.set_enabled(operator, station, True)  # offline: waits for the charger

    async def flow() -> None:
        charger = ChargerSocket(station.pk, version)
        assert await charger.connect()
        # First the charger's limits, then the full list in messages of two entries at most.
        action, answer = words["limits"]
        await charger.answer(await _expect(charger, action), answer)
        # One call outstanding at a time (OCPP-J): the second message follows the answer.
        first = await _expect(charger, "SendLocalList")
        await charger.answer(first, {"status": "Accepted"})
        second = await _expect(charger, "SendLocalList")
        await charger.answer(second, {"status": "Accepted"})
        assert (first[3][words["version"]], first[3]["updateType"]) == (1, "Full")
        assert (second[3][words["version"]], second[3]["updateType"]) == (2, "Differential")
        sent = first[3]["localAuthorizationList"] + second[3]["localAuthorizationList"]
        assert [words["token"](item) for item in sent] == ["LL-A", "LL-B", "LL-C"]
        assert all(item[words["info"]]["status"] == "Accepted" for item in sent)
        if version == "2.0.1":
            assert [item["idToken"]["type"] for item in sent] == [
                "ISO14443", "ISO14443", "KeyCode"]
            assert sent[1]["idTokenInfo"]["groupIdToken"]["idToken"] == "0:G1"
        else:
            assert sent[1]["idTagInfo"] == {"status": "Accepted", "parentIdTag": "0:G1",
                                            "expiryDate": "2031-01-01T00:00:00.000Z"}

        # A card is blocked: one differential update carries just that card.
        await sync_to_async(cards.set_status)(
            operator, IdToken.objects.filter(value="LL-B"), IdToken.Status.BLOCKED)
        update = await _expect(charger, "SendLocalList")
        assert (update[3][words["version"]], update[3]["updateType"]) == (3, "Differential")
        assert [(words["token"](i), i[words["info"]]["status"])
                for i in update[3]["localAuthorizationList"]] == [("LL-B", "Blocked")]
        await charger.answer(update, {"status": "Accepted"})

        # A deleted card leaves the list (an entry without its info).
        await sync_to_async(cards.delete)(operator, await IdToken.objects.aget(value="LL-C"))
        removal = await _expect(charger, "SendLocalList")
        assert [words["info"] in i for i in removal[3]["localAuthorizationList"]] == [False]
        await charger.answer(removal, {"status": "Accepted"})

        # Asked, the charger confirms the version we think it holds.
        asked = await sync_to_async(local_lists.get_version)(station, operator)
        await charger.answer(await _expect(charger, "GetLocalListVersion"),
                             {words["version"]: 4})
        cleared = await sync_to_async(local_lists.clear_cache)(station, operator)
        await charger.answer(await _expect(charger, "ClearCache"), {"status": "Accepted"})
        await charger.close()
        assert (await Call.objects.aget(pk=asked.pk)).status == Call.Status.ACCEPTED
        assert (await Call.objects.aget(pk=cleared.pk)).status == Call.Status.ACCEPTED

    async_to_sync(flow)()
    state = LocalListState.objects.get(station=station)
    assert (state.sync, state.version, state.version_reported) == ("in_sync", 4, 4)
    assert dict(LocalListEntry.objects.filter(station=station).values_list("value", "status")) == {
        "LL-A": "Accepted", "LL-B": "Blocked"}
    body = api(operator).get(f"{LISTS}{station.pk}/").json()
    assert (body["sync"], body["version"], body["entries"]) == ("in_sync", 4, 2)
    # The person's commands are audited; the automatic pushes are the system's.
    actions = list(AuditEntry.objects.filter(action="station.command").values_list(
        "summary", flat=True))
    assert actions == [f"sent ClearCache to {station.pk}",
                       f"sent GetLocalListVersion to {station.pk}"]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_list_larger_than_the_charger_holds_is_reported_not_truncated(personas, operator,
                                                                      version, eager):
    station = make_station(f"BIG-{version}", site=personas.site_a, ocpp_version=version)
    _cards(personas.site_b)
    local_lists.set_enabled(operator, station, True)

    async def flow() -> None:
        charger = ChargerSocket(station.pk, version)
        assert await charger.connect()
        action, _ = WORDS[version]["limits"]
        frame = await _expect(charger, action)
        if version == "1.6":
            await charger.answer(frame, {"configurationKey": [
                {"key": "LocalAuthListMaxLength", "readonly": True, "value": "2"}]})
        else:
            # 2.0.1 declares the list's size as Entries' maxLimit in its device model report.
            await charger.ok("NotifyReport", {
                "requestId": 1, "generatedAt": "2026-11-24T10:00:00Z", "seqNo": 0,
                "reportData": [{"component": {"name": "LocalAuthListCtrlr"},
                                "variable": {"name": "Entries"},
                                "variableAttribute": [{"value": "0"}],
                                "variableCharacteristics": {"dataType": "integer",
                                                            "maxLimit": 2,
                                                            "supportsMonitoring": False}}]})
            await charger.answer(frame, {"getVariableResult": [
                {"attributeStatus": "UnknownVariable",
                 "component": {"name": "LocalAuthListCtrlr"},
                 "variable": {"name": "ItemsPerMessage"}}]})
        assert await charger.communicator.receive_nothing(timeout=0.5)  # nothing is sent
        await charger.close()

    async_to_sync(flow)()
    state = LocalListState.objects.get(station=station)
    assert state.sync == "too_large" and state.wanted == 3
    assert "3 cards" in state.note and "at most 2" in state.note
    assert not Call.objects.filter(station=station, action="SendLocalList").exists()


def test_offline_station_gets_the_update_when_it_is_back(personas, operator, eager):
    station = make_station("LL-AWAY", site=personas.site_a, ocpp_version="2.0.1")
    _cards(personas.site_b)
    local_lists.set_enabled(operator, station, True)
    LocalListState.objects.filter(station=station).update(version=7, sync="in_sync")
    LocalListEntry.objects.bulk_create([
        LocalListEntry(station=station, value=v, status="Accepted", token_type=t, group=g,
                       expires_at=e)
        for v, t, g, e in [("LL-A", "ISO14443", "", None),
                           ("LL-B", "ISO14443", "0:G1", "2031-01-01T00:00:00Z"),
                           ("LL-C", "KeyCode", "", None)]])
    Station.objects.filter(pk=station.pk).update(connected=False)
    cards.set_status(operator, IdToken.objects.filter(value="LL-A"), IdToken.Status.BLOCKED)
    state = LocalListState.objects.get(station=station)
    assert state.sync == "out_of_sync" and "offline" in state.note

    async def flow() -> None:
        charger = ChargerSocket(station.pk, "2.0.1")
        assert await charger.connect()
        action, answer = WORDS["2.0.1"]["limits"]
        await charger.answer(await _expect(charger, action), answer)
        update = await _expect(charger, "SendLocalList")
        assert (update[3]["versionNumber"], update[3]["updateType"]) == (8, "Differential")
        assert [(i["idToken"]["idToken"], i["idTokenInfo"]["status"])
                for i in update[3]["localAuthorizationList"]] == [("LL-A", "Blocked")]
        await charger.answer(update, {"status": "VersionMismatch"})
        # The charger's list is not what we thought: it gets the whole list.
        full = await _expect(charger, "SendLocalList")
        assert (full[3]["versionNumber"], full[3]["updateType"]) == (9, "Full")
        await charger.answer(full, {"status": "Accepted"})
        second = await _expect(charger, "SendLocalList")
        await charger.answer(second, {"status": "Accepted"})
        await charger.close()

    async_to_sync(flow)()
    state = LocalListState.objects.get(station=station)
    assert (state.sync, state.version) == ("in_sync", 10)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_asking_for_the_list_version_never_turns_the_list_on(personas, operator, version,
                                                             eager):
    """The charger's answer is recorded; no list follows, Blocked and Expired cards neither:
    keeping a list is an operator's act."""
    station = make_station(f"ASK-{version}", site=personas.site_a, ocpp_version=version)
    IdToken.objects.create(value="LL-BLOCKED", status=IdToken.Status.BLOCKED)

    async def flow() -> None:
        charger = ChargerSocket(station.pk, version)
        assert await charger.connect()
        fresh = await Station.objects.aget(pk=station.pk)
        await sync_to_async(local_lists.get_version)(fresh, operator)
        await charger.answer(await _expect(charger, "GetLocalListVersion"),
                             {WORDS[version]["version"]: 5})
        assert await charger.communicator.receive_nothing(timeout=1)  # no SendLocalList
        await charger.close()

    async_to_sync(flow)()
    state = LocalListState.objects.get(station=station)
    assert (state.enabled, state.version_reported) == (False, 5)
    assert not Call.objects.filter(station=station, action="SendLocalList").exists()
    with transaction.atomic():
        assert local_lists.sync(station).startswith("the local list is off")


def test_a_stations_list_holds_only_the_cards_that_charge_there(personas, operator):
    """Site A's list: its owner's cards, the operator's and those of organizations agreed with
    or roaming; never another organization's card that cannot charge there."""
    station = make_station("LL-TENANTS", site=personas.site_a, ocpp_version="2.0.1")
    IdToken.objects.create(value="OWNER-A", organization=personas.org_a)
    IdToken.objects.create(value="OWNER-B", organization=personas.org_b)
    assert set(local_lists.wanted(station)) == {"OWNER-A", "TOKEN-OPERATOR"}
    card_use.access_grant(personas.manager, personas.fleet_org, personas.site_a)
    assert set(local_lists.wanted(station)) == {"OWNER-A", "TOKEN-OPERATOR", "TOKEN-FLEET"}
    card_use.policy_set(personas.operator, personas.org_b, roaming=True)
    card_use.policy_set(personas.outsider, personas.org_b, roaming_consent=True)
    assert "OWNER-B" in local_lists.wanted(station)
    nowhere = make_station("LL-NO-SITE", ocpp_version="2.0.1")  # a station on no site yet
    assert set(local_lists.wanted(nowhere)) == {"TOKEN-OPERATOR", "OWNER-B"}


def test_the_migration_keeps_on_only_the_lists_a_person_turned_on(personas, operator):
    """Before, asking a charger for its version turned its list on: those stay off now."""
    migration = importlib.import_module("stations.migrations.0011_cards_local_list_off_by_default")
    chosen = make_station("LL-CHOSEN", site=personas.site_a, ocpp_version="1.6")
    asked = make_station("LL-ASKED", site=personas.site_a, ocpp_version="1.6")
    local_lists.set_enabled(operator, chosen, True)
    LocalListState.objects.create(station=asked, enabled=True)  # as GetLocalListVersion did
    migration.keep_only_chosen_lists(django_apps, None)
    assert dict(LocalListState.objects.values_list("station_id", "enabled")) == {
        "LL-CHOSEN": True, "LL-ASKED": False}
