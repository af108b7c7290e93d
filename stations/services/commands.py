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
from dataclasses import dataclass
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
from accounts.models import AuditEntry
from stations import events, signals
from stations.models import Call, MessageLog, NumberEncoder, Station, Transaction
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


class Protocol(typing.Protocol):
    """What the domain needs of one OCPP version; the gateway registers one per version."""

    version: str
    # The longest ID token a charger of this version can present (and hold in its local list).
    id_token_max_length: int
    # Where a charger of this version reports its local list's limits: limit name ("entries",
    # "per_message") → (component, variable, attribute type) of its device model.
    local_list_limits: Mapping[str, tuple[str, str, str]]

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
    ended."""
    call = _call_create(station, action, payload, user)
    if not station.connected or not station.ocpp_version:
        _finish(call, Call.Status.NOT_CONNECTED)
        return call
    timeout = settings.OCPP["CALL_TIMEOUT"] if timeout is None else timeout
    async_to_sync(_route_and_wait)(station.pk, call.pk, timeout)
    call.refresh_from_db()
    if call.status in Call.OPEN:
        _finish(call, Call.Status.TIMEOUT)
    return call


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
                 user: AbstractBaseUser | None) -> Call:
    if station.ocpp_version:  # never connected: it ends as not connected, nothing to check
        protocol_of(station).check(action, payload)
    person = user if user is not None and user.is_authenticated else None
    call = Call.objects.create(station=station, action=action, payload=payload,
                               message_id=str(uuid.uuid4()), requested_by=person)
    if person is not None:
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
    return stale.update(status=Call.Status.TIMEOUT, completed_at=timezone.now())


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
    already (timed out while queued) or another socket took it."""
    with transaction.atomic():
        claimed = Call.objects.filter(pk=call_id, station=station, status=Call.Status.PENDING)
        if not claimed.update(status=Call.Status.SENT, sent_at=timezone.now()):
            return None
        call = Call.objects.get(pk=call_id)
        call.message_id = call.message_id or str(uuid.uuid4())
        message_log.frame_record(station, MessageLog.Direction.OUT, MessageLog.MessageType.CALL,
                                 call.message_id, call.action, call.payload)
    return call


def call_not_sent(call_id: int) -> None:
    """The socket closed before the call went out."""
    Call.objects.filter(pk=call_id, status=Call.Status.PENDING).update(
        status=Call.Status.NOT_CONNECTED, completed_at=timezone.now())


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
