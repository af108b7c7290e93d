"""The REST API's view of the charging network (API v1).

Decimals (energy in Wh, sample values) are JSON strings, as DRF renders them by default: exact,
with no float rounding on the way to an invoice.
"""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from rest_framework import serializers

from accounts import access, card_use
from accounts.audit import mask
from stations.access import may_operate_station
from stations.models import (
    Call,
    Connector,
    Evse,
    MeterSample,
    Station,
    Transaction,
    station_id_validator,
)
from stations.passwords import validate_charger_password
from stations.services.registration import (
    station_credentials_changed,
    station_registration_decide,
)

# Basic auth (profiles 1 and 2) is what a password is for; profile 3 uses client certificates.
PASSWORD_PROFILES = (Station.SecurityProfile.BASIC, Station.SecurityProfile.TLS_BASIC)


class ErrorSerializer(serializers.Serializer):
    """What every refusal carries; field errors come as {"field": ["message", ...]} instead."""

    detail = serializers.CharField()


class OperatedSiteField(serializers.PrimaryKeyRelatedField):
    """A site the requesting user operates: a manager cannot put a station on another's site."""

    def get_queryset(self):
        return access.sites_operated_by(self.context["request"].user)


class ConnectorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Connector
        fields = ["number", "status", "status_detail", "error_code", "status_at"]


class EvseSerializer(serializers.ModelSerializer):
    connectors = ConnectorSerializer(many=True, read_only=True)

    class Meta:
        model = Evse
        fields = ["number", "max_power_w", "connectors"]
        read_only_fields = ["number"]
        # From a small AC wallbox to a megawatt truck charger.
        extra_kwargs = {"max_power_w": {"min_value": 1_000, "max_value": 10_000_000}}


class StationSerializer(serializers.ModelSerializer):
    id = serializers.CharField(
        max_length=48, validators=[station_id_validator],
        help_text="The charger's identity: the last segment of its connection URL.",
    )
    site = OperatedSiteField(allow_null=True, required=False)
    password = serializers.CharField(
        write_only=True, required=False, trim_whitespace=False,
        validators=[validate_charger_password],
        help_text="Basic auth password for security profiles 1 and 2; stored hashed, "
        "never returned.",
    )
    evses = EvseSerializer(many=True, read_only=True)
    generated_password = serializers.CharField(
        read_only=True,
        help_text="Only in the answer that accepted a station without credentials: the "
        "password generated for it (security profile 1), sent to the station, shown this once.",
    )

    class Meta:
        model = Station
        fields = [
            "id", "site", "security_profile", "password", "generated_password", "registration",
            "vendor", "model", "serial_number", "firmware_version", "ocpp_version",
            "connected", "connected_at", "last_seen", "status", "error_code", "evses",
        ]
        read_only_fields = [
            "vendor", "model", "serial_number", "firmware_version", "ocpp_version",
            "connected", "connected_at", "last_seen", "status", "error_code",
        ]

    def validate_id(self, value: str) -> str:
        if self.instance is not None and value != self.instance.pk:
            raise serializers.ValidationError(
                "A station's id cannot be changed: the charger connects with it. "
                "Create a new station instead."
            )
        if self.instance is None and Station.objects.filter(pk=value).exists():
            # Stations out of the user's scope count too: ids are unique network-wide.
            raise serializers.ValidationError("A station with this id already exists.")
        return value

    def validate(self, attrs: dict) -> dict:
        user = self.context["request"].user
        site = attrs.get("site", self.instance.site if self.instance else None)
        # The user must still operate the station after the write: on no site, only operator
        # admins do (the field itself offers only the user's own sites).
        if not may_operate_station(user, Station(site=site)):
            raise serializers.ValidationError({"site": ["Choose one of your sites."]})
        profile = attrs.get(
            "security_profile",
            self.instance.security_profile if self.instance else Station.SecurityProfile.BASIC,
        )
        has_password = "password" in attrs or bool(self.instance and self.instance.password_hash)
        if profile in PASSWORD_PROFILES and not has_password:
            raise serializers.ValidationError({"password": [
                f"Security profile {profile} authenticates the charger with a password: "
                "set one, or choose security_profile 0 explicitly for a charger that "
                "connects without authentication."
            ]})
        return attrs

    def create(self, validated_data: dict) -> Station:
        password = validated_data.pop("password", None)
        station = Station(**validated_data)
        if password is not None:
            station.set_password(password)
        try:
            # Forced, or a save racing another create of the same id would overwrite it.
            with transaction.atomic():
                station.save(force_insert=True)
                if password is not None:
                    station_credentials_changed(self.context["request"].user, station,
                                                       "password set")
        except IntegrityError:
            raise serializers.ValidationError(
                {"id": ["A station with this id already exists."]}
            ) from None
        return station

    def update(self, instance: Station, validated_data: dict) -> Station:
        user = self.context["request"].user
        password = validated_data.pop("password", None)
        registration = validated_data.pop("registration", None)
        profile_before = instance.security_profile
        for name, value in validated_data.items():
            setattr(instance, name, value)
        if password is not None:
            instance.set_password(password)
            instance.password_hash_next = ""  # the person's password replaces any the station took
        # Only the fields asked for: a whole-row save would put back what the gateway or
        # another person changed since this request read the station.
        fields = [*validated_data,
                  *(["password_hash", "password_hash_next"] if password is not None else [])]
        with transaction.atomic():
            if fields:
                instance.save(update_fields=fields)
            if password is not None or instance.security_profile != profile_before:
                station_credentials_changed(
                    user, instance,
                    "password changed" if password is not None else "security profile set")
            if registration is not None:
                # security_profile 0 in the same request is the person's explicit choice of a
                # station without credentials; otherwise accepting one gives it a password.
                decision = station_registration_decide(
                    instance, registration, user=user,
                    unauthenticated=validated_data.get("security_profile") == 0)
                if decision.password:
                    instance.generated_password = decision.password
        if registration is not None:  # whoever decided, the answer says what holds now
            instance.refresh_from_db(fields=["registration", "security_profile"])
        return instance


class TransactionSerializer(serializers.ModelSerializer):
    evse = serializers.IntegerField(source="evse.number", read_only=True, allow_null=True)
    connector = serializers.IntegerField(
        source="connector.number", read_only=True, allow_null=True
    )
    id_token = serializers.SerializerMethodField(
        help_text="The token value the charger presented, kept even when it is unknown to us; "
        "masked (its last characters) for a card of another organization than yours.")
    csms_end_reason_text = serializers.CharField(
        source="get_csms_end_reason_display", read_only=True,
        help_text="Why the CSMS ended the session its charger did not end, in words; empty "
                  "when its charger ended it.",
    )

    class Meta:
        model = Transaction
        fields = [
            "id", "transaction_id", "station", "evse", "connector", "id_token", "state",
            "started_at", "stopped_at", "meter_start_wh", "meter_stop_wh", "meter_last_wh",
            "energy_wh", "stop_reason", "csms_end_reason", "csms_end_reason_text", "offline",
            "needs_review", "review_note", "messages_awaited_since",
        ]
        read_only_fields = fields

    def get_id_token(self, tx: Transaction) -> str:
        return card_use.shown(_viewer(self), tx.id_token_value,
                              tx.id_token if tx.id_token_id else None)


def _viewer(serializer: serializers.Serializer) -> AbstractBaseUser:
    """Who reads: the request's user; nobody (who sees no card number) without a request."""
    request = serializer.context.get("request")
    return request.user if request is not None else AnonymousUser()


class MeterSampleSerializer(serializers.ModelSerializer):
    class Meta:
        model = MeterSample
        fields = [
            "timestamp", "evse_number", "measurand", "phase", "location", "context", "unit",
            "value",
        ]
        read_only_fields = fields


class MaskedJSONField(serializers.JSONField):
    """A payload with its secrets (a charger's new password) masked, as the audit log has it:
    a call still waiting to be sent holds them in clear."""

    def to_representation(self, value: object) -> object:
        return super().to_representation(mask(value))


class CallSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    payload = MaskedJSONField(read_only=True)

    class Meta:
        model = Call
        fields = [
            "id", "station", "action", "payload", "message_id", "status", "response",
            "error_code", "error_description", "requested_by", "created_at", "sent_at",
            "completed_at", "part_of",
        ]
        read_only_fields = fields

    def to_representation(self, call: Call) -> dict:
        """Card numbers the reader does not see are masked in what was sent and answered."""
        data = super().to_representation(call)
        found = card_use.strings_in(data["payload"], card_use.strings_in(data["response"]))
        hidden = card_use.hidden_values(_viewer(self), found)
        data["payload"] = card_use.mask_in(data["payload"], hidden)
        data["response"] = card_use.mask_in(data["response"], hidden)
        return data


class CallRequestSerializer(serializers.Serializer):
    """Any action the station's OCPP version defines, checked against that version's schema."""

    action = serializers.RegexField(
        r"^[A-Za-z0-9]{1,50}\Z", help_text="An OCPP action name, e.g. GetConfiguration.",
        error_messages={"invalid": "An action is an OCPP action name such as Reset."},
    )
    payload = serializers.DictField(default=dict)
