"""`manage.py demo_data`: the demo network that `make run` serves and simulates.

Idempotent, so `make run` loads it every time: what is missing is created, what exists is left
as it is (a demo password someone changed stays changed).
"""

from datetime import UTC, datetime, time
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from accounts.models import IdToken, Membership, Organization, Site, SiteAccess
from billing.models import CustomerAccount, Issuer, Tariff
from billing.tariffs import WindowSpec, assign, create_tariff
from stations.models import Station

Kind = Organization.Kind
Role = Membership.Role

ORGANIZATIONS = {
    "Demo Operator": Kind.OPERATOR,
    "Harbour Properties": Kind.PROPERTY,
    "Blue Fleet": Kind.FLEET,
}
# username: (password, organization, role); admin is also a superuser.
USERS = {
    "admin": ("demo-admin-password", "Demo Operator", Role.OPERATOR_ADMIN),
    "manager": ("demo-manager-password", "Harbour Properties", Role.PROPERTY_MANAGER),
    "fleet": ("demo-fleet-password", "Blue Fleet", Role.FLEET_ADMIN),
    "finance": ("demo-finance-password", "Demo Operator", Role.FINANCE),
}
# value: (status, expires_at, organization)
TOKENS = {
    "DEMO-CARD-1": (IdToken.Status.ACCEPTED, None, "Demo Operator"),
    "DEMO-CARD-2": (IdToken.Status.ACCEPTED, None, "Demo Operator"),
    "DEMO-CARD-3": (IdToken.Status.ACCEPTED, None, "Blue Fleet"),
    "DEMO-BLOCKED": (IdToken.Status.BLOCKED, None, "Demo Operator"),
    # Accepted but past its expiry: chargers must be told Expired.
    "DEMO-EXPIRED": (IdToken.Status.ACCEPTED, datetime(2024, 1, 1, tzinfo=UTC), "Demo Operator"),
}
SITE = ("Harbour Car Park", "Harbour Properties", "Europe/Berlin")
# The ids `make run`'s simulator connects with (--prefix DEMO --version mix).
STATIONS = ["DEMO-16-0001", "DEMO-201-0002", "DEMO-16-0003", "DEMO-201-0004"]
CHARGER_PASSWORD = "demo-charger-password"
# Billing: the operator invoices; the car park's tariff; customers' invoice addresses.
DEMO_TARIFF = "Harbour standard"
DEMO_ISSUER = {"legal_name": "Demo Operator GmbH", "street": "Kaistraße 7", "postcode": "20457",
               "city": "Hamburg", "country": "DE", "vat_id": "DE811111111",
               "email": "billing@demo-operator.example", "iban": "DE02120300000000202051",
               "bic": "BYLADEM1001", "number_prefix": "DEMO-"}
DEMO_FLEET_ACCOUNT = {"legal_name": "Blue Fleet Logistics AG", "street": "Ring 5",
                      "postcode": "10115", "city": "Berlin", "country": "DE",
                      "vat_id": "DE922222222", "buyer_reference": "BF-EV-2026"}
DEMO_OPERATOR_ACCOUNT = {"legal_name": "Demo Operator GmbH (staff cards)",
                         "street": "Kaistraße 7", "postcode": "20457", "city": "Hamburg",
                         "country": "DE"}


class Command(BaseCommand):
    help = "Load the demo network (organizations, users, site, stations, ID tokens); idempotent."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="load even into a production-like database (DEBUG off, not SQLite)",
        )

    def handle(self, *args, force: bool, **options) -> None:
        if not force and not settings.DEBUG and connection.vendor != "sqlite":
            raise CommandError(
                f"Refusing to load demo data into a {connection.vendor} database with DEBUG "
                "off: it looks like production, and the demo passwords are public. "
                "Use --force if this really is a demo."
            )
        with transaction.atomic():
            created = load()
        self.stdout.write(
            f"Demo data: {created} objects created."
            if created
            else "Demo data: all present, nothing changed."
        )


def load() -> int:
    """Create what is missing; returns how many objects were created."""
    created = 0
    organizations = {}
    for name, kind in ORGANIZATIONS.items():
        organizations[name], new = Organization.objects.get_or_create(
            name=name, defaults={"kind": kind}
        )
        created += new

    for username, (password, organization, role) in USERS.items():
        superuser = username == "admin"
        user, new = User.objects.get_or_create(
            username=username, defaults={"is_superuser": superuser, "is_staff": superuser}
        )
        if new:
            user.set_password(password)
            user.save(update_fields=["password"])
        _, new_membership = Membership.objects.get_or_create(
            user=user, organization=organizations[organization], defaults={"role": role}
        )
        created += new + new_membership

    for value, (status, expires_at, organization) in TOKENS.items():
        _, new = IdToken.objects.get_or_create(
            value=value,
            defaults={
                "status": status,
                "expires_at": expires_at,
                "organization": organizations[organization],
                "holder": "Demo driver",
            },
        )
        created += new

    site_name, owner, time_zone = SITE
    site, new = Site.objects.get_or_create(
        name=site_name, organization=organizations[owner], defaults={"time_zone": time_zone}
    )
    created += new
    # The fleet's drivers charge at the car park: its owner agreed to the fleet's cards.
    _, new = SiteAccess.objects.get_or_create(organization=organizations["Blue Fleet"],
                                              site=site)
    created += new

    for station_id in STATIONS:
        station, new = Station.objects.get_or_create(
            pk=station_id,
            defaults={
                "site": site,
                "security_profile": Station.SecurityProfile.BASIC,
            },
        )
        if new:
            station.set_password(CHARGER_PASSWORD)
            station.save(update_fields=["password_hash"])
        created += new
    return created + load_billing(organizations, site)


def load_billing(organizations: dict[str, Organization], site: Site) -> int:
    """Who invoices, the fleet's billing details, and the car park's tariff (with a cheaper
    night and an idle fee), so the demo's sessions show costs and can be invoiced."""
    created = 0
    operator, fleet = organizations["Demo Operator"], organizations["Blue Fleet"]
    issuer, new = Issuer.objects.get_or_create(organization=operator, defaults=DEMO_ISSUER)
    created += new
    for organization, details in ((fleet, DEMO_FLEET_ACCOUNT),
                                  (operator, DEMO_OPERATOR_ACCOUNT)):
        _, new = CustomerAccount.objects.get_or_create(organization=organization,
                                                       defaults=details)
        created += new
    if not Tariff.objects.filter(issuer=issuer, name=DEMO_TARIFF).exists():
        night = WindowSpec("night", "0123456", time(22), time(6), Decimal("0.29"),
                           Decimal("0"))
        tariff = create_tariff(
            issuer=issuer, name=DEMO_TARIFF, valid_from=datetime(2024, 1, 1, tzinfo=UTC),
            windows=[night], price_kwh=Decimal("0.39"), session_fee=Decimal("0.50"),
            idle_price_minute=Decimal("0.10"), idle_grace_minutes=30, vat_rate=Decimal("19"))
        assign(tariff, site=site)
        created += 1
    return created
