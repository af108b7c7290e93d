"""Writing tariffs: a new tariff, a new version of one (the only way prices change), and where
a tariff applies. Views and the API call these; they validate what a person typed."""

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db import transaction as db
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEntry, Organization, Site
from billing.models import Issuer, Tariff, TariffAssignment, TariffVersion, TimeWindow
from stations.models import Station

PRICE_FIELDS = ("price_kwh", "price_minute", "session_fee", "idle_price_minute",
                "idle_grace_minutes", "min_price", "max_price", "vat_rate",
                "bills_empty_sessions", "note")
_MINUTES_A_WEEK = 7 * 24 * 60


@dataclass(frozen=True, slots=True)
class WindowSpec:
    label: str
    weekdays: str
    start: time
    end: time
    price_kwh: Decimal
    price_minute: Decimal


def _minutes_of(window: WindowSpec) -> set[int]:
    """The minutes of the week a window covers (0 = Monday 00:00)."""
    if window.start.second or window.end.second:
        raise ValidationError(f"{window.label}: window edges are whole minutes.")
    start = window.start.hour * 60 + window.start.minute
    end = window.end.hour * 60 + window.end.minute
    length = end - start if end > start else end - start + 24 * 60
    covered = set()
    for day in {int(d) for d in window.weekdays}:
        first = day * 24 * 60 + start
        covered |= {(first + m) % _MINUTES_A_WEEK for m in range(length)}
    return covered


def check_windows(windows: list[WindowSpec]) -> None:
    """Windows may not overlap: each moment of the week has one price. Labels are unique in a
    version: the breakdown, invoices and exports name a window by its label, and two windows
    of one name would read as one price."""
    seen: dict[int, str] = {}
    labels: set[str] = set()
    for window in windows:
        label = window.label.strip()
        if not label:
            raise ValidationError("Every time window needs a label (e.g. night).")
        if label.casefold() in labels:
            raise ValidationError(f"Two time windows are called {label}: give each its own "
                                  "label (e.g. night weekdays, night weekend).")
        labels.add(label.casefold())
        if not window.weekdays or set(window.weekdays) - set("0123456"):
            raise ValidationError(f"{window.label}: pick at least one weekday.")
        for minute in _minutes_of(window):
            if minute in seen:
                day, rest = divmod(minute, 24 * 60)
                raise ValidationError(
                    f"Time windows {seen[minute]} and {window.label} overlap "
                    f"(day {day}, {rest // 60:02d}:{rest % 60:02d}).")
            seen[minute] = window.label


def create_tariff(*, issuer: Issuer, name: str, currency: str = "EUR",
                  valid_from: datetime | None = None, windows: list[WindowSpec] = (),
                  user: AbstractBaseUser | None = None, **prices) -> Tariff:
    with db.atomic():
        tariff = Tariff(issuer=issuer, name=name, currency=currency)
        tariff.full_clean()
        tariff.save()
        audit.record(user, AuditEntry.Action.TARIFF_CREATED,
                     f"created tariff {tariff.name} ({tariff.currency}, issuer {issuer})",
                     target=f"tariff:{tariff.pk}")
        add_version(tariff, valid_from=valid_from or timezone.now(), windows=windows,
                    user=user, now=valid_from, **prices)
    return tariff


def add_version(tariff: Tariff, *, valid_from: datetime, windows: list[WindowSpec] = (),
                user: AbstractBaseUser | None = None, now: datetime | None = None,
                **prices) -> TariffVersion:
    """Change a tariff's prices from `valid_from` on. Never backwards: the new version starts
    after the latest one and not before now, so no priced session's version changes."""
    now = now or timezone.now()
    unknown = set(prices) - set(PRICE_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown tariff fields: {', '.join(sorted(unknown))}")
    check_windows(list(windows))
    with db.atomic():
        latest = (TariffVersion.objects.select_for_update().filter(tariff=tariff)
                  .order_by("-valid_from").first())
        if valid_from < now.replace(microsecond=0):
            raise ValidationError("A new version cannot start in the past: sessions already "
                                  "priced keep their prices. Pick now or a later time.")
        if latest is not None and valid_from <= latest.valid_from:
            raise ValidationError(f"A new version must start after version {latest.number} "
                                  f"({latest.valid_from:%Y-%m-%d %H:%M} UTC).")
        version = TariffVersion(tariff=tariff, number=(latest.number + 1) if latest else 1,
                                valid_from=valid_from, created_by=user, **prices)
        version.full_clean(exclude=["tariff"])
        version.save()
        TimeWindow.objects.bulk_create([
            TimeWindow(version=version, label=w.label.strip()[:50], weekdays=w.weekdays,
                       start=w.start, end=w.end, price_kwh=w.price_kwh,
                       price_minute=w.price_minute)
            for w in windows
        ])
        audit.record(user, AuditEntry.Action.TARIFF_VERSION,
                     f"{tariff.name} version {version.number} valid from "
                     f"{valid_from:%Y-%m-%d %H:%M} UTC", target=f"tariff:{tariff.pk}",
                     details={name: str(value) for name, value in prices.items()}
                     | {"windows": [f"{w.label} {w.weekdays} {w.start:%H:%M}-{w.end:%H:%M} "
                                    f"{w.price_kwh}/kWh {w.price_minute}/min" for w in windows]})
    return version


def assign(tariff: Tariff, *, site: Site | None = None, station: Station | None = None,
           customer: Organization | None = None,
           user: AbstractBaseUser | None = None) -> TariffAssignment:
    """Price the sessions of a site or a station (for one customer, or everyone) with a tariff.
    Replaces what applied to exactly that place and customer before."""
    if (site is None) == (station is None):
        raise ValidationError("Assign a tariff to a site or to a station.")
    try:
        with db.atomic():
            replaced = list(TariffAssignment.objects.filter(site=site, station=station,
                                                            customer=customer)
                            .values_list("tariff__name", flat=True))
            TariffAssignment.objects.filter(site=site, station=station,
                                            customer=customer).delete()
            assignment = TariffAssignment.objects.create(tariff=tariff, site=site,
                                                         station=station, customer=customer)
            audit.record(user, AuditEntry.Action.TARIFF_ASSIGNED, str(assignment),
                         target=f"tariff:{tariff.pk}", details={
                             "site": site.pk if site else None,
                             "station": station.pk if station else None,
                             "customer": customer.pk if customer else None,
                             "replaced": replaced})
            return assignment
    except IntegrityError:
        raise ValidationError("That place already has a tariff for that customer.") from None


def unassign(assignment: TariffAssignment, user: AbstractBaseUser | None = None) -> None:
    """Stop pricing a place's sessions with the tariff; sessions priced keep their price."""
    with db.atomic():
        audit.record(user, AuditEntry.Action.TARIFF_UNASSIGNED, f"removed {assignment}",
                     target=f"tariff:{assignment.tariff_id}")
        assignment.delete()
