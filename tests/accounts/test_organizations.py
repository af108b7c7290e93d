"""Organizations and sites: operator admins create and change them in the dashboard and the API
(audited, checked, readable errors), everyone else reads what they may see, and an empty
installation guides its operator admin to its first organization and site."""

import pytest
from django.contrib.auth.models import User

from accounts import access, organizations
from accounts.models import AuditEntry, Organization, Site
from tests.support.personas import make_station

pytestmark = pytest.mark.django_db

ORGANIZATIONS = "/api/v1/organizations/"
SITES = "/api/v1/sites/"


# --- the dashboard -------------------------------------------------------------------------------

def test_operator_admin_creates_an_organization_and_its_site_in_the_dashboard(client, operator):
    client.force_login(operator)
    created = client.post("/organizations/", {"name": "Quayside Homes", "kind": "property"})
    organization = Organization.objects.get(name="Quayside Homes")
    assert created.status_code == 302
    assert created["Location"] == f"/organizations/{organization.pk}/"
    page = client.get(created["Location"]).content.decode()
    assert "No site yet" in page and 'action="/organizations/sites/new/"' in page
    added = client.post("/organizations/sites/new/", {
        "name": "Quayside car park", "organization": organization.pk,
        "address": "1 Quay Street", "time_zone": "Europe/Berlin"})
    assert added.status_code == 302
    site = Site.objects.get(name="Quayside car park")
    assert (site.organization, site.time_zone) == (organization, "Europe/Berlin")
    assert "Quayside car park" in client.get(f"/organizations/{organization.pk}/").content.decode()
    assert [entry.action for entry in AuditEntry.objects.order_by("id")] == [
        "organization.created", "site.created"]


def test_mistakes_are_said_in_words_and_nothing_is_stored(client, operator, personas):
    client.force_login(operator)
    twin = client.post("/organizations/", {"name": personas.org_a.name.upper(),
                                           "kind": "property"})
    assert "There is an organization named" in twin.content.decode()
    blank = client.post("/organizations/", {"name": "   ", "kind": "fleet"})
    assert blank.status_code == 200 and "required" in blank.content.decode()
    nowhere = client.post("/organizations/sites/new/", {
        "name": "Lost", "organization": personas.org_a.pk, "time_zone": "Mars/Olympus"})
    assert "Mars/Olympus is not one of the available choices" in nowhere.content.decode()
    assert not Site.objects.filter(name="Lost").exists()
    assert not AuditEntry.objects.exists()


def test_moving_a_site_to_another_organization_changes_who_sees_it(client, operator, manager,
                                                                    outsider, personas):
    client.force_login(operator)
    site = personas.site_a
    moved = client.post(f"/organizations/sites/{site.pk}/", {
        "name": "Harbour renamed", "organization": personas.org_b.pk, "address": "",
        "time_zone": "UTC"})
    assert moved.status_code == 302
    assert not access.sites_for(manager).filter(pk=site.pk).exists()
    assert access.sites_for(outsider).filter(pk=site.pk).exists()
    entry = AuditEntry.objects.get(action="site.changed")
    assert entry.details["organization"] == [personas.org_a.pk, personas.org_b.pk]
    assert entry.target == f"site:{site.pk}"


def test_organization_pages_are_operator_admins_only(client, manager, finance, fleet, personas):
    for user in (manager, finance, fleet):
        client.force_login(user)
        for url in ("/organizations/", f"/organizations/{personas.org_a.pk}/",
                    "/organizations/sites/new/", f"/organizations/sites/{personas.site_a.pk}/"):
            assert client.get(url).status_code == 403, (user, url)
        assert client.post("/organizations/", {"name": "Mine", "kind": "operator"}
                           ).status_code == 403
    assert not Organization.objects.filter(name="Mine").exists()


# --- the first run -------------------------------------------------------------------------------

def test_an_empty_installation_guides_the_operator_admin_to_its_first_site(client):
    """After `createsuperuser` on an empty database: organization, site, stations, people."""
    admin = User.objects.create_superuser("first", password="x")
    client.force_login(admin)
    overview = client.get("/").content.decode()
    assert "Getting started" in overview
    assert '<a href="/organizations/"><strong>Create the first organization</strong>' in overview
    client.post("/organizations/", {"name": "Harbour Properties", "kind": "property"})
    overview = client.get("/").content.decode()
    assert "<s>Create the first organization</s>" in overview
    assert '<a href="/organizations/"><strong>Add its first site</strong>' in overview
    organization = Organization.objects.get()
    client.post("/organizations/sites/new/", {"name": "Harbour", "organization": organization.pk,
                                              "time_zone": "UTC"})
    assert "<s>Add its first site</s>" in client.get("/").content.decode()
    make_station("FIRST-1", Site.objects.get())
    assert "Getting started" not in client.get("/").content.decode()


def test_nobody_but_an_operator_admin_is_guided(client):
    viewer = User.objects.create_user("viewer", password="x")
    client.force_login(viewer)
    assert "Getting started" not in client.get("/").content.decode()


# --- the API -------------------------------------------------------------------------------------

def test_operator_admin_creates_and_changes_organizations_and_sites_over_the_api(api, operator):
    client = api(operator)
    created = client.post(ORGANIZATIONS, {"name": "Depot Fleet", "kind": "fleet"}, format="json")
    assert created.status_code == 201, created.content
    organization = created.json()
    assert organization["kind"] == "fleet"
    site = client.post(SITES, {"name": "Depot", "organization": organization["id"],
                               "time_zone": "Europe/Paris"}, format="json")
    assert site.status_code == 201, site.content
    assert site.json()["address"] == ""
    renamed = client.patch(f"{ORGANIZATIONS}{organization['id']}/", {"name": "Depot Fleet Ltd"},
                           format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Depot Fleet Ltd"
    moved = client.patch(f"{SITES}{site.json()['id']}/", {"time_zone": "UTC"}, format="json")
    assert moved.status_code == 200 and moved.json()["time_zone"] == "UTC"
    assert client.delete(f"{SITES}{site.json()['id']}/").status_code == 405
    assert [entry.action for entry in AuditEntry.objects.order_by("id")] == [
        "organization.created", "site.created", "organization.changed", "site.changed"]


def test_api_mistakes_are_readable_400s(api, operator, personas):
    client = api(operator)
    twin = client.post(ORGANIZATIONS, {"name": personas.org_a.name.lower()}, format="json")
    assert twin.status_code == 400 and "There is an organization named" in twin.json()["detail"]
    kind = client.post(ORGANIZATIONS, {"name": "Odd", "kind": "cooperative"}, format="json")
    assert kind.status_code == 400 and "kind" in kind.json()
    zone = client.post(SITES, {"name": "Z", "organization": personas.org_a.pk,
                               "time_zone": "Nowhere/Else"}, format="json")
    assert zone.status_code == 400 and "time_zone" in zone.json()


def test_others_read_their_own_and_write_nothing(api, manager, finance, personas):
    mine = api(manager)
    assert [row["name"] for row in mine.get(ORGANIZATIONS).json()["results"]] == [
        personas.org_a.name]
    assert [row["id"] for row in mine.get(SITES).json()["results"]] == [personas.site_a.pk]
    assert mine.get(f"{SITES}{personas.site_b.pk}/").status_code == 404
    reader = api(finance)
    assert len(reader.get(ORGANIZATIONS).json()["results"]) == Organization.objects.count()
    for client in (mine, reader):
        assert client.post(ORGANIZATIONS, {"name": "Sneaky"}, format="json").status_code == 403
        assert client.patch(f"{SITES}{personas.site_a.pk}/", {"organization": personas.org_b.pk},
                            format="json").status_code == 403
    assert Site.objects.get(pk=personas.site_a.pk).organization == personas.org_a


def test_the_action_functions_keep_names_unique_whatever_their_case(operator, personas):
    with pytest.raises(organizations.OrganizationError, match="already"):
        organizations.organization_change(operator, personas.org_b, personas.org_a.name.upper(),
                                          personas.org_b.kind)
    assert organizations.organization_change(operator, personas.org_b, personas.org_b.name,
                                             personas.org_b.kind) == personas.org_b
    assert not AuditEntry.objects.exists()  # no change, nothing to audit
