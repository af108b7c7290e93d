"""Billing's additions to the cast of tests/support/personas.py: an issuer, tariffs, and sessions
that chargers report through the domain's writers (so billing prices them as it would live)."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction

from accounts.models import IdToken, Organization, SiteAccess
from billing import tariffs
from billing.models import CustomerAccount, Issuer, Tariff
from stations import records
from stations.models import Connector, Station, StatusChange, Transaction, TransactionMessage
from stations.services import batch, transactions
from tests.support.personas import Personas, status

D = Decimal
TARIFF_START = datetime.fromisoformat("2026-01-01T00:00:00+00:00")


def at(text: str) -> datetime:
    """A UTC moment written without its zone: at("2026-11-02T10:00")."""
    return datetime.fromisoformat(text + "+00:00")


def make_issuer(organization: Organization, **details) -> Issuer:
    return Issuer.objects.create(
        organization=organization, legal_name=details.pop("legal_name", "Operator GmbH"),
        street="Hafenstraße 1", postcode="20457", city="Hamburg", country="DE",
        vat_id="DE123456789", email="billing@operator.example", iban="DE89370400440532013000",
        bic="COBADEFFXXX", **details)


def make_customer_account(organization: Organization) -> CustomerAccount:
    return CustomerAccount.objects.create(
        organization=organization, legal_name=f"{organization.name} AG", street="Ring 5",
        postcode="10115", city="Berlin", country="DE", vat_id="DE987654321",
        buyer_reference="FLEET-42")


def make_tariff(issuer: Issuer, *, site=None, station=None, customer=None,
                valid_from: datetime = TARIFF_START,
                windows=(), **prices) -> Tariff:
    prices = {"price_kwh": D("0.40"), "vat_rate": D("19"), **prices}
    tariff = tariffs.create_tariff(issuer=issuer, name=prices.pop("name", "Standard"),
                                   valid_from=valid_from, windows=list(windows), **prices)
    if site is not None or station is not None:
        tariffs.assign(tariff, site=site, station=station, customer=customer)
    return tariff


def billing_cast(personas: Personas) -> tuple[Issuer, Tariff]:
    """The operator invoices; site A charges 0.40 €/kWh + 19 % VAT and takes the fleet's
    cards (an agreement); the fleet has details.

    The stations' first status reports are moved to 2020: the sessions of the tests happen in
    2026 and must not find an "Available" of the test run's own day after them."""
    long_ago = datetime.fromisoformat("2020-01-01T00:00:00+00:00")
    StatusChange.objects.update(timestamp=long_ago)
    Connector.objects.update(status_at=long_ago)
    issuer = make_issuer(personas.operator_org)
    make_customer_account(personas.fleet_org)
    SiteAccess.objects.create(organization=personas.fleet_org, site=personas.site_a)
    return issuer, make_tariff(issuer, site=personas.site_a)


def charge(station: Station, token: IdToken | None, *, start: datetime,
           readings: list[tuple[int, int]], stop: int | None = None,
           unplug: int | str | None = "stop", reason: str = "Local", evse: int = 1
           ) -> Transaction:
    """A session as a charger reports it: the connector occupied and the session started at
    `start` with the first reading, meter values at (minutes after start, Wh), stopped `stop`
    minutes after start with the last reading (still running when stop is None), and the car
    unplugged `unplug` minutes after start (at the stop by default; None: still plugged)."""
    first_wh = readings[0][1]
    status(station, "Occupied", start, evse)
    with transaction.atomic():
        tx, _ = transactions.transaction_report(station, records.TransactionReport(
            kind=TransactionMessage.Kind.START, timestamp=start, evse=evse, connector=1,
            id_token=token.value if token else None, meter_wh=D(first_wh)))
    for minutes, wh in readings[1:]:
        with transaction.atomic():
            batch.meter_values_record(station, evse=evse, transaction_id=tx.transaction_id,
                                         samples=[records.Sample(
                                             start + timedelta(minutes=minutes), D(wh))])
    if stop is not None:
        with transaction.atomic():
            tx, _ = transactions.transaction_report(station, records.TransactionReport(
                kind=TransactionMessage.Kind.END, timestamp=start + timedelta(minutes=stop),
                transaction_id=tx.transaction_id, meter_wh=D(readings[-1][1]),
                stop_reason=reason))
    if unplug == "stop":
        unplug = stop
    if unplug is not None:
        status(station, "Available", start + timedelta(minutes=unplug), evse)
    tx.refresh_from_db()
    return tx


def fleet_sessions(personas: Personas, days: tuple[int, ...] = (3, 10)) -> list[Transaction]:
    """The fleet's card charges 12.5 kWh at station A on these November days: 5.00 net each."""
    return [charge(personas.station_a, personas.fleet_token, start=at(f"2026-11-{day:02d}T08:00"),
                   readings=[(0, 0), (60, 12500)], stop=60) for day in days]


def customers_with_a_session(personas: Personas, count: int) -> list[Organization]:
    """`count` fleets with a card each and one 4.00 € session at station A in November."""
    customers = []
    for n in range(count):
        customer = Organization.objects.create(name=f"Customer {n}",
                                               kind=Organization.Kind.FLEET)
        token = IdToken.objects.create(value=f"CARD-{n}", organization=customer)
        charge(personas.station_a, token, start=at(f"2026-11-{n + 2:02d}T10:00"),
               readings=[(0, 0), (60, 10000)], stop=60)
        customers.append(customer)
    return customers
