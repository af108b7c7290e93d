"""The REST API's view of ID tokens, card imports, local lists, memberships, organizations,
sites and the audit log (API v1)."""

from zoneinfo import available_timezones

from django.contrib.auth.models import User
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts import access, cards
from accounts.models import (
    AuditEntry,
    CardImport,
    IdToken,
    Membership,
    Organization,
    Site,
    SiteAccess,
)
from stations.models import LocalListState


@extend_schema_field(OpenApiTypes.INT)
class ManagedOrganizationField(serializers.PrimaryKeyRelatedField):
    """An organization whose tokens the requesting user manages: a fleet admin cannot hand a
    card to another fleet."""

    def get_queryset(self):
        return access.id_token_organizations_for(self.context["request"].user)


class VisibleSiteField(serializers.PrimaryKeyRelatedField):
    """A site the requesting user sees: a card can be limited to those."""

    def get_queryset(self):
        return access.sites_for(self.context["request"].user)


class IdTokenSerializer(serializers.ModelSerializer):
    organization = ManagedOrganizationField(
        allow_null=True, required=False,
        help_text="The fleet or property owner the token belongs to; null: the operator's.",
    )
    effective_status = serializers.CharField(
        read_only=True,
        help_text="What a charger is told now: an Accepted token past its expiry is Expired.",
    )
    allowed_sites = VisibleSiteField(
        many=True, required=False,
        help_text="Sites the token may charge at; empty: every site. Elsewhere it is refused "
        "(OCPP 2.0.1 NotAtThisLocation, 1.6 Invalid).",
    )

    class Meta:
        model = IdToken
        fields = [
            "id", "value", "token_type", "status", "effective_status", "expires_at", "group",
            "holder", "organization", "allowed_sites", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def to_representation(self, instance: IdToken) -> dict:
        data = super().to_representation(instance)
        # Only the sites the reader sees: another tenant's site ids are not theirs to know.
        if "visible_sites" not in self.context:  # once per request, not once per row
            self.context["visible_sites"] = set(access.sites_for(
                self.context["request"].user).values_list("pk", flat=True))
        visible = self.context["visible_sites"]
        data["allowed_sites"] = [pk for pk in data["allowed_sites"] if pk in visible]
        return data

    def validate_value(self, value: str) -> str:
        try:
            return cards.check_value(value)
        except cards.CardError as error:
            raise serializers.ValidationError(str(error)) from None

    def validate(self, attrs: dict) -> dict:
        # Also when the field is left out: a fleet admin's token must not become the operator's.
        organization = attrs.get(
            "organization", self.instance.organization if self.instance else None
        )
        user = self.context["request"].user
        if not access.may_manage_id_tokens_of(user, organization.pk if organization else None):
            raise serializers.ValidationError(
                {"organization": ["Choose one of your organizations."]}
            )
        return attrs

    def _card(self, attrs: dict) -> cards.CardData:
        current = self.instance
        names = ("value", "token_type", "status", "holder", "group", "expires_at")
        data = cards.CardData(**{
            name: attrs[name] if name in attrs else getattr(current, name) for name in names
            if name in attrs or current is not None
        })
        if "allowed_sites" in attrs:
            data.allowed_sites = [site.pk for site in attrs["allowed_sites"]]
        elif current is not None:
            data.allowed_sites = list(current.allowed_sites.values_list("pk", flat=True))
        return data

    def create(self, validated_data: dict) -> IdToken:
        try:
            return cards.issue(self.context["request"].user, self._card(validated_data),
                               validated_data.get("organization"))
        except cards.CardError as error:
            raise serializers.ValidationError({"value": [str(error)]}) from None

    def update(self, instance: IdToken, validated_data: dict) -> IdToken:
        organization = validated_data.get("organization", instance.organization)
        try:
            return cards.change(self.context["request"].user, instance,
                                self._card(validated_data), organization)
        except cards.CardError as error:
            raise serializers.ValidationError({"value": [str(error)]}) from None


class BulkCardsSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["block", "unblock", "expire"])
    ids = serializers.ListField(child=serializers.IntegerField(), min_length=1,
                                max_length=10000, help_text="Token ids (not values).")


class BulkResultSerializer(serializers.Serializer):
    changed = serializers.IntegerField()


class CardImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV, UTF-8, first line naming the columns: "
                                 + ", ".join(cards.COLUMNS) + " (only value is required).")
    organization = ManagedOrganizationField(allow_null=True, required=False, default=None)

    def validate(self, attrs: dict) -> dict:
        organization = attrs.get("organization")
        if not access.may_manage_id_tokens_of(self.context["request"].user,
                                              organization.pk if organization else None):
            raise serializers.ValidationError(
                {"organization": ["Choose one of your organizations."]})
        return attrs


class CardImportSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = CardImport
        fields = ["id", "organization", "filename", "state", "total", "processed", "percent",
                  "created", "updated", "unchanged", "rejected", "error", "changes",
                  "confirmed_at", "created_at", "finished_at"]
        extra_kwargs = {"changes": {"help_text": (
            "The changes to existing cards, listed before any applies: [{line, value, changed: "
            "{field: [before, after]}, widens}]. An import in state review waits for POST "
            "confirm/ (or discard/).")}}
        read_only_fields = fields


class LocalListSerializer(serializers.ModelSerializer):
    station = serializers.CharField(source="station_id", read_only=True)
    entries = serializers.IntegerField(read_only=True, source="entry_count")

    class Meta:
        model = LocalListState
        fields = ["station", "enabled", "sync", "note", "version", "version_sent",
                  "version_reported", "version_reported_at", "wanted", "entries", "changed_at"]
        read_only_fields = [f for f in fields if f != "enabled"]


class LocalListPushSerializer(serializers.Serializer):
    full = serializers.BooleanField(default=False, help_text="Replace the whole list.")


class MembershipSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", queryset=User.objects.all())

    class Meta:
        model = Membership
        fields = ["id", "user", "organization", "role"]


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "kind"]
        # Names are checked by accounts.organizations (unique whatever the case).
        extra_kwargs = {"name": {"validators": []}}


class SiteSerializer(serializers.ModelSerializer):
    organization = serializers.PrimaryKeyRelatedField(
        queryset=Organization.objects.all(), help_text="The organization that owns the site.")
    time_zone = serializers.ChoiceField(choices=sorted(available_timezones()), default="UTC",
                                        help_text="An IANA time zone, e.g. Europe/Berlin.")

    class Meta:
        model = Site
        fields = ["id", "name", "organization", "address", "time_zone"]


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", read_only=True)

    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "action", "target", "summary", "details"]
        read_only_fields = fields


class AuditFilterSerializer(serializers.Serializer):
    actor = serializers.CharField(required=False, help_text="A user name, or system.")
    action = serializers.CharField(required=False, help_text="e.g. card.blocked, or card.")
    target = serializers.CharField(required=False, help_text="e.g. card:42, station:CP-1.")
    text = serializers.CharField(required=False, help_text="Words of the summary.")
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class SiteAccessSerializer(serializers.ModelSerializer):
    """An agreement: the organization's cards charge at the site."""

    organization = serializers.PrimaryKeyRelatedField(queryset=Organization.objects.all())
    organization_name = serializers.CharField(source="organization.name", read_only=True)
    site = serializers.PrimaryKeyRelatedField(queryset=Site.objects.all())
    site_name = serializers.CharField(source="site.name", read_only=True)

    class Meta:
        model = SiteAccess
        fields = ["id", "organization", "organization_name", "site", "site_name", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_site(self, site: Site) -> Site:
        if not access.sites_operated_by(self.context["request"].user).filter(pk=site.pk).exists():
            raise serializers.ValidationError("Not a site whose access you manage.")
        return site


class CardPolicySerializer(serializers.ModelSerializer):
    """How an organization's cards may be used: at every station (roaming: offered by the
    operator, consented to by the organization's own admin), and at one place at a time."""

    class Meta:
        model = Organization
        fields = ["id", "name", "kind", "roaming", "roaming_consent", "one_session_per_card"]
        read_only_fields = ["id", "name", "kind"]
