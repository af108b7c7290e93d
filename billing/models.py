"""Tariffs, session costs and invoices.

Money is Decimal with two places everywhere; how amounts are computed and rounded is in
billing/costing.py. A tariff changes by a new version, never by editing one; an invoice is
frozen once issued (save() and the query sets refuse changes), corrected by a credit note.
"""

from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Organization, Site
from csms.jobs import BackgroundJob
from stations.models import Station, Transaction

ZERO = Decimal("0.00")
country_validator = RegexValidator(r"^[A-Z]{2}\Z", "A two-letter ISO 3166 country code, e.g. DE.")
currency_validator = RegexValidator(r"^[A-Z]{3}\Z", "A three-letter ISO 4217 code, e.g. EUR.")


def money(**options) -> models.DecimalField:
    return models.DecimalField(max_digits=12, decimal_places=2, **options)


def unit_price(**options) -> models.DecimalField:
    """Prices per kWh or minute may have more places than a cent (0.3945 €/kWh)."""
    return models.DecimalField(max_digits=12, decimal_places=4,
                               validators=[MinValueValidator(0)], **options)


class Party(models.Model):
    """A legal entity's details as an invoice needs them (EN 16931 seller or buyer)."""

    legal_name = models.CharField(max_length=200)
    street = models.CharField(max_length=200, blank=True)
    postcode = models.CharField(max_length=20, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, default="DE", validators=[country_validator])
    vat_id = models.CharField("VAT id", max_length=30, blank=True)
    email = models.EmailField(blank=True)

    class Meta:
        abstract = True

    def details(self) -> dict[str, str]:
        """The snapshot an issued invoice keeps, whatever changes here later."""
        return {name: getattr(self, name) for name in
                ("legal_name", "street", "postcode", "city", "country", "vat_id", "email")}


class Issuer(Party):
    """Who invoices (the charge point operator, or a property owner selling on its own account),
    with its own gap-free invoice numbers. `next_number` is the counter, locked while a number
    is taken."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT,
                                     related_name="issuers")
    # Without a VAT id an invoice still names the seller for tax (EN 16931 BR-S-02: BT-31 or
    # BT-32) and for the buyer's records (BR-CO-26: BT-29, BT-30 or BT-31).
    tax_number = models.CharField("tax number", max_length=30, blank=True,
                                  help_text="Tax registration number (BT-32), e.g. a "
                                            "Steuernummer; needed when there is no VAT id.")
    registration_id = models.CharField("legal registration id", max_length=60, blank=True,
                                       help_text="Commercial register entry (BT-30), e.g. "
                                                 "HRB 12345; needed when there is no VAT id.")
    iban = models.CharField("IBAN", max_length=34, blank=True)
    bic = models.CharField("BIC", max_length=11, blank=True)
    number_prefix = models.CharField(max_length=20, default="INV-")
    next_number = models.PositiveIntegerField(default=1)
    payment_days = models.PositiveSmallIntegerField(default=14)
    # Invoice periods are calendar months in this zone.
    time_zone = models.CharField(max_length=64, default="Europe/Berlin")

    class Meta:
        ordering = ["legal_name"]

    def __str__(self) -> str:
        return self.legal_name

    def details(self) -> dict[str, str]:
        return super().details() | {"tax_number": self.tax_number,
                                     "registration_id": self.registration_id}


class CustomerAccount(Party):
    """An organization's billing details as a customer (a fleet, a company with cards)."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE,
                                        related_name="billing_account")
    # BT-10: the reference the buyer wants on its invoices (a cost centre, a PO number).
    buyer_reference = models.CharField(max_length=100, blank=True)

    def __str__(self) -> str:
        return self.legal_name


class Tariff(models.Model):
    """A named price list; what it costs at a given moment is its version valid then."""

    name = models.CharField(max_length=100)
    issuer = models.ForeignKey(Issuer, on_delete=models.PROTECT, related_name="tariffs")
    currency = models.CharField(max_length=3, default="EUR", validators=[currency_validator])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def version_at(self, moment) -> "TariffVersion | None":
        return self.versions.filter(valid_from__lte=moment).order_by("-valid_from").first()


class TariffVersion(models.Model):
    """The prices of a tariff from `valid_from` on. Never changed once created: a session is
    priced with the version valid at its start, and history is never rewritten."""

    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    valid_from = models.DateTimeField()
    price_kwh = unit_price(default=Decimal("0"), verbose_name="price per kWh")
    price_minute = unit_price(default=Decimal("0"), verbose_name="price per charging minute")
    session_fee = money(default=ZERO, validators=[MinValueValidator(0)])
    idle_price_minute = unit_price(default=Decimal("0"), verbose_name="idle fee per minute")
    idle_grace_minutes = models.PositiveIntegerField(default=0)
    min_price = money(null=True, blank=True, validators=[MinValueValidator(0)],
                      verbose_name="minimum session price")
    max_price = money(null=True, blank=True, validators=[MinValueValidator(0)],
                      verbose_name="maximum session price")
    vat_rate = models.DecimalField("VAT rate %", max_digits=5, decimal_places=2,
                                   default=Decimal("19.00"), validators=[MinValueValidator(0)])
    # Off: a session that delivered no energy (refused, never charged) costs nothing.
    bills_empty_sessions = models.BooleanField(
        "bill sessions that delivered no energy", default=False,
        help_text="Session fee, minimum price, time and idle fees also for 0 kWh sessions.")
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tariff", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["tariff", "number"], name="tariff_version_number"),
            models.UniqueConstraint(fields=["tariff", "valid_from"], name="tariff_version_from"),
        ]

    def __str__(self) -> str:
        return f"{self.tariff} v{self.number}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValidationError("A tariff version is never changed; create a new version.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("A tariff version is never deleted; create a new version.")

    def clean(self) -> None:
        if (self.min_price is not None and self.max_price is not None
                and self.min_price > self.max_price):
            raise ValidationError("The minimum session price is above the maximum.")


class TimeWindow(models.Model):
    """Other prices on some weekdays between two times of day, in the site's time zone.

    `weekdays` holds digits 0 (Monday) to 6 (Sunday). An end at or before the start runs into
    the next day (22:00-06:00); an end of 00:00 is midnight. Created with its version
    (billing.tariffs.add_version) and, like it, never changed: pricing reads a version's
    windows once per process (billing.services._windows).
    """

    version = models.ForeignKey(TariffVersion, on_delete=models.CASCADE,
                                related_name="windows")
    label = models.CharField(max_length=50)
    weekdays = models.CharField(max_length=7, default="0123456",
                                validators=[RegexValidator(r"^[0-6]{1,7}\Z",
                                                           "Digits 0 (Monday) to 6 (Sunday).")])
    start = models.TimeField()
    end = models.TimeField()
    price_kwh = unit_price(verbose_name="price per kWh")
    price_minute = unit_price(verbose_name="price per charging minute")

    class Meta:
        ordering = ["version", "start"]

    def __str__(self) -> str:
        return f"{self.label} {self.start:%H:%M}-{self.end:%H:%M}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValidationError("A time window is never changed; create a new tariff version.")
        super().save(*args, **kwargs)


class TariffAssignment(models.Model):
    """Which tariff a site's or a station's sessions are priced with, optionally only for one
    customer organization (fleet pricing). The most specific assignment wins: station and
    customer, site and customer, station, site."""

    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="assignments")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="tariff_assignments")
    station = models.ForeignKey(Station, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="tariff_assignments")
    customer = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="tariff_assignments")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(site__isnull=True, station__isnull=False)
                | Q(site__isnull=False, station__isnull=True),
                name="tariff_assignment_site_or_station",
            ),
            # One tariff per place and customer, and one per place for everyone (NULL customer;
            # two constraints, as SQLite cannot treat NULLs as equal in one).
            models.UniqueConstraint(fields=["site", "customer"], name="tariff_site_customer",
                                    condition=Q(site__isnull=False, customer__isnull=False)),
            models.UniqueConstraint(fields=["site"], name="tariff_site_everyone",
                                    condition=Q(site__isnull=False, customer__isnull=True)),
            models.UniqueConstraint(fields=["station", "customer"],
                                    name="tariff_station_customer",
                                    condition=Q(station__isnull=False, customer__isnull=False)),
            models.UniqueConstraint(fields=["station"], name="tariff_station_everyone",
                                    condition=Q(station__isnull=False, customer__isnull=True)),
        ]

    def __str__(self) -> str:
        where = self.station_id or self.site
        return f"{self.tariff} at {where}" + (f" for {self.customer}" if self.customer else "")


class SessionCost(models.Model):
    """What a charging session costs: running while it charges, final at its end."""

    class State(models.TextChoices):
        RUNNING = "running", "running"
        # Stopped, but the car still occupies the connector: the idle fee still accrues.
        IDLE = "idle", "stopped, car still plugged in"
        FINAL = "final", "final"
        REVIEW = "review", "needs review"
        NO_TARIFF = "no_tariff", "no tariff"
        EXCLUDED = "excluded", "not billed"

    BILLABLE = (State.FINAL,)

    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT,
                                       related_name="cost")
    tariff_version = models.ForeignKey(TariffVersion, null=True, blank=True,
                                       on_delete=models.PROTECT, related_name="costs")
    customer = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="session_costs")
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    note = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3, default="EUR")
    energy_wh = models.DecimalField(max_digits=15, decimal_places=3, default=Decimal("0"))
    charging_seconds = models.PositiveIntegerField(default=0)
    idle_seconds = models.PositiveIntegerField(default=0)
    billable_idle_seconds = models.PositiveIntegerField(default=0)
    energy_amount = money(default=ZERO)
    time_amount = money(default=ZERO)
    idle_amount = money(default=ZERO)
    session_fee = money(default=ZERO)
    # What the minimum or maximum session price added (positive) or took off (negative).
    cap_adjustment = money(default=ZERO)
    net = money(default=ZERO)
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2, default=ZERO)
    vat_amount = money(default=ZERO)
    gross = money(default=ZERO)
    # Per time-of-use window: label, kWh, minutes and prices (for the breakdown shown).
    breakdown = models.JSONField(default=list)
    priced_at = models.DateTimeField(default=timezone.now)
    cost_sent_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")
    # The energy a person established when the meter's could not be used (a rollover, a
    # replaced meter); when set, the session is priced with it, spread evenly over the session.
    corrected_energy_wh = models.DecimalField(max_digits=15, decimal_places=3, null=True,
                                              blank=True)
    invoice = models.ForeignKey("Invoice", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="session_costs")

    class Meta:
        indexes = [models.Index(fields=["state", "customer"])]

    def __str__(self) -> str:
        return f"{self.transaction}: {self.gross} {self.currency} ({self.state})"

    @property
    def provisional(self) -> bool:
        """The amounts are the cost so far (charging, or idle with the car still plugged in),
        not what is billed."""
        return self.state in (self.State.RUNNING, self.State.IDLE)


class InvoiceQuerySet(models.QuerySet):
    """Bulk writes obey the same rule as save(): nothing but drafts changes or goes."""

    def update(self, **fields):
        if set(fields) - Invoice.MUTABLE_AFTER_ISSUE and self.exclude(
                status=Invoice.Status.DRAFT).exists():
            raise ValidationError("An issued invoice cannot be changed; issue a credit note.")
        return super().update(**fields)

    def delete(self):
        if self.exclude(status=Invoice.Status.DRAFT).exists():
            raise ValidationError("An issued invoice cannot be deleted; issue a credit note.")
        return super().delete()


class Invoice(models.Model):
    """An invoice (or credit note) from an issuer to a customer organization for a period."""

    class Kind(models.TextChoices):
        INVOICE = "invoice"
        CREDIT_NOTE = "credit_note", "credit note"

    class Status(models.TextChoices):
        DRAFT = "draft"
        ISSUED = "issued"
        PAID = "paid"
        VOID = "void"

    # Once issued only the way it ends may change: paid, or void (by a credit note).
    MUTABLE_AFTER_ISSUE = frozenset({"status", "paid_at", "voided_at"})
    TRANSITIONS = {
        Status.DRAFT: {Status.DRAFT, Status.ISSUED},
        Status.ISSUED: {Status.ISSUED, Status.PAID, Status.VOID},
        Status.PAID: {Status.PAID, Status.VOID},
        Status.VOID: {Status.VOID},
    }

    issuer = models.ForeignKey(Issuer, on_delete=models.PROTECT, related_name="invoices")
    customer = models.ForeignKey(Organization, on_delete=models.PROTECT,
                                 related_name="invoices")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.INVOICE)
    corrects = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="credit_notes")
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.DRAFT)
    # Given when issued, from the issuer's counter: drafts have none, so none is ever lost.
    sequence = models.PositiveIntegerField(null=True, blank=True)
    number = models.CharField(max_length=40, blank=True)
    period_start = models.DateField()
    period_end = models.DateField()
    issue_date = models.DateField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    currency = models.CharField(max_length=3, default="EUR")
    seller = models.JSONField(default=dict)
    buyer = models.JSONField(default=dict)
    buyer_reference = models.CharField(max_length=100, blank=True)
    note = models.CharField(max_length=300, blank=True)
    net_total = money(default=ZERO)
    vat_total = money(default=ZERO)
    gross_total = money(default=ZERO)
    created_at = models.DateTimeField(auto_now_add=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["issuer", "sequence"], name="invoice_sequence",
                                    condition=Q(sequence__isnull=False)),
        ]
        indexes = [models.Index(fields=["customer", "status"])]

    def __str__(self) -> str:
        return self.number or f"draft {self.pk}"

    def save(self, *args, **kwargs) -> None:
        stored = getattr(self, "_stored", None)
        if stored is not None and self.pk is not None:
            before = stored.get("status", Invoice.Status.DRAFT)
            if self.status not in self.TRANSITIONS[before]:
                raise ValidationError(f"An invoice cannot go from {before} to {self.status}.")
            if before != Invoice.Status.DRAFT:
                changed = {field.attname for field in self._meta.concrete_fields
                           if field.attname in stored
                           and getattr(self, field.attname) != stored[field.attname]}
                if changed - self.MUTABLE_AFTER_ISSUE:
                    raise ValidationError(
                        "An issued invoice cannot be changed; issue a credit note. "
                        f"(changed: {', '.join(sorted(changed))})")
        super().save(*args, **kwargs)
        self._stored = {field.attname: getattr(self, field.attname)
                        for field in self._meta.concrete_fields}

    def delete(self, *args, **kwargs):
        if self.status != Invoice.Status.DRAFT:
            raise ValidationError("An issued invoice cannot be deleted; issue a credit note.")
        return super().delete(*args, **kwargs)

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._stored = dict(zip(field_names, values, strict=True))
        return instance

    def refresh_from_db(self, using=None, fields=None, from_queryset=None) -> None:
        """What is stored now is what the next save() compares with (another request may have
        moved the invoice on)."""
        super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        refreshed = ({self._meta.get_field(name).attname for name in fields} if fields else
                     {f.attname for f in self._meta.concrete_fields} - self.get_deferred_fields())
        self._stored = {**getattr(self, "_stored", {}),
                        **{name: getattr(self, name) for name in refreshed}}

    @property
    def is_draft(self) -> bool:
        return self.status == Invoice.Status.DRAFT

    @property
    def file_stem(self) -> str:
        return (self.number or f"draft-{self.pk}").replace("/", "-")


class InvoiceLineQuerySet(models.QuerySet):
    def _frozen(self) -> bool:
        return self.exclude(invoice__status=Invoice.Status.DRAFT).exists()

    def update(self, **fields):
        if self._frozen():
            raise ValidationError("Lines of an issued invoice cannot be changed.")
        return super().update(**fields)

    def delete(self):
        if self._frozen():
            raise ValidationError("Lines of an issued invoice cannot be deleted.")
        return super().delete()

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        if Invoice.objects.filter(pk__in={line.invoice_id for line in objs}).exclude(
                status=Invoice.Status.DRAFT).exists():
            raise ValidationError("Lines cannot be added to an issued invoice.")
        return super().bulk_create(objs, *args, **kwargs)


class InvoiceLine(models.Model):
    """One charging session on an invoice (negative amounts on a credit note)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    transaction = models.ForeignKey(Transaction, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="invoice_lines")
    description = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    site_name = models.CharField(max_length=200, blank=True)
    station_id = models.CharField(max_length=48, blank=True)
    card = models.CharField(max_length=36, blank=True)
    energy_wh = models.DecimalField(max_digits=15, decimal_places=3)
    duration_seconds = models.PositiveIntegerField(default=0)
    idle_seconds = models.PositiveIntegerField(default=0)
    net_amount = money()
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2)

    objects = InvoiceLineQuerySet.as_manager()

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position"),
        ]

    def save(self, *args, **kwargs) -> None:
        self._check_draft()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self._check_draft()
        return super().delete(*args, **kwargs)

    def _check_draft(self) -> None:
        if not Invoice.objects.filter(pk=self.invoice_id,
                                      status=Invoice.Status.DRAFT).exists():
            raise ValidationError("Lines of an issued invoice cannot be changed.")

    @property
    def energy_kwh(self) -> Decimal:
        return (self.energy_wh / 1000).quantize(Decimal("0.001"))

    @property
    def service_period(self) -> tuple[date, date]:
        """The days the session ran on, in its site's calendar (EN 16931 BG-26)."""
        zone = ZoneInfo(self.time_zone or "UTC")
        return (self.started_at.astimezone(zone).date(),
                (self.stopped_at or self.started_at).astimezone(zone).date())


class ExportJob(BackgroundJob):
    """A bulk export of a period (a zip of invoices, e-invoices, CSV and revenue statements),
    built in the background; `done` of `total` tells its progress."""

    Status = BackgroundJob.State  # the name its API and callers use

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True,
                                     on_delete=models.SET_NULL, related_name="+")
    period_start = models.DateField()
    period_end = models.DateField()
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    file = models.FileField(upload_to="billing/exports/", blank=True)

    def __str__(self) -> str:
        return f"export {self.period_start}..{self.period_end} ({self.status})"

    @property
    def percent(self) -> int:
        return 100 if self.status == self.Status.DONE else self.share(self.done)
