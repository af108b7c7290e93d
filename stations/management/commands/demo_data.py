"""`manage.py demo_data`: the demo network that `make run` serves and simulates.

Idempotent, so `make run` loads it every time: what is missing is created, what exists is left
as it is (a demo password someone changed stays changed).
"""

from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from accounts.models import IdToken, Membership, Organization
from stations.models import Site, Station

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
    return created
