"""The charging network as the domain sees it, whatever OCPP version a charger speaks.

Version-specific words (idTag, seqNo, TransactionEvent) stay in csms/gateway/; here a thing is
named for what it is. Writers are in stations/services/, never in views.
"""

import json
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import IdToken, Site

# OCPP identifierString: the id is the last segment of the charger's URL, so no "/" and no ":"
# (it is the Basic auth user name), at most 48 characters.
STATION_ID_PATTERN = r"^[a-zA-Z0-9*\-_=+|@.]{1,48}\Z"
station_id_validator = RegexValidator(
    STATION_ID_PATTERN,
    "A station id is 1 to 48 characters of a-z A-Z 0-9 * - _ = + | @ . (no : and no /).",
)


class NumberEncoder(json.JSONEncoder):
    """Charger payloads are parsed with exact decimals; stored, they are numbers again."""

    def default(self, o: object) -> object:
        if isinstance(o, Decimal):
            return int(o) if o == o.to_integral_value() else float(o)
        return super().default(o)


class Station(models.Model):
    """A charging station (charge point) identified by the id in its connection URL."""

    class Registration(models.TextChoices):
        ACCEPTED = "Accepted"
        PENDING = "Pending", "Pending approval"
        REJECTED = "Rejected"

    class SecurityProfile(models.IntegerChoices):
        NONE = 0, "0: no authentication"
        BASIC = 1, "1: HTTP Basic auth"
        TLS_BASIC = 2, "2: TLS with Basic auth"
        TLS_CLIENT_CERT = 3, "3: TLS with client certificate"

    # OCPP identifierString, at most 48 characters: it is the last segment of the charger's URL.
    id = models.CharField(primary_key=True, max_length=48, validators=[station_id_validator])
    site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="stations"
    )
    registration = models.CharField(
        max_length=10, choices=Registration.choices, default=Registration.ACCEPTED
    )
    security_profile = models.PositiveSmallIntegerField(
        choices=SecurityProfile.choices, default=SecurityProfile.BASIC
    )
    # A salted hash only; see set_password().
    password_hash = models.CharField(max_length=200, blank=True)
    # A new password the station accepted (ChangeConfiguration AuthorizationKey, SetVariables
    # BasicAuthPassword): valid next to the current one until the station first logs in with it.
    password_hash_next = models.CharField(max_length=200, blank=True)

    vendor = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=50, blank=True)
    serial_number = models.CharField(max_length=50, blank=True)
    firmware_version = models.CharField(max_length=50, blank=True)
    ocpp_version = models.CharField(max_length=10, blank=True)

    connected = models.BooleanField(default=False)
    connected_at = models.DateTimeField(null=True, blank=True)
    # The connection that holds the station now: a charger reconnects before its old socket is
    # closed, and only the newest connection's close (or the sweep) may mark it offline.
    connection = models.UUIDField(null=True, blank=True, editable=False)
    last_seen = models.DateTimeField(null=True, blank=True)
    last_boot_at = models.DateTimeField(null=True, blank=True)
    # Status of the station as a whole (a 1.6 StatusNotification for connector 0).
    status = models.CharField(max_length=20, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    firmware_status = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.id

    def set_password(self, raw: str) -> None:
        self.password_hash = make_password(raw, hasher="charger_pbkdf2")

    def check_password(self, raw: str) -> bool:
        """Constant-time comparison against the stored salted hash."""
        return bool(self.password_hash) and check_password(raw, self.password_hash)

    def check_next_password(self, raw: str) -> bool:
        return bool(self.password_hash_next) and check_password(raw, self.password_hash_next)


# What an EVSE is taken to deliver at most until someone says otherwise: the most a common DC
# fast charger does, so that no real charger's readings look implausible by default.
DEFAULT_MAX_POWER_W = 350_000


class Evse(models.Model):
    """An independently operated outlet group; a 1.6 connector n is EVSE n with connector 1."""

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="evses")
    number = models.PositiveIntegerField()
    # The bound of its plausible power readings and of how fast its energy register may rise
    # (stations/plausibility.py).
    max_power_w = models.PositiveIntegerField(
        "maximum power (W)", default=DEFAULT_MAX_POWER_W,
        help_text="The most this EVSE delivers, in W: readings above it mark the session for "
                  "review instead of pricing it.")

    class Meta:
        ordering = ["station", "number"]
        constraints = [
            models.UniqueConstraint(fields=["station", "number"], name="evse_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.station_id}/{self.number}"


class Connector(models.Model):
    class Status(models.TextChoices):
        AVAILABLE = "Available"
        OCCUPIED = "Occupied"
        RESERVED = "Reserved"
        UNAVAILABLE = "Unavailable"
        FAULTED = "Faulted"
        UNKNOWN = "Unknown"

    evse = models.ForeignKey(Evse, on_delete=models.CASCADE, related_name="connectors")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UNKNOWN)
    # The charger's own word when it says more than the status (e.g. 1.6 "SuspendedEV").
    status_detail = models.CharField(max_length=30, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    status_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["evse__number", "number"]
        constraints = [
            models.UniqueConstraint(fields=["evse", "number"], name="connector_unique_number")
        ]

    def __str__(self) -> str:
        return f"{self.evse}/{self.number}"


# The tables every charger message adds rows to (status changes, transaction messages, meter
# samples, the message log) have no foreign-key constraints in the database (db_constraint=False).
# PostgreSQL checks a constraint at COMMIT with a query and a row lock on the referenced row for
# every row inserted: with five samples to a meter message that was a quarter of its CPU in the
# benchmark. Django still deletes the related rows itself (on_delete), and the rows only name what
# their own database transaction just read: a station or transaction that exists. Transactions
# are never deleted (Transaction.station is PROTECT, so a station with sessions is not either).
class StatusChange(models.Model):
    """History of connector (or, with no connector, whole-station) status reports."""

    # No index of its own (and its _like twin): (station, -timestamp) below serves every lookup
    # by station. Each index is written for every row of a table that grows all day.
    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="status_changes",
                                db_index=False, db_constraint=False)
    connector = models.ForeignKey(
        Connector, null=True, blank=True, on_delete=models.CASCADE, related_name="status_changes",
        db_constraint=False,
    )
    status = models.CharField(max_length=20)
    status_detail = models.CharField(max_length=30, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    info = models.CharField(max_length=100, blank=True)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-timestamp"]
        indexes = [models.Index(fields=["station", "-timestamp"])]


class Transaction(models.Model):
    """A charging session, from its start message to its end message."""

    class State(models.TextChoices):
        ACTIVE = "active"
        COMPLETED = "completed"

    class CsmsEnd(models.TextChoices):
        """Why the CSMS ended a session its charger did not end (docs/users.md says each)."""

        NEW_SESSION = "new_session", "a newer session started on its EVSE"
        CONNECTOR_FREE = "connector_free", ("its card was refused and its connector was then "
                                            "reported free")
        REBOOT = "reboot", "its station rebooted and never ended it"
        SILENCE = "silence", "nothing was heard of it or its station for too long"

    station = models.ForeignKey(Station, on_delete=models.PROTECT, related_name="transactions")
    evse = models.ForeignKey(Evse, null=True, blank=True, on_delete=models.SET_NULL)
    connector = models.ForeignKey(Connector, null=True, blank=True, on_delete=models.SET_NULL)
    # The id the charger uses: assigned by us (an integer, as text) or by the charger.
    transaction_id = models.CharField(max_length=36)
    # Business key of a start message that carries no id of the charger's own, so that a retry
    # of the same start is recognised under a database constraint.
    # NULL, not "", for "no key": the unique constraint must skip those rows.
    start_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    id_token = models.ForeignKey(
        IdToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="transactions"
    )
    # What the charger presented, kept even when the token is unknown to us.
    id_token_value = models.CharField(max_length=36, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Wide enough for any reading the domain stores (plausibility.STORABLE_LIMIT) and the
    # difference of two: an absurd register is kept as the charger said it.
    meter_start_wh = models.DecimalField(max_digits=18, decimal_places=3, null=True, blank=True)
    meter_stop_wh = models.DecimalField(max_digits=18, decimal_places=3, null=True, blank=True)
    # Latest energy register reading seen during the session, for the live view.
    meter_last_wh = models.DecimalField(max_digits=18, decimal_places=3, null=True, blank=True)
    energy_wh = models.DecimalField(max_digits=18, decimal_places=3, null=True, blank=True)
    stop_reason = models.CharField(max_length=50, blank=True)
    # Something about this session needs a person's look (a gap in its messages, a forced close).
    needs_review = models.BooleanField(default=False)
    review_note = models.CharField(max_length=200, blank=True)
    offline = models.BooleanField(default=False)
    # Blank when the charger ended the session (or it runs); else why the CSMS ended it.
    csms_end_reason = models.CharField(max_length=20, choices=CsmsEnd.choices, blank=True)
    # The card was answered anything but Accepted: the charger should end the session, and a
    # connector it reports free afterwards ends it here when its end never comes.
    id_token_refused = models.BooleanField(default=False)
    # Ended with messages missing, and the station asked whether it still holds them: until
    # they come, or the wait is over, the session is not final (it is held for review).
    messages_awaited_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["station", "transaction_id"], name="transaction_unique_id"
            ),
            models.UniqueConstraint(
                fields=["station", "start_key"],
                condition=Q(start_key__isnull=False),
                name="transaction_unique_start_key",
            ),
        ]
        indexes = [models.Index(fields=["state", "station"]), models.Index(fields=["-started_at"])]

    def __str__(self) -> str:
        return f"{self.station_id}#{self.transaction_id}"


class TransactionMessage(models.Model):
    """One message a charger sent about a transaction: start, update or end.

    `sequence` numbers a charger gives its messages make retries recognisable and gaps visible.
    """

    class Kind(models.TextChoices):
        START = "start"
        UPDATE = "update"
        END = "end"

    transaction = models.ForeignKey(
        Transaction, on_delete=models.CASCADE, related_name="messages", db_constraint=False
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    timestamp = models.DateTimeField()
    trigger = models.CharField(max_length=50, blank=True)
    offline = models.BooleanField(default=False)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["transaction", "sequence", "timestamp"]
        constraints = [
            models.UniqueConstraint(
                fields=["transaction", "sequence"],
                condition=Q(sequence__isnull=False),
                name="transaction_message_unique_sequence",
            )
        ]


class MeterSample(models.Model):
    """One sampled value: energy, power, current, voltage, state of charge, ..."""

    # Neither key has an index of its own: meter_sample_unique starts with the station and the
    # index below with the transaction (see StatusChange.station).
    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="meter_samples",
                                db_index=False, db_constraint=False)
    # 0 is the station's main meter.
    evse_number = models.PositiveIntegerField(default=0)
    transaction = models.ForeignKey(
        Transaction, null=True, blank=True, on_delete=models.CASCADE, related_name="samples",
        db_index=False, db_constraint=False,
    )
    timestamp = models.DateTimeField()
    measurand = models.CharField(max_length=50, default="Energy.Active.Import.Register")
    phase = models.CharField(max_length=10, blank=True)
    location = models.CharField(max_length=10, blank=True)
    context = models.CharField(max_length=30, blank=True)
    unit = models.CharField(max_length=20, blank=True)
    value = models.DecimalField(max_digits=20, decimal_places=4)

    class Meta:
        ordering = ["timestamp"]
        constraints = [
            # A retried meter message carries the same samples: stored once.
            models.UniqueConstraint(
                fields=[
                    "station", "evse_number", "timestamp", "measurand", "phase", "location",
                    "context",
                ],
                name="meter_sample_unique",
            )
        ]
        indexes = [models.Index(fields=["transaction", "measurand", "timestamp"])]


class Call(models.Model):
    """A command we send to a charger, and how it ended."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        ACCEPTED = "accepted"
        REJECTED = "rejected"
        ERROR = "error", "CALLERROR"
        TIMEOUT = "timeout", "timed out"
        NOT_CONNECTED = "not_connected", "not connected"

    OPEN = (Status.PENDING, Status.SENT)

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="calls")
    action = models.CharField(max_length=50)
    payload = models.JSONField(default=dict, encoder=NumberEncoder)
    message_id = models.CharField(max_length=36, blank=True)
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.PENDING)
    response = models.JSONField(null=True, blank=True, encoder=NumberEncoder)
    error_code = models.CharField(max_length=50, blank=True)
    error_description = models.CharField(max_length=255, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # A request a person asked for that went to the charger as several (a charger takes so many
    # items per message): each part is a call of its own, sent; the whole is never sent itself
    # and holds the parts' outcomes merged.
    part_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="parts")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["station", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} → {self.station_id} ({self.status})"


class MessageLog(models.Model):
    """Every OCPP frame in and out, per station."""

    class Direction(models.TextChoices):
        IN = "in", "charger → CSMS"
        OUT = "out", "CSMS → charger"

    class MessageType(models.IntegerChoices):
        """OCPP-J's message type numbers; UNREADABLE: a frame that could not be read as one."""

        UNREADABLE = 0, "unreadable frame"
        CALL = 2
        CALLRESULT = 3
        CALLERROR = 4

    # (station, -created_at) below serves lookups by station (see StatusChange.station).
    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="messages",
                                db_index=False, db_constraint=False)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    message_type = models.PositiveSmallIntegerField(choices=MessageType.choices)
    message_id = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=50, blank=True)
    payload = models.JSONField(null=True, encoder=NumberEncoder)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["station", "-created_at"])]


class RefusedConnection(models.Model):
    """A charger connection we refused, and why: the operator's view of attacks and mistakes."""

    station_id = models.CharField(max_length=200, blank=True)
    remote_addr = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=40)
    detail = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]


class StationEvent(models.Model):
    """Notifications a station reports: firmware, diagnostics and log uploads, security events,
    device monitoring events, vendor data."""

    class Kind(models.TextChoices):
        FIRMWARE = "firmware"
        DIAGNOSTICS = "diagnostics"
        SECURITY = "security"
        MONITORING = "monitoring"
        DATA_TRANSFER = "data_transfer", "data transfer"

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=100)
    detail = models.JSONField(default=dict, encoder=NumberEncoder)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-timestamp"]
        indexes = [models.Index(fields=["station", "kind", "-timestamp"])]


class DeviceVariable(models.Model):
    """A configuration or device-model value the station reported (report or configuration)."""

    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="variables")
    component = models.CharField(max_length=50, blank=True)
    component_instance = models.CharField(max_length=50, blank=True)
    evse_number = models.PositiveIntegerField(null=True, blank=True)
    connector_number = models.PositiveIntegerField(null=True, blank=True)
    variable = models.CharField(max_length=50)
    variable_instance = models.CharField(max_length=50, blank=True)
    attribute_type = models.CharField(max_length=10, default="Actual")
    value = models.TextField(blank=True)
    mutability = models.CharField(max_length=10, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["component", "variable"]
        indexes = [models.Index(fields=["station", "component", "variable"])]


class LocalListState(models.Model):
    """What a station's local authorization list holds, as far as the charger acknowledged."""

    class Sync(models.TextChoices):
        IN_SYNC = "in_sync", "in sync"
        OUT_OF_SYNC = "out_of_sync", "out of sync"
        SENDING = "sending"
        TOO_LARGE = "too_large", "too large for the charger"
        FAILED = "failed"
        NOT_SUPPORTED = "not_supported", "not supported by the charger"

    station = models.OneToOneField(
        Station, primary_key=True, on_delete=models.CASCADE, related_name="local_list"
    )
    # Whether we keep a list on this charger at all: only an operator's act turns it on
    # (local_lists.set_enabled); reading the charger's list version never does.
    enabled = models.BooleanField(default=False)
    sync = models.CharField(max_length=15, choices=Sync.choices, default=Sync.OUT_OF_SYNC)
    # The version the charger last accepted, and the highest one we sent.
    version = models.PositiveIntegerField(default=0)
    version_sent = models.PositiveIntegerField(default=0)
    # What the charger answered to GetLocalListVersion, and when.
    version_reported = models.IntegerField(null=True, blank=True)
    version_reported_at = models.DateTimeField(null=True, blank=True)
    wanted = models.PositiveIntegerField(default=0)  # entries the list should hold
    # When we last asked the charger for its list size limits.
    limits_read_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.station_id}: {self.get_sync_display()} (v{self.version})"


class LocalListEntry(models.Model):
    """One token as the charger holds it in its local list (after it accepted the update)."""

    station = models.ForeignKey(
        Station, on_delete=models.CASCADE, related_name="local_list_entries"
    )
    value = models.CharField(max_length=36)
    token_type = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=10)
    expires_at = models.DateTimeField(null=True, blank=True)
    group = models.CharField(max_length=36, blank=True)

    class Meta:
        ordering = ["value"]
        constraints = [
            models.UniqueConstraint(fields=["station", "value"], name="local_list_entry_unique")
        ]


class LocalListPush(models.Model):
    """One SendLocalList we sent: the entries it carried, in the domain's words, so that an
    accepted update can be applied to LocalListEntry without reading a version's payload."""

    call = models.OneToOneField(Call, on_delete=models.CASCADE, related_name="+")
    station = models.ForeignKey(Station, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveIntegerField()
    full = models.BooleanField()
    # {"value": {"status", "expires_at", "group", "type"} or null for a removal}
    entries = models.JSONField(default=dict)
    # The last message of its batch: when it is accepted the list is complete.
    last = models.BooleanField(default=True)
