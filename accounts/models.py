"""Organizations (tenants) and the ID tokens (RFID cards and the like) that start charging."""

from django.db import models
from django.utils import timezone


class Organization(models.Model):
    """A tenant: the operator itself, a property owner or a fleet."""

    class Kind(models.TextChoices):
        OPERATOR = "operator"
        PROPERTY = "property", "Property owner"
        FLEET = "fleet"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PROPERTY)

    def __str__(self) -> str:
        return self.name


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
    # Tokens sharing a group may not charge twice at once (ConcurrentTx).
    group = models.CharField(max_length=36, blank=True)
    holder = models.CharField(max_length=200, blank=True)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="id_tokens"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["value"]

    def __str__(self) -> str:
        return self.value

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
