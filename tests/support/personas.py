"""The cast of the test suite, in the style of healthchecks' BaseTestCase: one small network with
a person per role, so a test says who acts and checks what that person may see and do.

    organization           person (role)                 owns
    operator_org operator  operator (operator_admin)     token (the operator's card)
                           finance (finance)
    org_a property         manager (property_manager)    site_a: station_a
    org_b property         outsider (property_manager)   site_b: station_b
    fleet_org fleet        fleet (fleet_admin)           fleet_token

Every person's password is PASSWORD. Stations use security profile 1 with CHARGER_PASSWORD, have
EVSE 1 with connector 1 reported Available, and have never connected (no OCPP version known).

tests/conftest.py offers each of these as a fixture of the same name (and `personas` for all of
them); the helpers below build more of the same for a test that needs it, and the stations the
chargers of tests/support/chargers.py connect as.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from accounts.models import IdToken, Membership, Organization, Site
from stations import records
from stations.models import Station, Transaction, TransactionMessage
from stations.services import batch, transactions

PASSWORD = "persona-password"
CHARGER_PASSWORD = "persona-charger-password"
Role = Membership.Role


@dataclass(frozen=True, slots=True)
class Personas:
    operator_org: Organization
    org_a: Organization
    org_b: Organization
    fleet_org: Organization
    operator: User
    finance: User
    manager: User
    outsider: User
    fleet: User
    site_a: Site
    site_b: Site
    station_a: Station
    station_b: Station
    token: IdToken
    fleet_token: IdToken


def create() -> Personas:
    operator_org = Organization.objects.create(name="Operator", kind=Organization.Kind.OPERATOR)
    org_a = Organization.objects.create(name="Properties A", kind=Organization.Kind.PROPERTY)
    org_b = Organization.objects.create(name="Properties B", kind=Organization.Kind.PROPERTY)
    fleet_org = Organization.objects.create(name="Fleet", kind=Organization.Kind.FLEET)
    site_a = Site.objects.create(name="Site A", organization=org_a, time_zone="Europe/Berlin")
    site_b = Site.objects.create(name="Site B", organization=org_b, time_zone="Europe/Berlin")
    return Personas(
        operator_org=operator_org, org_a=org_a, org_b=org_b, fleet_org=fleet_org,
        operator=make_user("operator", operator_org, Role.OPERATOR_ADMIN),
        finance=make_user("finance", operator_org, Role.FINANCE),
        manager=make_user("manager", org_a, Role.PROPERTY_MANAGER),
        outsider=make_user("outsider", org_b, Role.PROPERTY_MANAGER),
        fleet=make_user("fleet", fleet_org, Role.FLEET_ADMIN),
        site_a=site_a, site_b=site_b,
        station_a=make_station("STATION-A", site_a, evses=1),
        station_b=make_station("STATION-B", site_b, evses=1),
        token=IdToken.objects.create(value="TOKEN-OPERATOR", organization=operator_org),
        fleet_token=IdToken.objects.create(value="TOKEN-FLEET", organization=fleet_org),
    )


@cache
def _hashed(raw: str, hasher: str = "default") -> str:
    # Hashing costs up to half a second (a person's PBKDF2): once per test run, not per user.
    return make_password(raw, hasher=hasher)


def make_user(username: str, organization: Organization, role: str) -> User:
    """A person with one role in one organization, who can log in with PASSWORD."""
    user = User.objects.create(username=username, password=_hashed(PASSWORD))
    Membership.objects.create(user=user, organization=organization, role=role)
    return user


def make_station(station_id: str, site: Site | None = None, *, evses: int = 0, profile: int = 1,
                 **fields: Any) -> Station:
    """A station that knows CHARGER_PASSWORD (any security profile but 0), disconnected.

    evses: how many EVSEs (connector 1 each) reported Available; none by default, a station
    that never told what it has. fields: any other of the station's fields, e.g. the
    ocpp_version it spoke when it last connected ("" for never), or connected=True.
    """
    station = Station.objects.create(
        pk=station_id, site=site, security_profile=profile,
        password_hash=_hashed(CHARGER_PASSWORD, "charger_pbkdf2") if profile else "", **fields,
    )
    if evses:
        with transaction.atomic():
            for number in range(1, evses + 1):
                batch.status_record(station, evse=number, connector=1, status="Available")
    return station


def status(station: Station, state: str, at: datetime | None = None, evse: int = 1) -> None:
    """A connector's status as its charger reports it (at `at`, or now), through the domain."""
    with transaction.atomic():
        batch.status_record(station, evse=evse, connector=1, status=state, timestamp=at)


def make_transaction(station: Station, token: IdToken | None = None, *, evse: int = 1,
                     start_wh: Decimal = Decimal("1000"), stop_wh: Decimal | None = None,
                     started_at: datetime | None = None) -> Transaction:
    """A session as a charger reports it (through the domain's writer): started, and completed
    when stop_wh is given."""
    started_at = started_at or timezone.now() - timedelta(hours=1)
    with transaction.atomic():
        tx, _ = transactions.transaction_report(station, records.TransactionReport(
            kind=TransactionMessage.Kind.START, timestamp=started_at, evse=evse, connector=1,
            id_token=token.value if token else None, meter_wh=start_wh,
        ))
        if stop_wh is not None:
            tx, _ = transactions.transaction_report(station, records.TransactionReport(
                kind=TransactionMessage.Kind.END, timestamp=started_at + timedelta(minutes=30),
                transaction_id=tx.transaction_id, meter_wh=stop_wh, stop_reason="Local",
            ))
    return tx
