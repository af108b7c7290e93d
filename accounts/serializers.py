"""The REST API's view of ID tokens (API v1)."""

from rest_framework import serializers

from accounts import access
from accounts.models import IdToken


class ManagedOrganizationField(serializers.PrimaryKeyRelatedField):
    """An organization whose tokens the requesting user manages: a fleet admin cannot hand a
    card to another fleet."""

    def get_queryset(self):
        return access.id_token_organizations_for(self.context["request"].user)


class IdTokenSerializer(serializers.ModelSerializer):
    organization = ManagedOrganizationField(
        allow_null=True, required=False,
        help_text="The fleet or property owner the token belongs to; null: the operator's.",
    )
    effective_status = serializers.CharField(
        read_only=True,
        help_text="What a charger is told now: an Accepted token past its expiry is Expired.",
    )

    class Meta:
        model = IdToken
        fields = [
            "id", "value", "token_type", "status", "effective_status", "expires_at", "group",
            "holder", "organization", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

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
