"""`manage.py demo_data`: the demo `make run` serves, loaded on every start."""

import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.db import connection

from accounts import access
from accounts.models import IdToken, Membership, Organization, Site, SiteAccess
from stations.access import stations_for
from stations.models import Station
from stations.services.authorization import authorize

pytestmark = pytest.mark.django_db

MODELS = [Organization, Membership, IdToken, Site, SiteAccess, Station]


@pytest.fixture(autouse=True)
def demo_settings(settings):
    # A person's PBKDF2 costs half a second per password; the demo sets four.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher",
                                 "stations.passwords.ChargerPasswordHasher"]
    # A demo is what runs with DEBUG on (CI's PostgreSQL pass runs with it off).
    settings.DEBUG = True


def demo_data(*args: str) -> str:
    out = io.StringIO()
    call_command("demo_data", *args, stdout=out)
    return out.getvalue()


def counts() -> list[int]:
    return [model.objects.count() for model in MODELS]


def test_demo_data_is_idempotent_and_keeps_changes():
    assert demo_data() == "Demo data: 26 objects created.\n"  # 4 of billing
    before = counts()
    admin = authenticate(username="admin", password="demo-admin-password")
    admin.set_password("changed-by-someone")
    admin.save()
    Station.objects.filter(pk="DEMO-16-0001").update(registration="Rejected")

    assert demo_data() == "Demo data: all present, nothing changed.\n"
    assert counts() == before
    assert authenticate(username="admin", password="changed-by-someone")
    assert Station.objects.get(pk="DEMO-16-0001").registration == "Rejected"


def test_demo_network_is_what_the_readme_promises():
    demo_data()
    site = Site.objects.get(name="Harbour Car Park")
    assert site.time_zone == "Europe/Berlin" and site.organization.name == "Harbour Properties"
    stations = Station.objects.all()
    assert [s.pk for s in stations] == ["DEMO-16-0001", "DEMO-16-0003", "DEMO-201-0002",
                                        "DEMO-201-0004"]
    for station in stations:
        assert station.site == site and station.security_profile == 1
        assert station.check_password("demo-charger-password")

    users = {name: authenticate(username=name, password=f"demo-{name}-password")
             for name in ["admin", "manager", "fleet", "finance"]}
    assert all(users.values())
    assert users["admin"].is_superuser and not users["manager"].is_staff
    assert stations_for(users["manager"]).count() == 4
    assert access.may_operate(users["manager"]) and not access.may_operate(users["finance"])
    assert access.sees_everything(users["finance"])
    assert [t.value for t in access.id_tokens_for(users["fleet"])] == ["DEMO-CARD-3"]

    # What the demo's stations tell each card: the fleet's charges there by agreement.
    status = {t.value: authorize(stations[0], t.value).status for t in IdToken.objects.all()}
    assert status == {"DEMO-CARD-1": "Accepted", "DEMO-CARD-2": "Accepted",
                      "DEMO-CARD-3": "Accepted", "DEMO-BLOCKED": "Blocked",
                      "DEMO-EXPIRED": "Expired"}


def test_demo_data_refuses_a_production_database(settings, monkeypatch):
    settings.DEBUG = False
    monkeypatch.setattr(connection, "vendor", "postgresql")
    with pytest.raises(CommandError, match=r"demo passwords are public.*--force"):
        demo_data()
    assert counts() == [0, 0, 0, 0, 0, 0]

    settings.DEBUG = True
    assert "26 objects created" in demo_data()


def test_demo_data_loads_into_production_database_when_forced(settings, monkeypatch):
    settings.DEBUG = False
    monkeypatch.setattr(connection, "vendor", "postgresql")
    assert "26 objects created" in demo_data("--force")
