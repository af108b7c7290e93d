"""Commands to chargers: persisted, routed through the channel layer, answered from the Call row.

A command is version-neutral (a `Command`); the gateway says it in the words of the station's
OCPP version through the `Protocol` it registers for that version at start-up. The domain
never imports the gateway: it asks the protocol of a version, which knows its messages.

The request asking for a command may run in another process than the consumer holding the
charger's socket, so a command never touches a socket: it stores a Call (pending), sends the
call's id to the station's group, and waits for the consumer's word that the call ended. The
channel layer is lossy; a call whose outcome never arrives ends as timed out, never accepted.
The consumer holding the socket moves the Call through its states with call_claim and
call_end, in the same transaction as what the charger's answer says (the block's reply reader).
"""

import asyncio
import json
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.audit import mask
from accounts.models import AuditEntry
from stations import events, signals
from stations.models import (
    Call,
    DeviceVariable,
    MessageLog,
    NumberEncoder,
    Station,
    Transaction,
)
from stations.services import authorization, message_log

# An audited command's payload longer than this is recorded by its size only.
PAYLOAD_KEPT = 2000


class CommandError(Exception):
    """A command that cannot be sent as asked (a person's mistake, said readably)."""


class Command:
    """A command to a charger in the domain's words; each OCPP version that has a message for it
    says it in its own (the gateway's blocks)."""

    description: ClassVar[str] = "a command"

    def refusal(self, station: Station, user: AbstractBaseUser | None) -> str:
        """Why the command must not be sent to this station ("" if it may): what the charger
        would refuse, or what the person may not ask for."""
        return ""


@dataclass(frozen=True, slots=True)
class RemoteStart(Command):
    description: ClassVar[str] = "a remote start"
    evse: int
    id_token: str

    def refusal(self, station: Station, user: AbstractBaseUser | None) -> str:
        return authorization.remote_start_refusal(station, self.id_token, user)


@dataclass(frozen=True, slots=True)
class RemoteStop(Command):
    description: ClassVar[str] = "a remote stop"
    transaction_id: str


@dataclass(frozen=True, slots=True)
class Reset(Command):
    description: ClassVar[str] = "a reset"
    hard: bool


@dataclass(frozen=True, slots=True)
class Unlock(Command):
    description: ClassVar[str] = "unlocking a connector"
    evse: int
    connector: int = 1


@dataclass(frozen=True, slots=True)
class AvailabilityChange(Command):
    """evse 0 is the whole station."""

    description: ClassVar[str] = "a change of availability"
    evse: int
    operative: bool


@dataclass(frozen=True, slots=True)
class MessageTrigger(Command):
    """Ask for a message now: BootNotification, Heartbeat, StatusNotification, MeterValues, ..."""

    description: ClassVar[str] = "a triggered message"
    message: str
    evse: int | None = None


@dataclass(frozen=True, slots=True)
class CostUpdate(Command):
    """A session's running cost, taxes included, for the charger's display."""

    description: ClassVar[str] = "a session's running cost"
    transaction_id: str
    total: Decimal


@dataclass(frozen=True, slots=True)
class PasswordChange(Command):
    """A new Basic-auth password (security profiles 1 and 2): the station logs in with it once
    it accepts (registration.station_password_adopt)."""

    description: ClassVar[str] = "a new password"
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class MessageParts:
    """How a request listing many items goes to a charger that takes so many per message (or so
    many bytes): split into parts, each a call, and their answers put back together.

    A limit is where the station reports it among its device variables (configuration keys
    have component ""): (component, variable, variable instance)."""

    items: str  # the request's list
    answers: tuple[str, ...]  # the answer's lists, joined across the parts
    items_limit: tuple[str, str, str]
    bytes_limit: tuple[str, str, str] | None = None


class Protocol(typing.Protocol):
    """What the domain needs of one OCPP version; the gateway registers one per version."""

    version: str
    # The longest ID token a charger of this version can present (and hold in its local list).
    id_token_max_length: int
    # Where a charger of this version reports its local list's limits: limit name ("entries",
    # "per_message") → (component, variable, attribute type) of its device model.
    local_list_limits: Mapping[str, tuple[str, str, str]]
    # The requests a charger of this version may take in parts, by action.
    message_parts: Mapping[str, MessageParts]

    def build(self, command: Command) -> tuple[str, dict]:
        """The action and payload saying `command`; CommandError if the version cannot."""

    def check(self, action: str, payload: dict) -> None:
        """CommandError unless `payload` is a valid `action` to a charger of this version."""


_protocols: dict[str, Protocol] = {}


def protocol_register(protocol: Protocol) -> None:
    _protocols[protocol.version] = protocol


def protocol_of(station: Station) -> Protocol:
    """The protocol of the version the station last connected with."""
    if not station.ocpp_version:
        raise CommandError(f"{station.pk} has never connected: its OCPP version is not known yet")
    try:
        return _protocols[station.ocpp_version]
    except KeyError:
        raise CommandError(f"OCPP {station.ocpp_version} is not spoken here") from None


# --- asking for a command -----------------------------------------------------------------

def send(station: Station, command: Command, *, user: AbstractBaseUser | None = None) -> Call:
    """Say `command` in the station's version and send it; returns the Call as it ended.
    CommandError, and nothing sent, when the command is refused here (Command.refusal)."""
    action, payload = protocol_of(station).build(command)
    refusal = command.refusal(station, user)
    if refusal:
        raise CommandError(f"Not sent: {refusal}.")
    return call_send(station, action, payload, user=user)


def send_later(station: Station, command: Command, *,
               user: AbstractBaseUser | None = None) -> Call:
    """Say `command` in the station's version and send it without waiting (call_enqueue)."""
    action, payload = protocol_of(station).build(command)
    return call_enqueue(station, action, payload, user=user)


def call_send(station: Station, action: str, payload: dict, *,
              user: AbstractBaseUser | None = None, timeout: float | None = None) -> Call:
    """Send any action the station's OCPP version sends to chargers; returns the Call as it
    ended. A request with more items than the station takes per message (as far as it
    reported its limits) goes as several calls, one after the other; the Call returned is the
    whole, with their outcomes merged."""
    parts = _parts(station, action, payload) if station.connected else [payload]
    if len(parts) > 1:
        return _send_in_parts(station, action, payload, parts, user, timeout)
    call = _call_create(station, action, payload, user)
    if not station.connected or not station.ocpp_version:
        _finish(call, Call.Status.NOT_CONNECTED)
        return call
    return _send_and_wait(call, timeout)


def _send_and_wait(call: Call, timeout: float | None) -> Call:
    timeout = settings.OCPP["CALL_TIMEOUT"] if timeout is None else timeout
    async_to_sync(_route_and_wait)(call.station_id, call.pk, timeout)
    call.refresh_from_db()
    if call.status in Call.OPEN:
        _finish(call, Call.Status.TIMEOUT)
    return call


# --- requests in parts ------------------------------------------------------------------------

# A message id as long as ours (a UUID), for a part's size in bytes.
_MESSAGE_ID = "0" * 36


def _parts(station: Station, action: str, payload: dict) -> list[dict]:
    """The payloads `payload` goes to the station as: itself, unless it lists more items (or
    bytes) than the station reported it takes in one message."""
    if not station.ocpp_version:
        return [payload]
    spec = protocol_of(station).message_parts.get(action)
    items = payload.get(spec.items) if spec is not None else None
    if spec is None or not isinstance(items, list) or len(items) < 2:
        return [payload]
    most_items, most_bytes = _limits(station, spec)
    if most_items is None and most_bytes is None:
        return [payload]
    return request_split(action, payload, spec.items, most_items, most_bytes)


def request_split(action: str, payload: dict, items_key: str, most_items: int | None,
                  most_bytes: int | None) -> list[dict]:
    """`payload` as requests of at most `most_items` items of its list `items_key` and
    `most_bytes` bytes of frame each, items in order; an item too large alone goes alone."""
    items = payload[items_key]
    rest = {key: value for key, value in payload.items() if key != items_key}
    # Sizes as the frame is written (compact JSON): the frame with an empty list, plus each
    # item and a comma between two.
    empty = len(_frame(action, {**rest, items_key: []}))
    chunks: list[list] = [[]]
    size = empty
    for item in items:
        length = len(json.dumps(item, separators=(",", ":"), cls=NumberEncoder))
        chunk = chunks[-1]
        grown = size + length + (1 if chunk else 0)
        if chunk and ((most_items is not None and len(chunk) >= most_items)
                      or (most_bytes is not None and grown > most_bytes)):
            chunks.append([item])
            size = empty + length
        else:
            chunk.append(item)
            size = grown
    return [{**rest, items_key: chunk} for chunk in chunks]


def _frame(action: str, payload: dict) -> str:
    return json.dumps([2, _MESSAGE_ID, action, payload], separators=(",", ":"),
                      cls=NumberEncoder)


# The largest limit taken as a number: a charger's device variable is text of any length.
_LIMIT_DIGITS = 9


def _limits(station: Station, spec: MessageParts) -> tuple[int | None, int | None]:
    """The station's reported items and bytes per message for `spec`, None where it reported
    none (or nothing usable): one query."""
    wanted = [limit for limit in (spec.items_limit, spec.bytes_limit) if limit is not None]
    rows = DeviceVariable.objects.filter(
        station=station, attribute_type="Actual",
        variable__in={variable for _, variable, _ in wanted},
    ).values_list("component", "variable", "variable_instance", "value")
    reported = {(component, variable, instance): value
                for component, variable, instance, value in rows}

    def number(limit: tuple[str, str, str] | None) -> int | None:
        value = reported.get(limit, "").strip() if limit is not None else ""
        if not value.isdigit() or len(value) > _LIMIT_DIGITS or int(value) == 0:
            return None
        return int(value)

    return number(spec.items_limit), number(spec.bytes_limit)


def _send_in_parts(station: Station, action: str, payload: dict, parts: list[dict],
                   user: AbstractBaseUser | None, timeout: float | None) -> Call:
    """Send the parts one after the other, each a call of its own; the whole (the request as
    asked, audited once) ends with their outcomes merged. A part that is not answered (timed
    out, not connected, CALLERROR) ends the sending: the rest would fare no better."""
    whole = _call_create(station, action, payload, user)
    spec = protocol_of(station).message_parts[action]
    sent: list[Call] = []
    for part in parts:
        call = _call_create(station, action, part, user, part_of=whole)
        sent.append(_send_and_wait(call, timeout))
        if sent[-1].status not in (Call.Status.ACCEPTED, Call.Status.REJECTED):
            break
    failed = next((call for call in sent if call.status != Call.Status.ACCEPTED), None)
    response: dict[str, list] = {}
    for call in sent:
        for key in spec.answers:
            if isinstance(call.response, dict) and key in call.response:
                response.setdefault(key, []).extend(call.response[key])
    description = failed.error_description if failed is not None else ""
    if len(sent) < len(parts):
        description = (f"{len(sent)} of {len(parts)} requests sent; " + description)[:255]
    Call.objects.filter(pk=whole.pk).update(
        status=failed.status if failed is not None else Call.Status.ACCEPTED,
        response=response or None, error_code=failed.error_code if failed else "",
        error_description=description, message_id="", sent_at=sent[0].sent_at,
        completed_at=timezone.now())
    whole.refresh_from_db()
    events.publish("call.outcome", station.pk, station.site_id, call=whole.pk,
                   status=whole.status)
    return whole


def call_enqueue(station: Station, action: str, payload: dict, *,
                 user: AbstractBaseUser | None = None) -> Call:
    """Send without waiting for the outcome: for background work (local list pushes, cost
    updates) that must never block, least of all inside a charger's message handler.

    The call is routed after the surrounding transaction commits; if the route is lost it ends
    as timed out by `expire_stale_calls`.
    """
    call = _call_create(station, action, payload, user)
    if not station.connected:
        _finish(call, Call.Status.NOT_CONNECTED)
        return call
    events.to_charger(station.pk, {"type": "ocpp.call", "call": call.pk, "reply_to": None})
    return call


def _call_create(station: Station, action: str, payload: dict,
                 user: AbstractBaseUser | None, part_of: Call | None = None) -> Call:
    """A pending call; a person's is audited (a request sent in parts once, as asked)."""
    if station.ocpp_version and part_of is None:  # never connected: nothing to check
        protocol_of(station).check(action, payload)
    person = user if user is not None and user.is_authenticated else None
    call = Call.objects.create(station=station, action=action, payload=payload,
                               message_id=str(uuid.uuid4()), requested_by=person,
                               part_of=part_of)
    if person is not None and part_of is None:
        _audit(call)
    return call


def _audit(call: Call) -> None:
    """Every command a person asks for is audited when it is asked, whatever comes of it (its
    outcome is on the Call row); commands the system sends by itself are not."""
    payload: Any = call.payload
    size = len(json.dumps(payload, cls=NumberEncoder))
    if size > PAYLOAD_KEPT:
        payload = {"(too long to keep)": f"{size} bytes"}
    audit.record(call.requested_by, AuditEntry.Action.COMMAND,
                 f"sent {call.action} to {call.station_id}", target=f"station:{call.station_id}",
                 details={"call": call.pk, "payload": payload})


def expire_stale_calls(older_than: float | None = None) -> int:
    """End calls nobody will ever answer (their route or their process was lost)."""
    seconds = 2 * settings.OCPP["CALL_TIMEOUT"] if older_than is None else older_than
    cutoff = timezone.now() - timedelta(seconds=seconds)
    stale = Call.objects.filter(status__in=Call.OPEN, created_at__lt=cutoff)
    for call in stale.filter(status=Call.Status.PENDING).only("pk", "payload"):
        _forget_secrets(call.pk, call.payload)
    return stale.update(status=Call.Status.TIMEOUT, completed_at=timezone.now())


def _forget_secrets(call_id: int, payload: Any) -> None:
    """A call's payload keeps a secret (a new charger password) only until it is sent or ends
    unsent: the Call row then holds it masked, as the audit log and the message log do."""
    masked = mask(payload)
    if masked != payload:
        Call.objects.filter(pk=call_id).update(payload=masked)


async def _route_and_wait(station_id: str, call_id: int, wait_seconds: float) -> None:
    layer = get_channel_layer()
    reply_to = await layer.new_channel()
    try:
        await layer.group_send(events.charger_group(station_id),
                               {"type": "ocpp.call", "call": call_id, "reply_to": reply_to})
        async with asyncio.timeout(wait_seconds):
            while (await layer.receive(reply_to)).get("call") != call_id:
                pass
    except Exception:  # lost on the way, or no answer in time: the Call row decides
        return


def _finish(call: Call, status: str) -> None:
    """End an open call; a call that has ended already keeps its outcome."""
    updated = Call.objects.filter(pk=call.pk, status__in=Call.OPEN).update(
        status=status, completed_at=timezone.now()
    )
    if updated:
        _forget_secrets(call.pk, call.payload)
    call.refresh_from_db()
    if updated:
        signals.call_completed.send(Call, call=call)
        events.publish("call.outcome", call.station_id, call.station.site_id, call=call.pk,
                       status=status)


# A charger's answer to a message it does not take: it will not take the next one either.
_REFUSED_ACTION = ("NotSupported", "NotImplemented")


def cost_update(transaction: Transaction, total: Decimal) -> Call | None:
    """Tell the charger a session's running cost (taxes included), without waiting.

    None when the station cannot be told: its version has no such message, or it answered an
    earlier one that it does not support it. Safe inside a charger's message handler.
    """
    station = transaction.station
    try:
        action, payload = protocol_of(station).build(
            CostUpdate(transaction.transaction_id, total))
    except CommandError:
        return None
    refused = Call.objects.filter(station=station, action=action, status=Call.Status.ERROR,
                                  error_code__in=_REFUSED_ACTION)
    if refused.exists():
        return None
    return call_enqueue(station, action, payload)


# --- the call's way through the consumer holding the socket ---------------------------------

def call_claim(station: Station, call_id: int) -> Call | None:
    """Take a pending call to send it now: marked sent, its frame logged. None when it ended
    already (timed out while queued) or another socket took it. The call returned holds the
    payload to send; the row keeps it with its secrets masked from now on."""
    with transaction.atomic():
        claimed = Call.objects.filter(pk=call_id, station=station, status=Call.Status.PENDING)
        if not claimed.update(status=Call.Status.SENT, sent_at=timezone.now()):
            return None
        call = Call.objects.get(pk=call_id)
        _forget_secrets(call.pk, call.payload)
        call.message_id = call.message_id or str(uuid.uuid4())
        message_log.frame_record(station, MessageLog.Direction.OUT, MessageLog.MessageType.CALL,
                                 call.message_id, call.action, call.payload)
    return call


def call_not_sent(call_id: int) -> None:
    """The socket closed before the call went out."""
    unsent = Call.objects.filter(pk=call_id, status=Call.Status.PENDING)
    payload = unsent.values_list("payload", flat=True).first()
    if unsent.update(status=Call.Status.NOT_CONNECTED, completed_at=timezone.now()):
        _forget_secrets(call_id, payload)


@dataclass(frozen=True, slots=True)
class Reply:
    """How a call ended at the charger: its result, or its CALLERROR (code, description)."""

    status: str  # Call.Status
    response: dict | None = None
    error: tuple[str, str] | None = None


def call_end(station: Station, call_id: int, reply: Reply) -> bool:
    """Store how an open call ended, in the caller's transaction; a call that ended already
    (as timed out) keeps its outcome. Returns whether this ended it."""
    fields: dict[str, Any] = {"status": reply.status, "completed_at": timezone.now()}
    if reply.response is not None:
        fields["response"] = reply.response
    if reply.error is not None:
        fields["error_code"] = reply.error[0][:50]
        fields["error_description"] = reply.error[1][:255]
    if not Call.objects.filter(pk=call_id, status__in=Call.OPEN).update(**fields):
        return False
    signals.call_completed.send(Call, call=Call.objects.get(pk=call_id))
    events.publish("call.outcome", station.pk, station.site_id, call=call_id,
                   status=reply.status)
    return True
