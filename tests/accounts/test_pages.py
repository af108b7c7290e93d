"""The pages for cards, imports, local lists, the audit log and memberships, as each role
uses them: what they show, what the forms do, what they refuse, and their query counts."""

import io

import pytest
from django.contrib.auth.models import User

from accounts import audit
from accounts.models import AuditEntry, CardImport, IdToken, Membership, Organization, SiteAccess
from stations.models import LocalListState
from tests.support.personas import PASSWORD, make_station

pytestmark = pytest.mark.django_db


def page(client, user, url: str, status: int = 200) -> str:
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return response.content.decode()


def test_nav_offers_each_role_its_pages(client, operator, manager, fleet, finance):
    links = {"/cards/": "Cards", "/local-lists/": "Local lists", "/audit/": "Audit",
             "/members/": "Members"}
    expected = {operator: set(links), manager: {"/local-lists/"}, fleet: {"/cards/"},
                finance: {"/cards/"}}
    for user, offered in expected.items():
        html = page(client, user, "/sessions/")
        assert {url for url in links if f'href="{url}"' in html} == offered, user


def test_fleet_admin_lists_issues_and_blocks_cards(client, fleet, personas, eager,
                                                   django_assert_max_num_queries,
                                                   django_capture_on_commit_callbacks):
    for n in range(30):
        IdToken.objects.create(value=f"F-{n:02d}", holder=f"Driver {n}",
                               organization=personas.fleet_org)
    client.force_login(fleet)
    with django_assert_max_num_queries(12):
        html = client.get("/cards/").content.decode()
    assert "F-00" in html and "TOKEN-FLEET" in html and "TOKEN-OPERATOR" not in html
    assert "Driver 7" in client.get("/cards/?q=driver+7").content.decode()

    response = client.post("/cards/new/", {
        "value": "F-NEW", "token_type": "ISO14443", "status": "Accepted", "holder": "New one",
        "organization": personas.fleet_org.pk})
    card = IdToken.objects.get(value="F-NEW")
    assert response.status_code == 302 and response["Location"] == f"/cards/{card.pk}/"
    refused = client.post("/cards/new/", {"value": "F NEW", "token_type": "ISO14443",
                                          "status": "Accepted",
                                          "organization": personas.fleet_org.pk})
    assert refused.status_code == 200 and "printable characters" in refused.content.decode()

    ticked = [card.pk, personas.token.pk]  # the second is the operator's: left alone
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/cards/bulk/", {"card": ticked, "action": "block"})
    assert IdToken.objects.get(pk=card.pk).status == "Blocked"
    assert IdToken.objects.get(pk=personas.token.pk).status == "Accepted"
    assert "1 card blocked." in client.get("/cards/").content.decode()
    assert AuditEntry.objects.filter(action="card.blocked", target=f"card:{card.pk}").exists()

    export = client.get("/cards/export/?status=Blocked")
    assert b"".join(export.streaming_content).decode().splitlines()[1].startswith("F-NEW,")


def test_card_page_of_another_tenant_is_404_and_readers_cannot_write(client, fleet, finance,
                                                                   personas):
    other = IdToken.objects.create(value="OTHER", organization=personas.org_b)
    page(client, fleet, f"/cards/{other.pk}/", 404)
    html = page(client, finance, f"/cards/{personas.fleet_token.pk}/")
    assert "TOKEN-FLEET" in html and "<form" not in html.split("<main")[1].split("Recent")[0]
    assert client.post(f"/cards/{personas.fleet_token.pk}/", {"value": "X"}).status_code == 403
    assert client.post("/cards/bulk/", {"card": [personas.fleet_token.pk],
                                        "action": "block"}).status_code == 403
    page(client, finance, "/cards/new/", 403)


@pytest.mark.django_db(transaction=True)
def test_import_page_shows_progress_and_rejections(client, fleet, personas, eager):
    client.force_login(fleet)
    upload = io.BytesIO(b"card_number,holder,expires_at\nP-1,Ann,2030-01-01\n"
                        b"P-2,Bob,someday\nP-3,Cy,\n")
    upload.name = "drivers.csv"
    response = client.post("/cards/import/", {"file": upload,
                                              "organization": personas.fleet_org.pk})
    job = CardImport.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/cards/import/{job.pk}/"
    html = client.get(f"/cards/import/{job.pk}/").content.decode()
    assert "Done" in html and "someday" in html and "Download all 1 as CSV" in html
    # The progress block, as htmx asks for it while the import runs.
    CardImport.objects.filter(pk=job.pk).update(state="running", processed=1)
    fragment = client.get(f"/cards/import/{job.pk}/", headers={
        "HX-Request": "true", "HX-Target": "import-progress"}).content.decode()
    assert fragment.startswith('\n<section id="import-progress"') or "import-progress" in (
        fragment[:200])
    assert 'hx-trigger="every 1s"' in fragment and "<html" not in fragment
    report = client.get(f"/cards/import/{job.pk}/rejections.csv").content.decode()
    assert report.splitlines() == ["line,value,reason",
                                   "3,P-2,'someday' is not a date (YYYY-MM-DD) or date-time."]
    page(client, personas.outsider, f"/cards/import/{job.pk}/", 404)


def test_local_list_pages(client, operator, manager, outsider, personas,
                          django_assert_max_num_queries):
    station = make_station("LIST-1", personas.site_a, ocpp_version="2.0.1", evses=1)
    client.force_login(manager)
    response = client.post(f"/local-lists/{station.pk}/enable/")
    assert response.status_code == 302
    state = LocalListState.objects.get(station=station)
    assert state.enabled and state.sync == "out_of_sync"
    for n in range(20):
        make_station(f"LIST-X{n}", personas.site_a, evses=1)
    with django_assert_max_num_queries(12):
        html = client.get("/local-lists/").content.decode()
    assert "LIST-1" in html and "out of sync" in html and "STATION-B" not in html
    detail = client.get(f"/local-lists/{station.pk}/").content.decode()
    assert "Send the whole list" in detail and "offline" in detail
    pushed = client.post(f"/local-lists/{station.pk}/push/", follow=True).content.decode()
    assert "Station offline." in pushed
    page(client, outsider, f"/local-lists/{station.pk}/", 404)
    assert client.post(f"/local-lists/{station.pk}/push/").status_code == 404
    page(client, personas.fleet, "/local-lists/")  # a fleet admin sees no stations
    assert "LIST-1" not in client.get("/local-lists/").content.decode()


def test_audit_page_filters_and_exports_for_operator_admins_only(client, operator, manager,
                                                                fleet,
                                                                django_assert_max_num_queries):
    audit.record(fleet, AuditEntry.Action.CARD_BLOCKED, "blocked card A-1", target="card:1")
    audit.record(operator, AuditEntry.Action.STATION_CREDENTIALS,
                 "password changed of station X", target="station:X",
                 details={"password": "hunter2-hunter2", "AuthorizationKey": "abcd"})
    for n in range(60):
        audit.record(operator, AuditEntry.Action.EXPORT, f"exported {n} cards")
    client.force_login(operator)
    with django_assert_max_num_queries(8):
        html = client.get("/audit/?actor=fleet").content.decode()
    assert "blocked card A-1" in html and "password changed" not in html
    html = client.get("/audit/?action=station.credentials").content.decode()
    assert "password changed of station X" in html and "hunter2" not in html
    csv_text = b"".join(client.get("/audit/export/?action=card").streaming_content).decode()
    assert csv_text.splitlines()[0] == "at,actor,action,target,summary,details"
    assert "blocked card A-1" in csv_text and "exported" not in csv_text
    assert AuditEntry.objects.filter(action="export", target="audit").exists()
    for user in (manager, fleet):
        page(client, user, "/audit/", 403)
        page(client, user, "/audit/export/", 403)


def test_operator_admin_gives_changes_and_removes_roles(client, operator, personas):
    client.force_login(operator)
    response = client.post("/members/", {"username": "newfleet", "password": "Correct-Horse-9",
                                         "organization": personas.fleet_org.pk,
                                         "role": "fleet_admin"})
    assert response.status_code == 302
    membership = Membership.objects.get(user__username="newfleet")
    assert User.objects.get(username="newfleet").check_password("Correct-Horse-9")
    client.post(f"/members/{membership.pk}/", {"role": "finance"})
    membership.refresh_from_db()
    assert membership.role == "finance"
    client.post(f"/members/{membership.pk}/", {"remove": "1"})
    assert not Membership.objects.filter(pk=membership.pk).exists()
    missing = client.post("/members/", {"username": "ghost", "organization": personas.org_a.pk,
                                        "role": "finance"})
    assert "give a password" in missing.content.decode()
    # The only operator admin cannot take their own role away.
    own = Membership.objects.get(user=operator)
    followed = client.post(f"/members/{own.pk}/", {"role": "finance"}, follow=True)
    assert "last operator admin" in followed.content.decode()
    assert [e.action for e in AuditEntry.objects.order_by("id")] == [
        "user.created", "member.added", "member.role_changed", "member.removed"]
    assert "Correct-Horse-9" not in str(list(AuditEntry.objects.values("details", "summary")))
    client.force_login(personas.manager)
    assert client.get("/members/").status_code == 403
    assert client.post("/members/", {"username": "manager", "organization":
                                     personas.operator_org.pk,
                                     "role": "operator_admin"}).status_code == 403


def test_login_with_password_reaches_the_cards(client, fleet):
    assert client.login(username="fleet", password=PASSWORD)
    assert client.get("/cards/").status_code == 200



def test_who_lets_which_cards_charge_where(client, api, personas, eager):
    """The site's manager agrees to the fleet's cards at his site (the outsider cannot end it);
    roaming needs the operator's offer and the organization's own consent; one session per
    card is the organization's choice."""
    html = page(client, personas.manager, "/cards/access/")
    assert "Properties A" in html and "Fleet" not in html  # no other organization is listed
    client.post("/cards/access/", {"grant": "1", "organization": "Fleet",
                                   "site": personas.site_a.pk})
    agreement = SiteAccess.objects.get()
    assert (agreement.organization, agreement.site) == (personas.fleet_org, personas.site_a)
    assert "Fleet" in page(client, personas.fleet, "/cards/access/")  # theirs to know
    client.force_login(personas.outsider)
    assert client.post("/cards/access/", {"revoke": agreement.pk}).status_code == 404
    refused = api(personas.outsider).post("/api/v1/site-accesses/", {
        "organization": personas.fleet_org.pk, "site": personas.site_a.pk}, format="json")
    assert refused.status_code == 400 and "site" in refused.json()

    # Roaming: the operator cannot consent on the fleet's behalf, nor the fleet offer it.
    policy = f"/api/v1/card-policies/{personas.fleet_org.pk}/"
    assert api(personas.operator).patch(policy, {"roaming_consent": True},
                                        format="json").status_code == 403
    assert api(personas.fleet).patch(policy, {"roaming": True}, format="json").status_code == 403
    assert api(personas.manager).patch(policy, {"roaming": True},
                                       format="json").status_code == 404
    api(personas.operator).patch(policy, {"roaming": True}, format="json")
    consented = api(personas.fleet).patch(policy, {"roaming_consent": True,
                                                   "one_session_per_card": False},
                                          format="json").json()
    assert (consented["roaming"], consented["roaming_consent"],
            consented["one_session_per_card"]) == (True, True, False)
    client.force_login(personas.fleet)
    client.post("/cards/access/", {"organization": personas.fleet_org.pk,
                                   "field": "roaming_consent"})  # unticked: withdrawn
    assert not Organization.objects.get(pk=personas.fleet_org.pk).roaming_consent
    assert list(AuditEntry.objects.order_by("id").values_list("actor_name", "summary")) == [
        ("manager", "let the cards of Fleet charge at Site A"),
        ("operator", "Fleet: roaming offered"),
        ("fleet", "Fleet: roaming consented to, parallel sessions allowed"),
        ("fleet", "Fleet: roaming consent withdrawn")]
