"""Organizations (tenants), their sites and people, the ID tokens (RFID cards and the like)
that start charging, card imports and the audit log: the bottom layer every other app builds on."""

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

from csms.jobs import BackgroundJob


class Organization(models.Model):
    """A tenant: the operator itself, a property owner or a fleet."""

    class Kind(models.TextChoices):
        OPERATOR = "operator"
        PROPERTY = "property", "Property owner"
        FLEET = "fleet"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PROPERTY)
    # Roaming: this organization's cards charge at every station of the operator. Both are
    # needed: the operator offers it (an operator admin sets `roaming`), and the organization
    # agrees to be billed for sessions anywhere (its own admin sets `roaming_consent`).
    roaming = models.BooleanField(default=False)
    roaming_consent = models.BooleanField(default=False)
    # A card of this organization charges at one place at a time: a start while the same card
    # is in a session at another station is refused (ConcurrentTx). A cloned or passed-on card
    # shows up this way; organizations whose cards are shared on purpose turn it off.
    one_session_per_card = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


class Site(models.Model):
    """A place with chargers, owned by an organization: what a property manager sees and a
    card may be limited to."""

    name = models.CharField(max_length=200)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="sites")
    address = models.CharField(max_length=300, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# The longest group a charger is told (1.6 parentIdTag is CiString20).
GROUP_TOKEN_LENGTH = 20


class SiteAccess(models.Model):
    """An agreement: the organization's cards charge at the site (accounts/card_use.py).
    Made by an operator admin or by the site's owner, for another organization's cards."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE,
                                     related_name="site_accesses")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="accesses")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["site__name", "organization__name"]
        constraints = [models.UniqueConstraint(fields=["organization", "site"],
                                               name="site_access_unique")]

    def __str__(self) -> str:
        return f"{self.organization} at {self.site}"


class IdToken(models.Model):
    """An identifier a driver presents at a charger: RFID card, key code, app token, ..."""

    class Status(models.TextChoices):
        ACCEPTED = "Accepted"
        BLOCKED = "Blocked"
        EXPIRED = "Expired"
        INVALID = "Invalid"

    class Type(models.TextChoices):
        ISO14443 = "ISO14443"
        ISO15693 = "ISO15693"
        EMAID = "eMAID"
        KEY_CODE = "KeyCode"
        CENTRAL = "Central"
        LOCAL = "Local"
        MAC_ADDRESS = "MacAddress"
        NO_AUTHORIZATION = "NoAuthorization"

    # OCPP 2.0.1 allows 36 characters; a 1.6 charger can only present the first 20.
    value = models.CharField(max_length=36, unique=True)
    token_type = models.CharField(max_length=20, choices=Type.choices, default=Type.ISO14443)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACCEPTED)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The card's group within its organization (OCPP's parent id tag / group id token): a
    # charger lets any card of the group stop a session another one started. Chargers are
    # told group_token(), which names the organization too.
    group = models.CharField(max_length=36, blank=True)
    holder = models.CharField(max_length=200, blank=True)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="id_tokens"
    )
    # Empty: valid at every site. Otherwise refused (NotAtThisLocation) at any other site.
    allowed_sites = models.ManyToManyField(Site, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["value"]
        indexes = [models.Index(fields=["organization", "value"])]

    def __str__(self) -> str:
        return self.value

    def group_token(self) -> str:
        """The group as chargers are told it: named with the organization (two organizations'
        groups of one name are two groups), at most the 20 characters a 1.6 charger holds; a
        longer one is named by a digest of the name instead of cut (two cut names could meet)."""
        if not self.group:
            return ""
        owner = str(self.organization_id or 0)
        named = f"{owner}:{self.group}"
        if len(named) <= GROUP_TOKEN_LENGTH:
            return named
        return f"{owner}#{hashlib.sha256(named.encode()).hexdigest()}"[:GROUP_TOKEN_LENGTH]

    def effective_status(self, at: "timezone.datetime | None" = None) -> str:
        """The status a charger must be told: an Accepted token past its expiry is Expired."""
        at = at or timezone.now()
        if self.status == self.Status.ACCEPTED and self.expires_at and self.expires_at <= at:
            return self.Status.EXPIRED
        return self.status


class Membership(models.Model):
    """A user's role in an organization. Roles are data; what each may see is decided in one
    place, accounts/access.py."""

    class Role(models.TextChoices):
        OPERATOR_ADMIN = "operator_admin", "Operator admin"
        PROPERTY_MANAGER = "property_manager", "Property manager"
        FLEET_ADMIN = "fleet_admin", "Fleet admin"
        FINANCE = "finance", "Finance"

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.organization} · {self.get_role_display()}"


class AppendOnlyQuerySet(models.QuerySet):
    """Rows of an append-only log: inserted, read, never changed or removed."""

    def update(self, **kwargs):
        raise TypeError(f"{self.model.__name__} is append-only: rows cannot be updated")

    def delete(self):
        raise TypeError(f"{self.model.__name__} is append-only: rows cannot be deleted")

    def bulk_update(self, objs, fields, batch_size=None):
        raise TypeError(f"{self.model.__name__} is append-only: rows cannot be updated")

    # What cascades use.
    def _raw_delete(self, using):
        raise TypeError(f"{self.model.__name__} is append-only: rows cannot be deleted")


class AuditEntry(models.Model):
    """Who did what, when: append-only, written by the action functions themselves
    (accounts/audit.py). Secrets are masked before they get here."""

    class Action(models.TextChoices):
        CARD_ISSUED = "card.issued", "card issued"
        CARD_CHANGED = "card.changed", "card changed"
        CARD_BLOCKED = "card.blocked", "card blocked"
        CARD_UNBLOCKED = "card.unblocked", "card unblocked"
        CARD_EXPIRED = "card.expired", "card expired"
        CARD_DELETED = "card.deleted", "card deleted"
        CARDS_IMPORTED = "cards.imported", "cards imported"
        MEMBER_ADDED = "member.added", "member added"
        MEMBER_ROLE_CHANGED = "member.role_changed", "role changed"
        MEMBER_REMOVED = "member.removed", "member removed"
        USER_CREATED = "user.created", "user created"
        LOGIN_BLOCKED = "login.blocked", "logins blocked"
        ORGANIZATION_CREATED = "organization.created", "organization created"
        ORGANIZATION_CHANGED = "organization.changed", "organization changed"
        SITE_CREATED = "site.created", "site created"
        SITE_CHANGED = "site.changed", "site changed"
        STATION_CREDENTIALS = "station.credentials", "station credentials changed"
        STATION_REGISTRATION = "station.registration", "station registration decided"
        COMMAND = "station.command", "remote command"
        LOCAL_LIST = "local_list.push", "local list pushed"
        SITE_ACCESS = "site_access", "site access changed"
        CARD_POLICY = "organization.card_policy", "card policy changed"
        EXPORT = "export", "export"
        TARIFF_CREATED = "tariff.created", "tariff created"
        TARIFF_VERSION = "tariff.version", "tariff prices changed"
        TARIFF_ASSIGNED = "tariff.assigned", "tariff assigned"
        TARIFF_UNASSIGNED = "tariff.unassigned", "tariff assignment removed"
        INVOICES_GENERATED = "invoice.generated", "invoices generated"
        INVOICE_ISSUED = "invoice.issued", "invoice issued"
        INVOICE_PAID = "invoice.paid", "invoice paid"
        INVOICE_CREDITED = "invoice.credited", "invoice credited"
        INVOICE_DISCARDED = "invoice.discarded", "draft invoice discarded"
        SESSION_COST_ACCEPTED = "session_cost.accepted", "session cost accepted"
        SESSION_COST_CORRECTED = "session_cost.corrected", "session energy corrected"
        SESSION_COST_EXCLUDED = "session_cost.excluded", "session not billed"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept as text too: the log must still say who once the user is deleted.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=30, choices=Action.choices, db_index=True)
    # What it was done to, as "kind:id" (card:42, station:CP-1, user:7, import:3).
    target = models.CharField(max_length=120, blank=True, db_index=True)
    summary = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name or 'system'} {self.summary}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise TypeError("AuditEntry is append-only: an entry cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("AuditEntry is append-only: an entry cannot be deleted")


class CardImport(BackgroundJob):
    """One CSV upload of ID tokens and its progress; the import runs in a Celery task."""

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    # Beyond a job's states: an import that would change existing cards waits in REVIEW until
    # a person confirms the listed changes (or discards the import).
    REVIEW = "review"
    DISCARDED = "discarded"

    filename = models.CharField(max_length=200, blank=True)
    content = models.TextField()
    state = models.CharField(max_length=10, choices=[
        *BackgroundJob.State.choices, (REVIEW, "to confirm"), (DISCARDED, "discarded")],
        default=BackgroundJob.State.QUEUED)
    # The changes to existing cards the file makes, as listed for confirmation:
    # [{"line", "value", "changed": {field: [before, after]}, "widens": bool}]. Only these
    # apply: a card that changed since is rejected, never silently overwritten.
    changes = models.JSONField(default=list, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)  # who: the audit log
    processed = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    # [{"line": 7, "value": "...", "reason": "..."}], downloadable as CSV.
    rejections = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"{self.filename or 'import'} ({self.state})"

    @property
    def percent(self) -> int:
        return self.share(self.processed)
