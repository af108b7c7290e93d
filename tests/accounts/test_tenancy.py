"""The tenancy matrix: no person ever gets a byte of another organization's data.

Two mirror worlds, A and B, each with a property owner (site, station, sessions, commands, a
local list) and a fleet (cards, an import, sessions), and a property manager and a fleet admin
in each. Everything of world X carries the marker "MARK-X" in a name, and every row of world X
has the primary key BASE[X] (+1 where a table holds two), so one number names "world B's
object" in every table at once.

The endpoints are not listed here: every URL pattern of the project is enumerated from the
resolver. So a NEW endpoint is in the matrix the day it is added, and fails it if it is not
scoped:
- every URL without parameters (lists, exports, pages) is fetched as each person and must hold
  no marker of the other world;
- every URL with parameters is filled with the other world's identifiers and requested with
  GET, POST, PATCH and DELETE: the answer must be 403, 404 or 405, and hold no marker either;
- every live dashboard page is opened with the other world's identifiers (refused), or without
  (it must join none of the other world's groups and render none of its markers).
"""

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from accounts import access, card_use
from accounts.models import (
    AuditEntry,
    CardImport,
    IdToken,
    Membership,
    Organization,
    Site,
    SiteAccess,
)
from stations import events
from stations.access import stations_for, transactions_for
from stations.models import (
    Call,
    Evse,
    LocalListEntry,
    LocalListState,
    MessageLog,
    MeterSample,
    Station,
    StationEvent,
    Transaction,
)
from stations.web import consumers
from stations.web import fragments as stations_fragments

pytestmark = pytest.mark.django_db

BASE = {"A": 6001, "B": 7001}
OTHER = {"A": "B", "B": "A"}
# Where a parameter is not an object's identifier, words the views know, so the request gets
# as far as the scoping decision.
WORDS = {
    "action": ["push", "enable", "clear-cache", "version", "reset", "start", "trigger"],
    "decision": ["approve", "reject", "confirm", "discard"],
}
# Patterns left out, and why: by namespace, and by name.
EXEMPT = {
    "admin": "Django's admin: staff only (test_admin_refuses_every_persona)",
}
EXEMPT_NAMES = {
    "password_reset_confirm": "a signed one-time link, not an object: a wrong one says so",
}
ALLOWED = {403, 404, 405}
# Live pages showing one object: opened with another world's object, they must be refused.
ABOUT_ONE_OBJECT = {"station", "site", "session"}


def world(x: str) -> dict:
    """World x: its objects (primary keys BASE[x], BASE[x] + 1) and its two people."""
    pk = BASE[x]
    mark = f"MARK-{x}"
    owner = Organization.objects.create(pk=pk, name=f"Owner {mark}")
    fleet_org = Organization.objects.create(pk=pk + 1, name=f"Fleet {mark}",
                                            kind=Organization.Kind.FLEET)
    manager = User.objects.create(pk=pk, username=f"manager-{mark}")
    fleet = User.objects.create(pk=pk + 1, username=f"fleet-{mark}")
    Membership.objects.create(pk=pk, user=manager, organization=owner,
                              role=Membership.Role.PROPERTY_MANAGER)
    Membership.objects.create(pk=pk + 1, user=fleet, organization=fleet_org,
                              role=Membership.Role.FLEET_ADMIN)
    site = Site.objects.create(pk=pk, name=f"Site {mark}", organization=owner)
    station = Station.objects.create(pk=f"ST-{mark}", site=site, ocpp_version="2.0.1",
                                     vendor=f"Vendor {mark}")
    evse = Evse.objects.create(pk=pk, station=station, number=1)
    token = IdToken.objects.create(pk=pk, value=f"TOK-{mark}", holder=f"Holder {mark}",
                                   organization=fleet_org)
    token.allowed_sites.set([site])
    IdToken.objects.create(pk=pk + 1, value=f"TOK2-{mark}", organization=fleet_org)
    started = timezone.now() - timedelta(hours=2)
    tx = Transaction.objects.create(
        pk=pk, station=station, evse=evse, transaction_id=f"TX-{mark}", id_token=token,
        id_token_value=token.value, started_at=started, state=Transaction.State.COMPLETED,
        stopped_at=started + timedelta(minutes=40), energy_wh=1000)
    MeterSample.objects.create(pk=pk, station=station, transaction=tx, timestamp=started,
                               value=5)
    Call.objects.create(pk=pk, station=station, action="Reset", payload={"type": "Soft"},
                        requested_by=manager, status=Call.Status.ACCEPTED)
    StationEvent.objects.create(pk=pk, station=station, kind=StationEvent.Kind.SECURITY,
                                name=f"Event {mark}", timestamp=started)
    LocalListState.objects.create(station=station, note=f"Note {mark}", enabled=True)
    LocalListEntry.objects.create(pk=pk, station=station, value=token.value,
                                  status="Accepted")
    CardImport.objects.create(pk=pk, organization=fleet_org, created_by=fleet,
                              filename=f"import-{mark}.csv", content=f"value\n{token.value}\n",
                              state=CardImport.State.DONE, total=1, processed=1,
                              rejections=[{"line": 2, "value": token.value, "reason": mark}])
    AuditEntry.objects.create(pk=pk, actor=fleet, actor_name=fleet.username,
                              action=AuditEntry.Action.CARD_BLOCKED,
                              summary=f"blocked card {token.value}", target=f"card:{pk}")
    return {"manager": manager, "fleet": fleet, "site": site, "station": station, "tx": tx,
            "mark": mark, "pk": pk}


@pytest.fixture
def worlds() -> dict[str, dict]:
    return {"A": world("A"), "B": world("B")}


# --- the project's URL patterns -----------------------------------------------------------------

def patterns(resolvers=None, prefix: str = "") -> Iterator[tuple[str, str, URLPattern]]:
    """(namespace, full pattern text, pattern) for every URL the project serves."""
    for entry in resolvers if resolvers is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace in EXEMPT:
                continue
            for namespace, text, pattern in patterns(entry.url_patterns,
                                                     prefix + str(entry.pattern)):
                yield namespace or entry.namespace or "", text, pattern
        elif entry.name not in EXEMPT_NAMES:
            yield "", prefix + str(entry.pattern), entry


_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_ROUTE_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def parameters(text: str) -> list[tuple[str, str]]:
    """(name, converter) of each parameter; regex groups count as "str"."""
    found = [(name, converter or "str") for converter, name in _ROUTE_PARAM.findall(text)]
    return found + [(name, "str") for name in _REGEX_GROUP.findall(text)]


def fill(text: str, values: dict[str, str]) -> str:
    text = _REGEX_GROUP.sub(lambda m: values[m.group(1)], text)
    text = _ROUTE_PARAM.sub(lambda m: values[m.group(2)], text)
    return "/" + text.replace("^", "").replace("$", "").replace("\\Z", "")


def candidates(name: str, converter: str, target: dict) -> list[str]:
    if name in WORDS:
        return WORDS[name]
    numbers = [str(target["pk"]), str(target["pk"] + 1)]
    return numbers if converter == "int" else [target["station"].pk, *numbers]


def urls_with(target: dict) -> Iterator[tuple[str, str]]:
    """(pattern, url) for every parameterised URL, filled with the target world's ids."""
    for _, text, _ in patterns():
        params = parameters(text)
        if not params or ".*" in text:
            continue
        first, *rest = params
        for value in candidates(*first, target):
            values = {first[0]: value}
            values.update({name: candidates(name, conv, target)[0] for name, conv in rest})
            yield text, fill(text, values)
        for name, conv in rest:  # every word of the other parameters, on the main object
            for word in candidates(name, conv, target)[1:]:
                values = {first[0]: candidates(*first, target)[0]}
                values.update({n: candidates(n, c, target)[0] for n, c in rest})
                values[name] = word
                yield text, fill(text, values)


def urls_without() -> list[str]:
    return sorted({fill(text, {}) for _, text, _ in patterns()
                   if not parameters(text) and ".*" not in text})


def body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


PEOPLE = [("A", "manager"), ("A", "fleet"), ("B", "manager"), ("B", "fleet")]


def test_the_matrix_covers_the_project(worlds):
    """The enumeration finds the endpoints (it is not silently empty), this file's included."""
    listed = urls_without()
    for url in ["/api/v1/stations/", "/api/v1/id-tokens/", "/api/v1/transactions/",
                "/api/v1/calls/", "/api/v1/audit/", "/api/v1/local-lists/", "/cards/",
                "/cards/export/", "/sessions/", "/sites/", "/audit/", "/local-lists/"]:
        assert url in listed, url
    filled = {url for _, url in urls_with(worlds["B"])}
    for url in ["/api/v1/stations/ST-MARK-B/", "/api/v1/transactions/7001/samples/",
                "/cards/7001/", "/sessions/7001/", "/local-lists/ST-MARK-B/push/",
                "/stations/ST-MARK-B/actions/reset/", "/api/v1/card-imports/7001/rejections/"]:
        assert url in filled, url


@pytest.mark.parametrize(("x", "role"), PEOPLE)
def test_lists_exports_and_pages_hold_nothing_of_the_other_world(client, worlds, x, role):
    mine, theirs = worlds[x], worlds[OTHER[x]]
    client.force_login(mine[role])
    leaks = []
    for url in urls_without():
        response = client.get(url)
        assert response.status_code < 500, (url, response.status_code)
        if theirs["mark"] in body(response):
            leaks.append(url)
    assert leaks == [], f"{role} of {x} sees {theirs['mark']} at {leaks}"
    # The matrix does see something: each person's own world shows up somewhere.
    assert mine["mark"] in body(client.get("/api/v1/transactions/"))


@pytest.mark.parametrize(("x", "role"), PEOPLE)
def test_the_other_worlds_objects_are_404_or_403_in_every_method(client, worlds, x, role):
    mine, theirs = worlds[x], worlds[OTHER[x]]
    client.force_login(mine[role])
    wrong = []
    for _, url in urls_with(theirs):
        for method in ("get", "post", "patch", "delete"):
            response = getattr(client, method)(url)
            if response.status_code not in ALLOWED or theirs["mark"] in body(response):
                wrong.append((method.upper(), url, response.status_code))
    assert wrong == [], f"{role} of {x} reached the other world: {wrong}"
    # Nothing of theirs was changed by all that.
    assert Station.objects.get(pk=theirs["station"].pk).site_id == theirs["site"].pk
    assert IdToken.objects.get(pk=theirs["pk"]).status == IdToken.Status.ACCEPTED
    assert not Call.objects.filter(station=theirs["station"]).exclude(pk=theirs["pk"]).exists()


@pytest.mark.parametrize(("x", "role"), PEOPLE)
def test_live_dashboard_pages_join_nothing_of_the_other_world(worlds, x, role):
    mine, theirs = worlds[x], worlds[OTHER[x]]
    user = User.objects.get(pk=mine[role].pk)
    their_groups = {events.site_group(theirs["site"].pk),
                    events.station_group(theirs["station"].pk), events.EVERYTHING}
    foreign = {"station": theirs["station"].pk, "site": str(theirs["site"].pk),
               "tx": str(theirs["tx"].pk)}
    for name in consumers.PAGES:
        refused = consumers.open_page(user, {"page": name, **foreign})
        opened = consumers.open_page(user, {"page": name})
        for page in (refused, opened):
            if page is None:
                continue
            assert not set(page.groups) & their_groups, (name, page.groups)
            assert theirs["mark"] not in page.initial(), name
        if name in ABOUT_ONE_OBJECT:
            assert refused is None, name
    assert not set(consumers.visible_groups(user)) & their_groups


def test_admin_refuses_every_persona(client, worlds):
    for x, role in PEOPLE:
        client.force_login(worlds[x][role])
        assert client.get("/admin/").status_code == 302  # to the admin's own login


def test_scoping_decisions_come_from_one_place(worlds):
    """What the matrix checks is what accounts.access says: each person sees their world."""
    a = worlds["A"]
    assert list(stations_for(a["manager"])) == [a["station"]]
    assert list(transactions_for(a["fleet"])) == [a["tx"]]
    assert set(access.id_tokens_for(a["fleet"]).values_list("value", flat=True)) == {
        "TOK-MARK-A", "TOK2-MARK-A"}
    assert not access.id_tokens_for(a["manager"]).exists()
    assert not access.may_administer(a["manager"]) and not access.may_administer(a["fleet"])


@pytest.mark.parametrize(("x", "role"), PEOPLE)
def test_writes_naming_the_other_worlds_objects_change_nothing(client, worlds, x, role):
    """Endpoints that take another object's id in their body (not their URL) check it too."""
    mine, theirs = worlds[x], worlds[OTHER[x]]
    client.force_login(mine[role])
    their_card, their_station = theirs["pk"], theirs["station"].pk
    answers = [
        client.post("/api/v1/id-tokens/bulk/", {"action": "block", "ids": [their_card]},
                    content_type="application/json").json(),
        client.post("/cards/bulk/", {"card": [their_card], "action": "block"}).status_code,
        client.post("/api/v1/local-lists/", {"station": their_station},
                    content_type="application/json").status_code,
        client.post("/api/v1/id-tokens/", {"value": "NEW-CARD", "organization": theirs["pk"] + 1,
                                           "allowed_sites": [theirs["site"].pk]},
                    content_type="application/json").status_code,
    ]
    assert answers[0] == {"changed": 0} or "detail" in answers[0]  # nothing, or refused
    assert answers[1] in (302, 403) and answers[2] in (403, 404) and answers[3] in (400, 403)
    assert IdToken.objects.get(pk=their_card).status == IdToken.Status.ACCEPTED
    assert not IdToken.objects.filter(value="NEW-CARD").exists()
    assert LocalListState.objects.get(station=their_station).enabled
    assert LocalListState.objects.get(station=their_station).note == f"Note {theirs['mark']}"


# --- a card of another organization, at a station one sees --------------------------------------

VISITOR_CARD = "VISITOR-CARD-0042"


@pytest.fixture
def visitor(worlds) -> dict:
    """A third organization's card charging at world A's station by agreement with its owner:
    in a session, its frames, a command, the station's local list."""
    a = worlds["A"]
    organization = Organization.objects.create(name="Visitors", kind=Organization.Kind.FLEET)
    admin = User.objects.create(username="visitor-admin")
    Membership.objects.create(user=admin, organization=organization,
                              role=Membership.Role.FLEET_ADMIN)
    SiteAccess.objects.create(organization=organization, site=a["site"])
    card = IdToken.objects.create(value=VISITOR_CARD, organization=organization)
    started = timezone.now() - timedelta(minutes=30)
    tx = Transaction.objects.create(station=a["station"], transaction_id="TX-VISITOR",
                                    id_token=card, id_token_value=card.value,
                                    started_at=started)
    for direction, action, payload in [
            ("in", "Authorize", {"idToken": {"idToken": card.value, "type": "ISO14443"}}),
            ("in", "TransactionEvent", {"eventType": "Started", "idToken": {
                "idToken": card.value, "type": "ISO14443"}, "transactionInfo": {
                "transactionId": "TX-VISITOR"}}),
            ("out", "SendLocalList", {"versionNumber": 2, "localAuthorizationList": [
                {"idToken": {"idToken": card.value, "type": "ISO14443"}}]})]:
        MessageLog.objects.create(station=a["station"], direction=direction, message_type=2,
                                  message_id=action, action=action, payload=payload)
    Call.objects.create(station=a["station"], action="RequestStartTransaction",
                        payload={"evseId": 1, "idToken": {"idToken": card.value,
                                                          "type": "Central"}},
                        status=Call.Status.ACCEPTED)
    LocalListEntry.objects.create(station=a["station"], value=card.value, status="Accepted")
    return {"admin": admin, "tx": tx, "card": card}


def test_another_organizations_card_number_is_masked_wherever_a_manager_sees_it(
        client, worlds, visitor):
    """World A's manager sees the visitor's session, frames, command and list entry, and of
    its card number only the last characters; its own fleet admin and the operator see it."""
    a = worlds["A"]
    station, tx = a["station"].pk, visitor["tx"].pk
    pages = [*urls_without(), f"/stations/{station}/", f"/sessions/{tx}/",
             f"/local-lists/{station}/", f"/api/v1/stations/{station}/calls/",
             f"/api/v1/transactions/{tx}/", f"/sessions/?token={VISITOR_CARD[:8]}",
             f"/api/v1/transactions/?id_token={VISITOR_CARD}"]
    client.force_login(a["manager"])
    shown = {url: body(client.get(url)) for url in pages}
    assert [url for url, text in shown.items() if VISITOR_CARD in text] == []
    for url in (f"/stations/{station}/", f"/sessions/{tx}/", f"/local-lists/{station}/",
                f"/api/v1/transactions/{tx}/", f"/api/v1/stations/{station}/calls/"):
        assert card_use.masked(VISITOR_CARD) in shown[url], url
    # Searching by its number finds nothing: a match would tell the number.
    assert "TX-VISITOR" not in shown[f"/sessions/?token={VISITOR_CARD[:8]}"]
    assert "TX-VISITOR" not in shown[f"/api/v1/transactions/?id_token={VISITOR_CARD}"]
    # The live station and sessions pages (fragments pushed over the socket) mask it too.
    user = User.objects.get(pk=a["manager"].pk)
    for params in ({"page": "station", "station": station}, {"page": "sessions"},
                   {"page": "session", "tx": str(tx)}):
        page = consumers.open_page(user, params)
        fragments = "".join(page.initial()) + "".join(page.update(
            [{"event": "transaction.update", "station_id": station, "site_id": a["site"].pk,
              "data": {"transaction": tx}}]))
        assert VISITOR_CARD not in fragments, params
    # A message log rendered for a live socket reads the page's hidden numbers as the page does.
    log = stations_fragments.message_log(a["station"], stations_fragments.LogFilter(), 1, user)
    pushed = stations_fragments.render("message_log", {"viewer": user, "station": a["station"],
                                                       **log})
    assert card_use.masked(VISITOR_CARD) in pushed and VISITOR_CARD not in pushed
    # Those who see the card see its number.
    for who in (visitor["admin"], User.objects.create_superuser("root-visitor")):
        client.force_login(who)
        assert VISITOR_CARD in body(client.get(f"/api/v1/transactions/{tx}/"))
        assert VISITOR_CARD in body(client.get(f"/sessions/{tx}/"))
