"""Shared fixtures: the personas of tests/support/personas.py, and API clients acting as one of
them.

    def test_outsider_cannot_see_a(api, outsider, station_a):
        assert api(outsider).get(f"/api/v1/stations/{station_a.pk}/").status_code == 404

For pages, Django's own `client` fixture does: `client.force_login(manager)`.
"""

from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import IdToken, Site
from billing.models import Issuer, Tariff
from csms.gateway import auth
from stations.models import Station
from tests.support import personas as cast
from tests.support.billing_cast import billing_cast
from tests.support.personas import Personas

# The browser tests' fixtures, `server` and `dashboard`, for the browser tests of every folder.
pytest_plugins = ["tests.support.browser"]


@pytest.fixture(autouse=True)
def _no_persistent_connections(settings) -> None:
    """Gateway code runs in worker threads, each with its own connection; kept open, they
    would outlive the test and block dropping the test database at the end of the run."""
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True)
def _fresh_rate_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Failed charger logins and onboardings are counted per address (and station); every test
    charger comes from 127.0.0.1 and many share ids: without this, refusal tests would add up
    to a rate limit for later tests. The counters a test made are dropped after it."""
    counted: set[str] = set()
    count = auth._count

    def counting(key: str, window: int) -> int:
        counted.add(key)
        return count(key, window)

    monkeypatch.setattr(auth, "_count", counting)
    yield
    auth._counter().delete_many(list(counted))


@pytest.fixture
def personas(db) -> Personas:
    """The whole cast, created in the test's database."""
    return cast.create()


@pytest.fixture
def operator(personas: Personas) -> User:
    """Operator admin: sees and operates everything."""
    return personas.operator


@pytest.fixture
def finance(personas: Personas) -> User:
    """Finance: sees everything, changes and commands nothing."""
    return personas.finance


@pytest.fixture
def manager(personas: Personas) -> User:
    """Property manager of org_a: site_a and station_a are theirs."""
    return personas.manager


@pytest.fixture
def outsider(personas: Personas) -> User:
    """Property manager of org_b: must never see anything of org_a."""
    return personas.outsider


@pytest.fixture
def fleet(personas: Personas) -> User:
    """Fleet admin of fleet_org: its ID tokens, and the sessions charged with them anywhere."""
    return personas.fleet


@pytest.fixture(name="cast")
def billing_cast_fixture(personas: Personas) -> tuple[Issuer, Tariff]:
    """Billing's additions (tests/support/billing_cast.py): the operator invoices, site A has a
    tariff, the fleet has billing details."""
    return billing_cast(personas)


@pytest.fixture
def site_a(personas: Personas) -> Site:
    return personas.site_a


@pytest.fixture
def site_b(personas: Personas) -> Site:
    return personas.site_b


@pytest.fixture
def station_a(personas: Personas) -> Station:
    return personas.station_a


@pytest.fixture
def station_b(personas: Personas) -> Station:
    return personas.station_b


@pytest.fixture
def tokens(db) -> None:
    """Cards of no organization that the gateway's tests' chargers name: CARD-1 valid,
    CARD-BLOCKED blocked, CARD-OLD expired."""
    IdToken.objects.create(value="CARD-1")
    IdToken.objects.create(value="CARD-BLOCKED", status=IdToken.Status.BLOCKED)
    IdToken.objects.create(value="CARD-OLD", expires_at="2020-01-01T00:00:00Z")


@pytest.fixture
def api(db) -> Callable[[User | None], APIClient]:
    """api(user): a DRF client sending user's API token, as an integration would; api() is
    anonymous."""

    def make(user: User | None = None) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def eager():
    """Celery tasks run in-process for this test, on the production path too (where the tests
    that need a real worker start one: tests/support/servers.py's celery_worker)."""
    from csms.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker) -> Iterator[None]:
    """pytest-django's, ending the test database's other sessions before it drops it. Servers
    that tests run in threads of this process (browser tests, live servers) keep their sync
    thread's connection open while their event loop lives; PostgreSQL refuses to drop a
    database in use, and every run left its test database behind."""
    yield
    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
